"""The command line that starts a recipe, the same on every backend (single node).

Multi-node torchrun differs per scheduler and is built by that backend.
"""

from __future__ import annotations

from runspec.plan.resolve import ResolvedRecipe

PYTHON = "python"
"""Interpreter name as rendered; backends run with the project's environment first on PATH."""
TARGET_RUNNER = "runspec.recipes.target"
"""Module that imports a ``package.module:function`` recipe target, applies the config, runs it."""


class CommandError(ValueError):
    """A script's ``run.cmd`` that cannot be rendered (carries a hint)."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


def script_command(recipe: ResolvedRecipe, config_path: str | None) -> list[str]:
    """The script's ``run.cmd`` as Nemotron renders it: ``str.format`` with ``{script}`` and
    ``{config}``, split like a shell line, the recipe's arguments after it."""
    import shlex

    template = recipe.command or ""
    if "{config}" in template and config_path is None:
        raise CommandError("run.cmd names {config}, but the recipe has no config",
                           "set recipe.config, or give the script a config/default.yaml")
    try:
        line = template.format(script=recipe.entry, config=config_path or "")
        return [*shlex.split(line), *recipe.args]
    except (KeyError, IndexError, ValueError) as error:
        raise CommandError(f"run.cmd cannot be rendered: {error}",
                           "use only {script} and {config}; write other braces as {{ }}"
                           ) from None


def entry_argv(recipe: ResolvedRecipe, config_path: str | None) -> list[str]:
    """What comes after the interpreter or launcher: the recipe and its arguments."""
    if recipe.command is not None:
        return script_command(recipe, config_path)
    config_args = ["--config", config_path] if config_path else []
    if recipe.kind == "script":
        return [str(recipe.entry), *config_args, *recipe.args]
    if recipe.kind == "module":
        return ["-m", str(recipe.entry), *config_args, *recipe.args]
    if recipe.kind == "target":
        return ["-m", TARGET_RUNNER, "--target", str(recipe.entry), *config_args, *recipe.args]
    return [*recipe.entry, *recipe.args]


def recipe_argv(recipe: ResolvedRecipe, procs_per_node: int | str, config_path: str | None,
                nnodes_args: list[str] | None = None) -> list[str]:
    """The full argv on one node: ``python …`` or ``torchrun --standalone --nproc_per_node=N …``.

    A ``command`` recipe runs as written; with ``launch = "torchrun"`` torchrun starts it
    (``--no-python``: the command is an executable, not a Python file) once per process; so
    does a script's ``run.cmd``, which is also run as written."""
    tail = entry_argv(recipe, None if recipe.kind == "command" else config_path)
    as_written = recipe.kind == "command" or recipe.command is not None
    if recipe.launch == "torchrun":
        topology = nnodes_args if nnodes_args is not None else ["--standalone"]
        if as_written:
            return ["torchrun", *topology, f"--nproc_per_node={procs_per_node}", "--no-python",
                    *tail]
        if tail[0] == "-m":
            return ["torchrun", *topology, f"--nproc_per_node={procs_per_node}", "-m", *tail[1:]]
        return ["torchrun", *topology, f"--nproc_per_node={procs_per_node}", *tail]
    if as_written:
        return tail
    return [PYTHON, *tail]


MEASURE = ["-m", "runspec.measure"]


def measured(argv: list[str], run_dir: str, energy: bool = False, country: str | None = None,
             power_interval: float = 1.0, wandb: dict | None = None) -> list[str]:
    """Every run executes under the in-job wrapper, which records how it went in the run
    directory: ``python -m runspec.measure --run-dir D [--energy …] -- CMD…``."""
    flags = (["--energy", "--country", str(country), "--power-interval", f"{power_interval:g}"]
             if energy else [])
    if wandb:
        import json

        flags += ["--wandb", json.dumps(wandb, sort_keys=True, separators=(",", ":"))]
    return [PYTHON, *MEASURE, "--run-dir", run_dir, *flags, "--", *argv]
