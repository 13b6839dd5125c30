"""PEP 723 inline script metadata: a recipe's ``[tool.runspec]`` defaults (Nemotron's v1).

A script may start with::

    # /// script
    # [tool.runspec]
    # name = "tiny/train"
    # [tool.runspec.run]
    # launch = "torchrun"
    # ///

Its values become defaults that the manifest overrides, with Nemotron's meanings:
``run.cmd`` (with ``{script}`` / ``{config}``) is how the script starts; ``image`` is the
default container; ``[tool.runspec.env]`` is exported; ``config.format = "json"`` hands the
script a JSON config; ``gpus_per_node = "gpu"`` is one torchrun process per visible GPU; a
missing ``run.launch`` is ``torchrun``, and a launch runspec does not know (``"python"``)
runs the script directly, with a note in the plan. Unlike Nemotron we check the types and
names of every key, at its line in the script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runspec.manifest.document import Located, Position
from runspec.manifest.errors import Diagnostic, ManifestError
from runspec.manifest.explain import describe
from runspec.manifest.suggest import did_you_mean, one_of
from runspec.manifest.vocabulary import ENV_NAME_PATTERN, LAUNCHES

_BLOCK = re.compile(r"^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$", re.M)
"""PEP 723's reference regex; ``script_blocks`` finds the same blocks in linear time (the
regex backtracks quadratically over many unclosed ``# /// x`` lines)."""
_START = re.compile(r"# /// (?P<type>[a-zA-Z0-9-]+)")


@dataclass(frozen=True)
class Block:
    """One ``# /// TYPE`` … ``# ///`` block: its type, offsets and comment lines."""

    type: str
    start: int          # offset of the opening line
    content_start: int  # offset of the first content line
    content: str        # the content lines, each with its newline


def script_blocks(text: str) -> list[Block]:
    """Every metadata block, as ``_BLOCK.finditer`` would match them."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    found: list[Block] = []
    i = 0
    while i < len(lines) - 1:  # the opening line needs its newline
        opening = _START.fullmatch(lines[i])
        if not opening:
            i += 1
            continue
        end = None
        j = i + 1
        while j < len(lines) and (lines[j] == "#" or lines[j].startswith("# ")):
            if lines[j] == "# ///" and j > i + 1:
                end = j  # greedy, like the regex: the last closing line of the comment run
            j += 1
        if end is None:  # no later opening in this comment run can close either
            i = max(i + 1, j)
            continue
        found.append(Block(opening["type"], offsets[i], offsets[i + 1],
                           text[offsets[i + 1]:offsets[end]]))
        i = end + 1
    return found

CONFIG_FORMATS = ("omegaconf", "yaml", "json")
GPU_COUNT = "gpu"
"""``gpus_per_node = "gpu"``: as many torchrun processes as the node has GPUs."""
NEMOTRON_DEFAULT_LAUNCH = "torchrun"
"""What Nemotron runs a script with when its block names no ``run.launch``."""

# key path → (expected python types, allowed values or None, description)
RUNSPEC_KEYS: dict[tuple[str, ...], tuple[tuple[type, ...], tuple[str, ...] | None]] = {
    ("schema",): ((str, int), ("1",)),
    ("docs",): ((str,), None),
    ("name",): ((str,), None),
    ("image",): ((str,), None),
    ("setup",): ((str,), None),
    ("run",): ((dict,), None),
    ("run", "launch"): ((str,), None),  # unknown values run directly (with a note)
    ("run", "cmd"): ((str,), None),
    ("run", "workdir"): ((str,), None),
    ("config",): ((dict,), None),
    ("config", "dir"): ((str,), None),
    ("config", "default"): ((str,), None),
    ("config", "format"): ((str,), CONFIG_FORMATS),
    ("resources",): ((dict,), None),
    ("resources", "nodes"): ((int,), None),
    ("resources", "gpus_per_node"): ((int, str), None),
    ("env",): ((dict,), None),
}


@dataclass(frozen=True)
class ScriptSpec:
    """The ``[tool.runspec]`` of a recipe script, as plain data (empty when absent)."""

    path: Path
    data: dict[str, Any]
    where: Any = None  # key path → (Position, source line), for diagnostics at the script

    def diagnostic(self, path: tuple[str, ...], message: str, hint: str | None = None,
                   severity: str = "error") -> Diagnostic:
        """A diagnostic at the key's line in the script (the block's first line if unknown)."""
        if self.where is not None:
            position, source = self.where(path)
            return Diagnostic(position.file, position.line, position.col,
                              "tool.runspec." + ".".join(path), message, hint, severity,
                              length=position.length, source=source)
        return Diagnostic(str(self.path), 1, 1, "tool.runspec." + ".".join(path), message, hint,
                          severity)

    def get(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def read_script_spec(path: Path, display: str | None = None) -> ScriptSpec:
    """Parse and check the script's ``[tool.runspec]``; raises ManifestError with positions."""
    file = display or _shown(path)
    from runspec.manifest.load import MAX_BYTES, read_bytes

    try:  # a regular file only, and its first MAX_BYTES: the block sits at the top
        raw = read_bytes(path, "recipe script", truncate=True)
    except ManifestError as error:
        if error.diagnostics[0].message == "file not found":
            return ScriptSpec(path, {})  # reported by the checks, where a manifest names it
        raise
    try:
        text = raw.decode("utf-8", "ignore" if len(raw) == MAX_BYTES else "strict")
    except UnicodeDecodeError:
        return ScriptSpec(path, {})
    blocks = [b for b in script_blocks(text) if b.type == "script"]
    if not blocks:
        return ScriptSpec(path, {})
    if len(blocks) > 1:
        line = text[: blocks[1].start].count("\n") + 1
        raise ManifestError([Diagnostic(file, line, 1, "(script metadata)",
                                        "more than one `# /// script` block (PEP 723 allows one)")])
    block = blocks[0]
    first_line = text[: block.content_start].count("\n") + 1
    toml_text = "".join(line[2:] if line.startswith("# ") else line[1:]
                        for line in block.content.splitlines(keepends=True))
    import tomllib

    try:
        data = tomllib.loads(toml_text)
    except (RecursionError, ValueError) as error:
        if isinstance(error, tomllib.TOMLDecodeError):
            raise _block_error(toml_text, text, file, first_line, error) from None
        raise ManifestError([Diagnostic(file, first_line, 1, "tool.runspec",
                                        "the PEP 723 block is nested too deeply or holds a "
                                        "number too long to read")]) from None
    from runspec.manifest.toml_positions import TooDeep, toml_positions

    try:
        positions = toml_positions(toml_text, file)
    except TooDeep as deep:
        raise ManifestError([Diagnostic(file, deep.at.line + first_line - 1, deep.at.col + 2,
                                        "tool.runspec", "the PEP 723 block is nested too "
                                        "deeply")]) from None
    spec = (data.get("tool") or {}).get("runspec") if isinstance(data.get("tool"), dict) else None
    if spec is None:
        return ScriptSpec(path, {})
    lines = text.splitlines()
    problems = list(_check(spec, positions, first_line, file, lines))
    if problems:
        raise ManifestError(problems)

    def where(key_path: tuple[str, ...]) -> tuple[Position, str | None]:
        probe = ("tool", "runspec") + key_path
        while probe:
            found = _shift(positions.get(probe), first_line, True)
            if found:
                break
            probe = probe[:-1]
        found = found or Position(file, first_line, 1)
        return found, lines[found.line - 1] if 0 < found.line <= len(lines) else None

    return ScriptSpec(path, spec, where)


def _shown(path: Path) -> str:
    """The script as diagnostics name it: relative to the working directory where it can be."""
    import os

    try:
        return os.path.relpath(path.resolve())
    except (OSError, ValueError):
        return str(path)


def _block_error(toml_text: str, text: str, file: str, first_line: int, error: Exception
                 ) -> ManifestError:
    """Invalid TOML in the block, at its line in the script."""
    from runspec.manifest.load import toml_error

    inner = toml_error(toml_text, file, error).diagnostics[0]
    line = first_line + inner.line - 1
    source = text.splitlines()[line - 1] if line <= len(text.splitlines()) else None
    return ManifestError([replace(inner, line=line, col=inner.col + 2, source=source,
                                  path="tool.runspec", message=inner.message.replace(
                                      "invalid TOML", "invalid TOML in the PEP 723 block"))])


def _shift(located: Located | None, first_line: int, prefer_value: bool) -> Position | None:
    if located is None:
        return None
    pos = (located.value or located.key) if prefer_value else (located.key or located.value)
    if pos is None:
        return None
    return Position(pos.file, pos.line + first_line - 1, pos.col + 2, pos.length)


def _check(spec: Any, positions: dict, first_line: int, file: str, lines: list[str]):
    prefix = ("tool", "runspec")

    def where(path: tuple[str, ...], value: bool) -> Position:
        probe = prefix + path
        while probe:
            found = _shift(positions.get(probe), first_line, value)
            if found:
                return found
            probe = probe[:-1]
        return Position(file, first_line, 1)

    def diag(path: tuple[str, ...], message: str, hint: str | None, value: bool) -> Diagnostic:
        pos = where(path, value)
        source = lines[pos.line - 1] if 0 < pos.line <= len(lines) else None
        return Diagnostic(pos.file, pos.line, pos.col, "tool.runspec." + ".".join(path), message,
                          hint, length=pos.length, source=source)

    def walk(node: dict, path: tuple[str, ...]):
        for key, value in node.items():
            child = path + (key,)
            if child not in RUNSPEC_KEYS:
                known = [k[-1] for k in RUNSPEC_KEYS if k[:-1] == path]
                if path == ("env",):
                    if not re.fullmatch(ENV_NAME_PATTERN, key):  # it becomes `export KEY=…`
                        yield diag(child, f"{key!r} is not an environment variable name",
                                   "letters, digits and _, not starting with a digit", False)
                    elif not isinstance(value, str):
                        yield diag(child, f"expected a string, got {describe(value)}", None, True)
                    continue
                yield diag(child, "unknown key", did_you_mean(key, known)
                           or f"expected one of {one_of(known)}", False)
                continue
            types, allowed = RUNSPEC_KEYS[child]
            if not isinstance(value, types) or isinstance(value, bool):
                expected = " or ".join({dict: "a table", str: "a string", int: "an integer"}[t]
                                       for t in types)
                yield diag(child, f"expected {expected}, got {describe(value)}", None, True)
            elif child == ("resources", "gpus_per_node") and isinstance(value, str) \
                    and value != GPU_COUNT:
                yield diag(child, f'expected an integer or "{GPU_COUNT}", got {describe(value)}',
                           None, True)
            elif allowed is not None and str(value) not in allowed:
                yield diag(child, f"expected {one_of(allowed)}, got {describe(value)}",
                           did_you_mean(str(value), allowed), True)
            elif child == ("run", "cmd") and isinstance(value, str) and \
                    (problem := _template_problem(value)):
                yield diag(child, problem, "use only {script} and {config}; write other "
                           "braces as {{ and }}", True)
            elif isinstance(value, dict):
                yield from walk(value, child)

    if not isinstance(spec, dict):
        yield diag((), "expected a table", None, False)
        return
    yield from walk(spec, ())


def _template_problem(command: str) -> str | None:
    """Why ``run.cmd`` fails Nemotron's ``str.format(script=…, config=…)``, if it does."""
    try:
        command.format(script="", config="")
    except (KeyError, IndexError, ValueError) as error:
        return f"run.cmd is formatted with {{script}} and {{config}} only: {error!s}"
    return None


def default_config_under(spec: ScriptSpec, chosen: Path) -> Path | None:
    """Nemotron's config pipeline: a config chosen from the script's ``config.dir`` (``-c
    tiny``) is merged over that directory's default config, so ``tiny.yaml`` may hold only
    what differs. Returns the default to merge under ``chosen``, if there is one."""
    if not spec.data or spec.get("config", "dir") is None:
        return None
    directory = (spec.path.parent / spec.get("config", "dir")).resolve()
    default = directory / f"{spec.get('config', 'default', default='default')}.yaml"
    chosen = chosen.resolve()
    if chosen.parent != directory or chosen == default or not default.is_file():
        return None
    return default


@dataclass(frozen=True)
class ScriptLaunch:
    """How the block says the script starts: the launch mode, the ``run.cmd`` template if
    any, and a note when the block's launch is one runspec runs as ``direct``."""

    launch: str | None
    command: str | None
    note: str | None


def script_launch(spec: ScriptSpec) -> ScriptLaunch:
    """``run.launch`` / ``run.cmd`` with Nemotron's defaults. ``cmd`` is verbatim: with it a
    torchrun launch is replaced by the command (as Nemotron does), and a Ray launch runs the
    command as its entrypoint."""
    if not spec.data:
        return ScriptLaunch(None, None, None)
    command = spec.get("run", "cmd")
    launch = spec.get("run", "launch", default=NEMOTRON_DEFAULT_LAUNCH)
    note = None
    if launch not in LAUNCHES:
        note = (f'{spec.path.name}: run.launch = "{launch}" is not a launch runspec knows; '
                'it runs as "direct" (the script, or its run.cmd, in one process)')
        launch = "direct"
    if command is not None and launch == "torchrun":
        launch = "direct"  # Nemotron: an explicit cmd is forwarded as-is
    return ScriptLaunch(launch, command, note)
