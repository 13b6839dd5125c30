"""runspec.recipes.target: the runner behind ``[recipe] target = "package.module:function"``.

The generic path runs for real in a subprocess, as a rendered command starts it. The
Megatron-Bridge path's pieces are checked against stand-ins (named so below); one test runs
the real Megatron-Bridge recipe and is skipped only where ``megatron.bridge`` cannot be
imported (it needs Python 3.12 and CUDA).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runspec.recipes.target import (
    OverrideError,
    StepReporter,
    TargetError,
    accepts_keywords,
    apply_overrides,
    is_config_container,
    parse_target,
    unknown_keys,
)

ROOT = Path(__file__).resolve().parent.parent
MEGATRON_SKIP = ("megatron.bridge is not importable (needs Python 3.12 + CUDA; "
                 "see examples/megatron_bridge/README.md)")

STANDIN_RECIPES = '''\
import json
import sys


def train(lr=0.1, steps=3):
    return {"loss": lr * steps, "steps_per_s": 100.0, "note": "not a number", "ok": True}


def build():
    def run(config):
        return {"loss": config["optim"]["lr"], "keys": len(config)}
    return run


def no_params():
    print("no_params ran")
    return {"loss": 1.0}


def only_kwargs(**config):
    return {"loss": float(len(config))}


def show_argv():
    with open("argv.json", "w") as handle:
        json.dump(sys.argv, handle)


def fails():
    raise RuntimeError("boom from the recipe")


NOT_A_FUNCTION = 3
'''


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    (tmp_path / "standin_recipes.py").write_text(STANDIN_RECIPES, encoding="utf-8")
    (tmp_path / "needs_missing_dep.py").write_text("import no_such_dependency_xyz\n",
                                                   encoding="utf-8")
    return tmp_path


def run_target(cwd: Path, *args: str, rank: str | None = None
               ) -> tuple[subprocess.CompletedProcess, list[dict[str, Any]]]:
    """``python -m runspec.recipes.target ARGS`` as the rendered command runs it."""
    metrics = cwd / "metrics.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]),
           "RUNSPEC_METRICS": str(metrics)}
    env.pop("RANK", None)
    if rank is not None:
        env["RANK"] = rank
    proc = subprocess.run([sys.executable, "-m", "runspec.recipes.target", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    lines = ([json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
             if metrics.exists() else [])
    return proc, lines


def write_config(directory: Path, text: str) -> str:
    path = directory / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


# --- the generic path, for real ----------------------------------------------------------------

def test_config_keys_become_keyword_arguments_and_numbers_are_reported(recipes):
    config = write_config(recipes, "lr: 0.5\nsteps: 4\n")
    proc, lines = run_target(recipes, "--target", "standin_recipes:train", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert lines == [{"rank": 0, "loss": 2.0, "steps_per_s": 100.0}]  # strings, bools left out
    assert proc.stderr == ""


def test_without_config_the_function_is_called_without_arguments(recipes):
    proc, lines = run_target(recipes, "--target", "standin_recipes:train", rank="3")
    assert proc.returncode == 0, proc.stderr
    assert lines == [{"rank": 3, "loss": pytest.approx(0.3), "steps_per_s": 100.0}]


def test_a_returned_callable_gets_the_config_mapping(recipes):
    config = write_config(recipes, """\
        optim:
          lr: 0.25
        train:
          steps: 2
        """)
    proc, lines = run_target(recipes, "--target", "standin_recipes:build", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert lines == [{"rank": 0, "loss": 0.25, "keys": 2}]


def test_a_config_no_function_takes_is_named_in_a_warning(recipes):
    config = write_config(recipes, "lr: 0.5\n")
    proc, lines = run_target(recipes, "--target", "standin_recipes:no_params", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert "no_params ran" in proc.stdout
    assert "warning: the config was not used" in proc.stderr and "(lr)" in proc.stderr
    assert lines == [{"rank": 0, "loss": 1.0}]


def test_only_named_parameters_receive_the_config(recipes):
    """``**kwargs`` alone does not count: the function is called without arguments."""
    config = write_config(recipes, "lr: 0.5\nsteps: 2\n")
    proc, lines = run_target(recipes, "--target", "standin_recipes:only_kwargs", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert lines == [{"rank": 0, "loss": 0.0}]
    assert "warning: the config was not used" in proc.stderr


def test_extra_arguments_are_the_targets_argv(recipes):
    proc, lines = run_target(recipes, "--target", "standin_recipes:show_argv", "--epochs", "3",
                             "name=x")
    assert proc.returncode == 0, proc.stderr
    argv = json.loads((recipes / "argv.json").read_text())
    assert argv == ["standin_recipes:show_argv", "--epochs", "3", "name=x"]
    assert lines == []  # None is not a mapping: nothing to report


def test_an_error_in_the_recipe_itself_keeps_its_traceback(recipes):
    proc, _ = run_target(recipes, "--target", "standin_recipes:fails")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "boom from the recipe" in proc.stderr


@pytest.mark.parametrize(("target", "message"), [
    ("no_such_module_xyz:main", 'no module "no_such_module_xyz"'),
    ("no_such_pkg_xyz.sub:main", 'no module "no_such_pkg_xyz.sub"'),
    ("standin_recipes:trian", 'module "standin_recipes" has no function "trian" '
                              '(did you mean "train"?)'),
    ("standin_recipes:NOT_A_FUNCTION", '"standin_recipes:NOT_A_FUNCTION" is an int, not a function'),
    ("needs_missing_dep:main", 'importing "needs_missing_dep" failed: '
                               "No module named 'no_such_dependency_xyz'"),
    ("standin_recipes", 'bad target "standin_recipes": expected "package.module:function"'),
    ("standin_recipes:", 'bad target "standin_recipes:"'),
    (":train", 'bad target ":train"'),
    ("standin-recipes:train", 'bad target "standin-recipes:train"'),
])
def test_a_target_that_cannot_be_used_is_one_line_and_exit_2(recipes, target, message):
    proc, lines = run_target(recipes, "--target", target)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("python -m runspec.recipes.target: error: ")
    assert message in proc.stderr
    assert lines == []


@pytest.mark.parametrize(("config", "message"), [
    (None, "cannot read the config"),
    ("- a\n- b\n", "holds a list, expected a mapping"),
    ("a: [1\n", "is not valid YAML"),
])
def test_a_bad_config_is_one_line_and_exit_2(recipes, config, message):
    path = write_config(recipes, config) if config is not None else str(recipes / "missing.yaml")
    proc, _ = run_target(recipes, "--target", "standin_recipes:train", "--config", path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


def test_megatron_targets_without_megatron_say_how_to_get_it(tmp_path):
    if importlib.util.find_spec("megatron") is not None:
        pytest.skip("megatron is installed here")
    proc, _ = run_target(tmp_path, "--target",
                         "megatron.bridge.recipes.llama:llama32_1b_pretrain_config")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "megatron-bridge must be installed" in proc.stderr
    assert "Python 3.12 and CUDA" in proc.stderr and "nvcr.io/nvidia/nemo" in proc.stderr


def test_the_module_imports_no_heavy_library():
    code = ("import sys, runspec.recipes.target\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'megatron', 'omegaconf', 'hydra', 'pydantic')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


# --- pieces, against stand-ins ------------------------------------------------------------------

@dataclass
class StandInTrain:
    """Stand-in for Megatron-Bridge's TrainingConfig (only what the tests need)."""

    train_iters: int = 1000
    global_batch_size: int = 512
    micro_batch_size: int = 1


@dataclass
class StandInModel:
    """Stand-in for a model provider: a dataclass with a dict field and an object field."""

    seq_length: int = 8192
    num_layers: int = 16
    extra: dict = field(default_factory=lambda: {"a": 1, "b": {"c": 2, "d": 3}})
    activation: Any = field(default_factory=lambda: object())


@dataclass
class StandInContainer:
    """Stand-in for a ConfigContainer tree: nested dataclasses, a None section, a scalar."""

    train: StandInTrain = field(default_factory=StandInTrain)
    model: StandInModel = field(default_factory=StandInModel)
    profiling: Any = None
    mixed_precision: str = "bf16_mixed"


def test_overrides_set_nested_attributes_and_leave_the_rest():
    cfg = StandInContainer()
    apply_overrides(cfg, {"train": {"train_iters": 10, "global_batch_size": 8},
                          "model": {"seq_length": 512, "extra": {"b": {"c": 20}}},
                          "mixed_precision": "fp8"})
    assert cfg.train == StandInTrain(train_iters=10, global_batch_size=8, micro_batch_size=1)
    assert cfg.model.seq_length == 512 and cfg.model.num_layers == 16
    assert cfg.model.extra == {"a": 1, "b": {"c": 20, "d": 3}}  # dicts are merged
    assert cfg.mixed_precision == "fp8"


def test_a_mapping_with_a_target_is_taken_whole():
    cfg = StandInContainer()
    value = {"_target_": "some.module.ProfilingConfig", "use_pytorch_profiler": True}
    apply_overrides(cfg, {"profiling": value})
    assert cfg.profiling == value


def test_unknown_keys_are_all_reported_with_hints_and_nothing_is_set():
    cfg = StandInContainer()
    with pytest.raises(OverrideError) as raised:
        apply_overrides(cfg, {"train": {"train_iters": 10, "trian_iters": 5},
                              "modle": {"seq_length": 1}})
    message = str(raised.value)
    assert '"train.trian_iters" is not a key of "train" (StandInTrain); ' \
           'did you mean "train.train_iters"?' in message
    assert '"modle" is not a key of the config (StandInContainer); did you mean "model"?' in message
    assert isinstance(raised.value, TargetError)
    assert cfg.train.train_iters == 1000  # checked before anything was set


def test_keys_inside_none_or_a_plain_value_cannot_be_set():
    problems = unknown_keys(StandInContainer(), {"profiling": {"use_pytorch_profiler": True},
                                                 "mixed_precision": {"fp8": True},
                                                 "model": {"activation": {"x": 1}}})
    assert problems == [
        '"profiling" is None in the recipe, so it has no keys to set; '
        "give the whole object with a _target_ key",
        '"mixed_precision" is a str, not a config section with keys to set',
        '"model.activation" is an object, not a config section with keys to set',
    ]


def test_hydra_arguments_need_megatron_bridges_helpers():
    with pytest.raises(OverrideError, match="key=value arguments"):
        apply_overrides(StandInContainer(), {}, ["train.train_iters=5"])


def test_config_containers_are_recognised_by_name_and_module():
    standin = type("ConfigContainer", (), {"__module__": "megatron.bridge.training.config"})
    subclass = type("MyContainer", (standin,), {"__module__": "mine"})
    elsewhere = type("ConfigContainer", (), {"__module__": "other.lib"})
    assert is_config_container(standin())
    assert is_config_container(subclass())
    assert not is_config_container(elsewhere())
    assert not is_config_container({"train": {}})


def test_keyword_acceptance_counts_named_parameters_only():
    def named(lr=0.1, *, steps=1):
        return lr, steps

    def var_keywords(**config):
        return config

    assert accepts_keywords(named, {"lr": 1, "steps": 2})
    assert not accepts_keywords(named, {"lr": 1, "other": 2})
    assert not accepts_keywords(var_keywords, {"lr": 1})
    assert not accepts_keywords(named, {1: "int key"})


def test_parse_target():
    assert parse_target("megatron.bridge.recipes.llama:llama32_1b_pretrain_config") == (
        "megatron.bridge.recipes.llama", "llama32_1b_pretrain_config")
    for bad in ("pkg.mod", "pkg.mod:", "pkg..mod:f", "pkg.mod:f:g", "pkg.mod:1f"):
        with pytest.raises(TargetError):
            parse_target(bad)


class StandInTensor:
    """Stand-in for a one-element torch tensor (``.item()``)."""

    def __init__(self, value: float):
        self.value = value

    def item(self) -> float:
        return self.value


def standin_context(step: int, loss: float | None, grad_norm: float | None = 1.5,
                    pipeline: int = 1) -> SimpleNamespace:
    """Stand-in for Megatron-Bridge's CallbackContext at on_train_step_end."""
    cfg = SimpleNamespace(train=SimpleNamespace(global_batch_size=8),
                          model=SimpleNamespace(seq_length=512,
                                                pipeline_model_parallel_size=pipeline))
    state = SimpleNamespace(cfg=cfg, train_state=SimpleNamespace(step=step))
    losses = {"lm loss": StandInTensor(loss)} if loss is not None else {}
    return SimpleNamespace(state=state, loss_dict=losses, grad_norm=grad_norm)


def test_step_reporter_writes_one_line_per_step(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("RUNSPEC_METRICS", str(metrics))
    monkeypatch.setenv("RANK", "2")
    times = iter([10.0, 10.5, 11.0])
    reporter = StepReporter(clock=lambda: next(times), world_size=4)
    reporter.on_train_start(standin_context(0, None))
    # train_state.step is the count before this step (the event fires before it moves).
    reporter.on_train_step_end(standin_context(0, 9.5))
    reporter.on_train_step_end(standin_context(1, 8.25, grad_norm=None, pipeline=2))
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    # 8 × 512 tokens in 0.5 s, shared by the 4 (then 2) ranks that hold the loss.
    assert lines == [
        {"rank": 2, "step": 1, "loss": 9.5, "grad_norm": 1.5, "tokens_per_s": 2048.0},
        {"rank": 2, "step": 2, "loss": 8.25, "tokens_per_s": 4096.0},
    ]


def test_step_reporter_skips_ranks_without_a_loss_and_never_breaks_training(
        tmp_path, monkeypatch, capsys):
    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("RUNSPEC_METRICS", str(metrics))
    reporter = StepReporter(clock=lambda: 1.0, world_size=1)
    reporter.on_train_step_end(standin_context(1, None))  # not the last pipeline stage
    assert not metrics.exists()
    reporter.on_train_step_end(SimpleNamespace(loss_dict={"lm loss": "not a number"}))
    reporter.on_train_step_end(standin_context(2, 1.0))  # reporting stopped after the failure
    assert not metrics.exists()
    assert capsys.readouterr().err.count("warning: step metrics are off") == 1


# --- the Megatron-Bridge glue, against a stand-in package ----------------------------------------

STANDIN_MEGATRON = {
    "megatron/__init__.py": "",
    "megatron/bridge/__init__.py": "",
    "megatron/bridge/training/__init__.py": "",
    "megatron/bridge/recipes/__init__.py": "",
    # Stand-in for megatron.bridge.training.config: only the class name and module matter.
    "megatron/bridge/training/config.py": """
from dataclasses import dataclass, field


@dataclass
class StandInTrain:
    train_iters: int = 1000
    global_batch_size: int = 512


@dataclass
class StandInModel:
    seq_length: int = 8192
    pipeline_model_parallel_size: int = 1


@dataclass
class ConfigContainer:
    train: StandInTrain = field(default_factory=StandInTrain)
    model: StandInModel = field(default_factory=StandInModel)
""",
    "megatron/bridge/recipes/standin.py": """
from megatron.bridge.training.config import ConfigContainer


def tiny_pretrain_config():
    return ConfigContainer()


def tiny_sft_config():
    return ConfigContainer()
""",
    "megatron/bridge/training/gpt_step.py": "def forward_step(state, data_iterator, model):\n    pass\n",
    # Stand-in for the documented callback API: register(event, fn) and fire(event, context).
    "megatron/bridge/training/callbacks.py": """
class CallbackManager:
    def __init__(self):
        self.callbacks = {}

    def register(self, event, fn):
        self.callbacks.setdefault(event, []).append(fn)

    def fire(self, event, context):
        for fn in self.callbacks.get(event, []):
            fn(context)
""",
    # Stand-in for pretrain(config, forward_step_func, callbacks=None): a fake training loop.
    "megatron/bridge/training/pretrain.py": """
import json
from types import SimpleNamespace


def pretrain(config, forward_step_func, callbacks=None):
    with open("called.json", "w") as handle:
        json.dump({"entry": "pretrain", "train_iters": config.train.train_iters,
                   "seq_length": config.model.seq_length,
                   "forward_step": forward_step_func.__module__,
                   "callbacks": callbacks is not None}, handle)
    state = SimpleNamespace(cfg=config, train_state=SimpleNamespace(step=0))
    callbacks.fire("on_train_start", SimpleNamespace(state=state, loss_dict=None))
    while state.train_state.step < config.train.train_iters:
        done = state.train_state.step + 1
        # As in Megatron-Bridge's train loop: the event fires before the step count moves.
        callbacks.fire("on_train_step_end", SimpleNamespace(
            state=state, loss_dict={"lm loss": 12.0 / done}, grad_norm=2.0))
        state.train_state.step += 1
""",
    # Stand-in for a release whose finetune() takes no callbacks.
    "megatron/bridge/training/finetune.py": """
import json


def finetune(config, forward_step_func):
    with open("called.json", "w") as handle:
        json.dump({"entry": "finetune", "train_iters": config.train.train_iters}, handle)
""",
}


@pytest.fixture
def standin_megatron(tmp_path: Path) -> Path:
    for name, text in STANDIN_MEGATRON.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_a_config_container_gets_the_overrides_and_is_pretrained(standin_megatron):
    config = write_config(standin_megatron, """\
        train:
          train_iters: 3
          global_batch_size: 8
        model:
          seq_length: 512
        """)
    proc, lines = run_target(standin_megatron, "--target",
                             "megatron.bridge.recipes.standin:tiny_pretrain_config",
                             "--config", config)
    assert proc.returncode == 0, proc.stderr
    called = json.loads((standin_megatron / "called.json").read_text())
    assert called == {"entry": "pretrain", "train_iters": 3, "seq_length": 512,
                      "forward_step": "megatron.bridge.training.gpt_step", "callbacks": True}
    assert [(line["step"], line["loss"], line["grad_norm"]) for line in lines] == [
        (1, 12.0, 2.0), (2, 6.0, 2.0), (3, 4.0, 2.0)]
    assert all(line["tokens_per_s"] > 0 for line in lines)
    # No omegaconf_utils in the stand-in: the note says attributes were set directly.
    assert "omegaconf_utils is not importable" in proc.stderr


def test_a_finetune_recipe_runs_finetune_and_works_without_callbacks(standin_megatron):
    config = write_config(standin_megatron, "train:\n  train_iters: 2\n")
    proc, lines = run_target(standin_megatron, "--target",
                             "megatron.bridge.recipes.standin:tiny_sft_config", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((standin_megatron / "called.json").read_text()) == {
        "entry": "finetune", "train_iters": 2}
    assert lines == []


def test_unknown_container_keys_stop_the_run_before_training(standin_megatron):
    config = write_config(standin_megatron, "train:\n  trian_iters: 2\n")
    proc, _ = run_target(standin_megatron, "--target",
                         "megatron.bridge.recipes.standin:tiny_pretrain_config", "--config", config)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert '"train.trian_iters" is not a key of "train"' in proc.stderr
    assert 'did you mean "train.train_iters"?' in proc.stderr
    assert not (standin_megatron / "called.json").exists()


# --- Megatron-Bridge, for real -------------------------------------------------------------------

def _megatron_bridge_importable() -> bool:
    if importlib.util.find_spec("megatron") is None:
        return False
    try:
        importlib.import_module("megatron.bridge")
    except Exception:
        return False
    return True


@pytest.mark.slow
def test_megatron_bridge_llama32_1b_trains_a_few_steps(tmp_path):
    """The example's recipe, shrunk further (2 layers, 3 steps), on one GPU under torchrun.

    Needs a GPU, Megatron-Bridge and access to the gated meta-llama/Llama-3.2-1B config on
    the Hugging Face Hub (HF_TOKEN), as examples/megatron_bridge/README.md describes.
    """
    if not _megatron_bridge_importable():
        pytest.skip(MEGATRON_SKIP)
    run_dir = tmp_path / "run"
    checkpoint = json.dumps(str(run_dir / "checkpoint"))
    config = write_config(tmp_path, f"""\
        train: {{train_iters: 3, global_batch_size: 2, micro_batch_size: 1}}
        model: {{seq_length: 256, num_layers: 2}}
        dataset: {{seq_length: 256}}
        scheduler: {{lr_warmup_iters: 1}}
        validation: {{eval_iters: 1}}
        logger: {{log_interval: 1, tensorboard_dir: {json.dumps(str(run_dir / "tb_logs"))}}}
        checkpoint: {{save: {checkpoint}, load: {checkpoint}, save_interval: 3}}
        """)
    metrics = tmp_path / "metrics.jsonl"
    env = {**os.environ, "RUNSPEC_METRICS": str(metrics),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
         "-m", "runspec.recipes.target",
         "--target", "megatron.bridge.recipes.llama:llama32_1b_pretrain_config",
         "--config", config],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(line) for line in metrics.read_text().splitlines()] \
        if metrics.exists() else []
    from megatron.bridge.training.pretrain import pretrain

    if "callbacks" in inspect.signature(pretrain).parameters:
        assert [line["step"] for line in lines][-1] == 3
        assert all(line["loss"] > 0 for line in lines)
