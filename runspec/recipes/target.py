"""``python -m runspec.recipes.target --target MODULE:FUNCTION [--config YAML] [ARG…]``

The runner behind ``[recipe] target = "package.module:function"``. It imports the target
function, calls it, and then:

* **Megatron-Bridge recipe** (the function returns a ``ConfigContainer``, e.g.
  ``megatron.bridge.recipes.llama:llama32_1b_pretrain_config``): the config YAML is applied
  to the container as overrides (``train: {train_iters: 10}`` sets
  ``cfg.train.train_iters``), then the extra arguments as Hydra-style overrides
  (``train.train_iters=20``), both with Megatron-Bridge's own helpers from
  ``megatron.bridge.training.utils.omegaconf_utils``. Keys the container does not have are
  an error before anything starts. Training then runs with ``pretrain(config,
  forward_step_func)`` from ``megatron.bridge.training.pretrain`` and the GPT
  ``forward_step`` from ``megatron.bridge.training.gpt_step``. If the function's name says
  ``sft``, ``peft`` or ``finetune``, ``finetune`` from ``megatron.bridge.training.finetune``
  runs instead (the rule of Megatron-Bridge's ``scripts/training/run_recipe.py``).
  Metrics: when ``pretrain``/``finetune`` take ``callbacks`` (Megatron-Bridge's callback
  API), every training step appends ``{"rank", "step", "loss", "grad_norm",
  "tokens_per_s"}`` to ``$RUNSPEC_METRICS`` from the ranks that hold the loss (the last
  pipeline stage); ``tokens_per_s`` is each reporting rank's share, so runspec's sum over
  ranks is the job's throughput. The last line is the final loss. Older releases without
  callbacks report nothing here (their own logs still show the loss).
  Set both ``model.seq_length`` and ``dataset.seq_length``: Megatron-Bridge checks that
  they match. Launch it with ``launch = "torchrun"``.

* **Any other function** (the generic path): if the config's top-level keys are all named
  parameters of the function, it is called as ``function(**config)``, otherwise as
  ``function()`` (a function taking only ``**kwargs`` is called without arguments: name
  the parameters). If that returns a callable, the callable is called with the config
  mapping (``{}`` without ``--config``). If the final result is a mapping, its numeric
  values are reported as one metrics line (``runspec.report``). The extra arguments are
  in ``sys.argv[1:]`` for the target to parse. A config no function received is named in
  a warning on stderr.

A target that cannot be imported or found, a malformed target string or an unreadable
config is one line on stderr and exit status 2, never a traceback. Errors raised by the
target itself propagate as usual. Only the standard library (and ruamel.yaml or PyYAML
to read the config) is imported up front; Megatron-Bridge only once a recipe needs it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import numbers
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

PROG = "python -m runspec.recipes.target"
EXIT_USAGE = 2
MEGATRON_HINT = (
    "megatron-bridge must be installed: it needs Python 3.12 and CUDA, e.g. a NeMo container "
    "(nvcr.io/nvidia/nemo:<tag>) or a GPU machine set up as in examples/megatron_bridge/README.md"
)
OMEGACONF_UTILS = "megatron.bridge.training.utils.omegaconf_utils"
FINETUNE_WORDS = ("sft", "peft", "finetune")
"""A recipe function named with one of these runs ``finetune`` instead of ``pretrain``."""


class TargetError(Exception):
    """A problem to fix in the manifest or the environment: one line on stderr, exit 2."""


class OverrideError(TargetError):
    """Config keys the recipe's config object does not have."""


# --- the target ------------------------------------------------------------------------------

def parse_target(spec: str) -> tuple[str, str]:
    """``"package.module:function"`` → ``("package.module", "function")``."""
    module, colon, name = spec.partition(":")
    if not colon or not _dotted(module) or not name.isidentifier():
        raise TargetError(f'bad target "{spec}": expected "package.module:function"')
    return module, name


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def load_target(spec: str) -> Callable[..., Any]:
    """The function named by ``spec``; TargetError when it cannot be imported or found."""
    module_name, name = parse_target(spec)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing.split(".")[0] == "megatron":
            raise TargetError(f'cannot import "{module_name}" ({error}): {MEGATRON_HINT}') from None
        if module_name == missing or module_name.startswith(missing + "."):
            raise TargetError(f'no module "{module_name}" for target "{spec}" ({error}); '
                              "is its package installed or on PYTHONPATH?") from None
        raise TargetError(f'importing "{module_name}" failed: {error}') from None
    except Exception as error:  # ImportError, or whatever the module raises while importing
        raise TargetError(f'importing "{module_name}" failed: {type(error).__name__}: {error}'
                          ) from None
    function = getattr(module, name, None)
    if function is None:
        from runspec.manifest.suggest import closest

        names = [n for n in dir(module) if not n.startswith("_")
                 and callable(getattr(module, n, None))]
        hint = closest(name, names)
        raise TargetError(f'module "{module_name}" has no function "{name}"'
                          + (f' (did you mean "{hint}"?)' if hint else ""))
    if not callable(function):
        raise TargetError(f'"{spec}" is {_a(type(function).__name__)}, not a function')
    return function


def read_config(path: str) -> dict[str, Any]:
    """The rendered config.yaml as a mapping (``{}`` when the file is empty)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise TargetError(f"cannot read the config {path}: {error.strerror or error}") from None
    try:
        data = _load_yaml(text)
    except TargetError:
        raise
    except Exception as error:  # each YAML library has its own error classes
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TargetError(f"the config {path} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TargetError(f"the config {path} holds {_a(type(data).__name__)}, expected a mapping")
    return data


def _load_yaml(text: str) -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError:  # e.g. a NeMo container without runspec's dependencies
        try:
            import yaml
        except ImportError:
            raise TargetError("reading the config needs ruamel.yaml or PyYAML") from None
        return yaml.safe_load(text)
    return YAML(typ="safe", pure=True).load(text)


# --- calling it --------------------------------------------------------------------------------

def accepts_keywords(function: Callable[..., Any], config: Mapping[str, Any]) -> bool:
    """Is every top-level key of ``config`` a named parameter of ``function``?"""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    named = {p.name for p in parameters
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return all(isinstance(key, str) and key in named for key in config)


def is_config_container(value: Any) -> bool:
    """A Megatron-Bridge ``ConfigContainer`` (by class name and module: no import needed)."""
    return any(c.__name__ == "ConfigContainer" and c.__module__.startswith("megatron.bridge")
               for c in type(value).__mro__)


def run(function: Callable[..., Any], spec: str, config: dict[str, Any] | None,
        extra: Sequence[str]) -> None:
    """Call the target and act on what it returns (see the module docstring)."""
    config = config or {}
    sys.argv = [spec, *extra]  # the target parses its extra arguments as its own
    kwargs = config if config and accepts_keywords(function, config) else {}
    result = function(**kwargs)
    used = bool(kwargs)
    if is_config_container(result):
        train_megatron(result, {} if used else config, extra, parse_target(spec)[1])
        return
    if callable(result):
        result = result(config)
        used = True
    if config and not used:
        keys = ", ".join(sorted(map(str, config)))
        print(f"{PROG}: warning: the config was not used: its keys ({keys}) are not all "
              f"parameters of {spec}, and it returned no callable", file=sys.stderr)
    if isinstance(result, Mapping):
        report_numbers(result)


def report_numbers(result: Mapping[Any, Any]) -> None:
    """Report the finite numeric values of ``result`` as one metrics line."""
    from runspec import report

    metrics: dict[str, float | int] = {}
    for key, value in result.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        number = int(value) if isinstance(value, numbers.Integral) else float(value)
        if math.isfinite(number) and str(key) != "rank":
            metrics[str(key)] = number
    if metrics:
        report(**metrics)


# --- Megatron-Bridge ---------------------------------------------------------------------------

def unknown_keys(obj: Any, overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Problems with ``overrides`` against the config object ``obj``: one line per key that
    ``obj`` does not have (with a did-you-mean), or that cannot hold nested keys.

    A mapping value descends into a dataclass attribute; a mapping with ``_target_`` (built
    by Megatron-Bridge's instantiate) and a mapping onto a dict attribute are taken whole.
    """
    from runspec.manifest.suggest import closest

    problems: list[str] = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if not isinstance(key, str) or not key.isidentifier() or not hasattr(obj, key):
            hint = closest(str(key), _attribute_names(obj))
            where = f'"{prefix[:-1]}"' if prefix else "the config"
            problems.append(f'"{path}" is not a key of {where} ({type(obj).__name__})'
                            + (f'; did you mean "{prefix}{hint}"?' if hint else ""))
            continue
        if not isinstance(value, Mapping) or "_target_" in value:
            continue
        current = getattr(obj, key)
        if is_dataclass(current) and not isinstance(current, type):
            problems += unknown_keys(current, value, f"{path}.")
        elif current is None:
            problems.append(f'"{path}" is None in the recipe, so it has no keys to set; '
                            "give the whole object with a _target_ key")
        elif not isinstance(current, Mapping):
            problems.append(f'"{path}" is {_a(type(current).__name__)}, not a config section '
                            "with keys to set")
    return problems


def _attribute_names(obj: Any) -> list[str]:
    if is_dataclass(obj) and not isinstance(obj, type):
        return [f.name for f in fields(obj)]
    return [n for n in dir(obj) if not n.startswith("_")]


def bridge_override_helpers() -> Any | None:
    """Megatron-Bridge's ``omegaconf_utils`` module, or None where it cannot be imported."""
    try:
        return importlib.import_module(OMEGACONF_UTILS)
    except ImportError:
        return None


def apply_overrides(cfg: Any, overrides: Mapping[str, Any], arguments: Sequence[str] = (),
                    helpers: Any | None = None) -> None:
    """Apply a nested mapping (then Hydra-style ``key=value`` arguments) to ``cfg`` in place.

    Every key is checked first (OverrideError lists all unknown ones). With ``helpers``
    (Megatron-Bridge's ``omegaconf_utils``) this is the library's documented YAML-override
    sequence: ``create_omegaconf_dict_config`` → ``OmegaConf.merge`` → ``parse_hydra_overrides``
    → ``apply_overrides``, which also converts dtype strings and keeps callable fields.
    Without them the mapping is set attribute by attribute (dataclasses descended into,
    dicts merged), and arguments are refused.
    """
    problems = unknown_keys(cfg, overrides)
    if problems:
        raise OverrideError("; ".join(problems))
    if helpers is None:
        if arguments:
            raise OverrideError(f"key=value arguments ({' '.join(arguments)}) need "
                                f"Megatron-Bridge's {OMEGACONF_UTILS}")
        _assign(cfg, overrides)
        return
    from omegaconf import OmegaConf

    merged, excluded = helpers.create_omegaconf_dict_config(cfg)
    if overrides:
        merged = OmegaConf.merge(merged, OmegaConf.create(dict(overrides)))
    if arguments:
        try:
            merged = helpers.parse_hydra_overrides(merged, list(arguments))
        except Exception as error:  # the library wraps Hydra's errors in its OverridesError
            message = " ".join(str(error).split())  # Hydra's messages span lines
            raise OverrideError(f"bad override arguments {' '.join(arguments)}: {message}") from None
    helpers.apply_overrides(cfg, OmegaConf.to_container(merged, resolve=True), excluded)


def _assign(obj: Any, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        current = getattr(obj, key)
        if isinstance(value, Mapping) and "_target_" not in value:
            if is_dataclass(current) and not isinstance(current, type):
                _assign(current, value)
                continue
            if isinstance(current, Mapping):
                value = _merged(current, value)
        setattr(obj, key, value)


def _merged(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        out[key] = (_merged(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping)
                    else value)
    return out


def train_megatron(cfg: Any, overrides: Mapping[str, Any], arguments: Sequence[str],
                   name: str) -> None:
    """Apply the overrides to a ConfigContainer and train with Megatron-Bridge; ``name`` is
    the recipe function's name as the target spells it (it picks pretrain or finetune)."""
    helpers = bridge_override_helpers()
    if helpers is None:
        print(f"{PROG}: note: {OMEGACONF_UTILS} is not importable; setting config attributes "
              "directly", file=sys.stderr)
    apply_overrides(cfg, overrides, arguments, helpers)
    from megatron.bridge.training.gpt_step import forward_step

    if any(word in name.lower() for word in FINETUNE_WORDS):
        from megatron.bridge.training.finetune import finetune as entry
    else:
        from megatron.bridge.training.pretrain import pretrain as entry
    callbacks = _metrics_callbacks(entry)
    extra = {"callbacks": callbacks} if callbacks is not None else {}
    entry(config=cfg, forward_step_func=forward_step, **extra)


def _metrics_callbacks(entry: Callable[..., Any]) -> Any | None:
    """A Megatron-Bridge CallbackManager reporting every step, where the release has one."""
    try:
        if "callbacks" not in inspect.signature(entry).parameters:
            return None
        from megatron.bridge.training.callbacks import CallbackManager
    except (ImportError, TypeError, ValueError):
        return None
    reporter = StepReporter()
    manager = CallbackManager()
    manager.register("on_train_start", reporter.on_train_start)
    manager.register("on_train_step_end", reporter.on_train_step_end)
    return manager


class StepReporter:
    """Megatron-Bridge callbacks → one metrics line per training step.

    Reads only what the callback context documents: ``state.train_state.step``,
    ``state.cfg``, ``loss_dict`` (reduced losses, on the last pipeline stage; key
    ``"lm loss"`` for GPT) and ``grad_norm``. The event fires before the training loop
    increments ``train_state.step``, so the step reported is ``train_state.step + 1``: the
    number of steps done. A failure here never stops training: it is reported once on
    stderr and reporting stops.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 world_size: int | None = None):
        self.clock = clock
        self.world_size = world_size or int(os.environ.get("WORLD_SIZE", "1"))
        self.last: float | None = None
        self.broken = False

    def on_train_start(self, context: Any) -> None:
        self.last = self.clock()

    def on_train_step_end(self, context: Any) -> None:
        if self.broken:
            return
        try:
            self._report(context)
        except Exception as error:  # metrics must never fail a training run
            self.broken = True
            print(f"{PROG}: warning: step metrics are off: {type(error).__name__}: {error}",
                  file=sys.stderr)

    def _report(self, context: Any) -> None:
        from runspec import report

        now = self.clock()
        elapsed = None if self.last is None else now - self.last
        self.last = now
        losses = context.loss_dict or {}
        if not losses:
            return  # not the last pipeline stage: no loss on this rank
        record: dict[str, float] = {}
        loss = losses["lm loss"] if "lm loss" in losses else next(iter(losses.values()))
        record["loss"] = _as_float(loss)
        if getattr(context, "grad_norm", None) is not None:
            record["grad_norm"] = _as_float(context.grad_norm)
        cfg = context.state.cfg
        seq_length = getattr(cfg.model, "seq_length", None)
        if elapsed and elapsed > 0 and seq_length:
            pipeline = getattr(cfg.model, "pipeline_model_parallel_size", 1) or 1
            reporters = max(1, self.world_size // pipeline)  # ranks that hold the loss
            tokens = cfg.train.global_batch_size * seq_length
            record["tokens_per_s"] = tokens / elapsed / reporters
        record = {k: v for k, v in record.items() if math.isfinite(v)}
        report(step=int(context.state.train_state.step) + 1, **record)


def _as_float(value: Any) -> float:
    """A float from a number or a one-element tensor (``.item()``)."""
    return float(value.item() if hasattr(value, "item") else value)


# --- command line ------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Run a package.module:function recipe with a rendered config.",
        epilog="Further arguments go to the target: Hydra-style key=value overrides for a "
        "Megatron-Bridge ConfigContainer, sys.argv[1:] for any other function.")
    parser.add_argument("--target", required=True, metavar="MODULE:FUNCTION",
                        help="the recipe function, e.g. megatron.bridge.recipes.llama:"
                        "llama32_1b_pretrain_config")
    parser.add_argument("--config", metavar="YAML", help="the rendered config.yaml")
    args, extra = parser.parse_known_args(argv)
    try:
        function = load_target(args.target)
        config = read_config(args.config) if args.config else None
        run(function, args.target, config, extra)
    except TargetError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
