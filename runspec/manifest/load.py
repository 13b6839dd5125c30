"""Load TOML and YAML files into ``Document``s with positions, and follow ``extends``.

TOML goes through the standard library's tomllib plus our position scanner, YAML through
ruamel.yaml (round-trip mode, which keeps line:col). Both reject duplicate keys. Every failure becomes a ``ManifestError`` with
a diagnostic that names the file and, where there is one, the line and column.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from runspec.manifest.document import Document, KeyPath, Located, Position, format_path
from runspec.manifest.errors import Diagnostic, ManifestError

MANIFEST_SUFFIXES = (".toml", ".yaml", ".yml")
MAX_BYTES = 2 * 1024 * 1024
"""Largest file we read: manifests are small; a bigger one is a mistake (a data file, a log)."""


def _fail(file: str | Path, message: str, hint: str | None = None, line: int = 1, col: int = 1,
          path: str = "(file)", text: str | None = None, length: int = 1) -> ManifestError:
    """A ManifestError with one diagnostic; shows the source line when ``text`` is given."""
    source = None
    if text is not None:
        lines = text.splitlines()
        source = lines[line - 1] if 0 < line <= len(lines) else None
    return ManifestError([Diagnostic(str(file), line, col, path, message, hint, length=length,
                                     source=source)])


def read_text(path: Path) -> str:
    """The file's text, or a ManifestError saying why it cannot be a manifest."""
    if not path.exists():
        hint = None
        if path.parent.is_dir():
            from runspec.manifest.suggest import did_you_mean

            hint = did_you_mean(path.name, [p.name for p in path.parent.iterdir()])
        raise _fail(path, "file not found", hint)
    if path.is_dir():
        raise _fail(path, "is a directory, expected a manifest file")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _fail(
                path, f"file is too large for a manifest ({size / 1e6:.1f} MB > {MAX_BYTES / 1e6:.1f} MB)",
                "is this a data file? Manifests hold settings; keep data in artifacts",
            )
        raw = path.read_bytes()
    except PermissionError:
        raise _fail(path, "permission denied: cannot read the file") from None
    except OSError as error:
        raise _fail(path, f"cannot read the file: {error.strerror or error}") from None
    if b"\x00" in raw[:8192]:
        raise _fail(path, "binary file, expected UTF-8 text (TOML or YAML)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise _fail(path, f"not valid UTF-8 (byte 0x{raw[error.start]:02x})", line=line) from None
    return text.removeprefix("\ufeff")


def _plain(value: Any) -> Any:
    """Round-trip containers and scalars → plain dict/list/str/int/float/bool."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, str):
        return str(value)
    return value


def parse_toml(text: str, file: str) -> tuple[Any, dict[KeyPath, Located]]:
    """Data from the standard library's tomllib (a third of tomlkit's import and parse time,
    which counts against validate's cold start), positions from our scanner."""
    import tomllib

    from runspec.manifest.toml_positions import toml_positions

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise toml_error(text, file, error) from None
    return _plain(data), toml_positions(text, file)


_TOMLLIB_WHERE = re.compile(r"^(?P<message>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$")
_TOML_HINTS = {
    "unclosed array": "a list opened above is missing its closing ]",
    "unclosed inline table": "an inline table opened above is missing its closing }",
    "invalid value": 'strings need quotes: name = "value"',
    "expected '=' after a key in a key/value pair": 'write key = value',
}


def toml_error(text: str, file: str, error: Exception) -> ManifestError:
    """The clearest account of invalid TOML: a duplicate with both places, else tomllib's words."""
    import tomllib

    from runspec.manifest.toml_positions import find_duplicate

    duplicate = find_duplicate(text, file)
    if duplicate is not None:
        where = duplicate.again
        first = f" (first set on line {duplicate.first.line})" if duplicate.first else ""
        return _fail(file, f'duplicate key "{duplicate.path[-1]}"{first}', "each key may appear once",
                     where.line, where.col, format_path(duplicate.path), text, where.length)
    line = getattr(error, "line", 1) or 1
    col = (getattr(error, "col", 0) or 0) + 1
    message = re.sub(r" at line \d+ col \d+$", "", str(error)).rstrip(".")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as precise:
        found = _TOMLLIB_WHERE.match(str(precise))
        if found:
            message = found["message"]
            if found["line"]:
                line, col = int(found["line"]), int(found["col"])
    hint = _TOML_HINTS.get(message.lower())
    return _fail(file, f"invalid TOML: {message[:1].lower()}{message[1:]}", hint, line, col,
                 text=text)


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, Located]]:
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except DuplicateKeyError as error:
        mark = error.problem_mark
        key = re.search(r'found duplicate key "(.*?)"', str(error))
        name = key.group(1) if key else "?"
        first = error.context_mark
        where = f" (first set on line {first.line + 1})" if first is not None else ""
        raise _fail(file, f'duplicate key "{name}"{where}', "each key may appear once",
                    mark.line + 1, mark.column + 1, _yaml_key_path(text, mark.line, name), text,
                    len(name)) from None
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "syntax error"
        hint = ("check the indentation: keys of one table line up, and a value after "
                "`key:` needs a space" if "mapping values are not allowed" in problem else None)
        raise _fail(file, f"invalid YAML: {problem}", hint,
                    (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1,
                    text=text) from None
    except YAMLError as error:
        raise _fail(file, f"invalid YAML: {error}") from None
    positions: dict[KeyPath, Located] = {}
    _yaml_positions(data, (), file, positions)
    return _plain(data), positions


def _yaml_key_path(text: str, line: int, name: str) -> str:
    """The dotted path of the key on 0-based ``line``, from indentation (good for block YAML)."""
    lines = text.splitlines()
    path = [name]
    indent = len(lines[line]) - len(lines[line].lstrip()) if line < len(lines) else 0
    for above in reversed(lines[:line]):
        stripped = above.lstrip()
        depth = len(above) - len(stripped)
        if stripped and not stripped.startswith("#") and depth < indent and ":" in stripped:
            path.insert(0, stripped.split(":", 1)[0].strip().strip("'\"").lstrip("- "))
            indent = depth
    return ".".join(path)


def _yaml_positions(node: Any, path: KeyPath, file: str, out: dict[KeyPath, Located]) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        for key, value in node.items():
            child = path + (str(key),)
            try:
                kl, kc = node.lc.key(key)
                vl, vc = node.lc.value(key)
            except (KeyError, TypeError):
                continue
            vlen = len(str(value)) if not isinstance(value, dict | list) else 1
            out[child] = Located(Position(file, kl + 1, kc + 1, len(str(key))),
                                 Position(file, vl + 1, vc + 1, vlen))
            _yaml_positions(value, child, file, out)
    elif isinstance(node, CommentedSeq):
        for index, value in enumerate(node):
            child = path + (index,)
            try:
                line, col = node.lc.item(index)
            except (KeyError, TypeError, IndexError):
                continue
            vlen = len(str(value)) if not isinstance(value, dict | list) else 1
            pos = Position(file, line + 1, col + 1, vlen)
            out[child] = Located(None, pos)
            _yaml_positions(value, child, file, out)


def load_document(path: str | Path, display: str | None = None) -> Document:
    """Parse one TOML or YAML file (no ``extends``) into a Document; top level must be a table."""
    path = Path(path)
    file = display or str(path)
    if path.suffix not in MANIFEST_SUFFIXES:
        raise _fail(file, f'unsupported file type "{path.suffix or "(none)"}"',
                    "use .toml, .yaml or .yml")
    text = read_text(path)
    parse = parse_toml if path.suffix == ".toml" else parse_yaml
    data, positions = parse(text, file)
    if data is None or data == {}:
        needs = ('schema: runspec/v1` and `name: …' if path.suffix != ".toml"
                 else 'schema = "runspec/v1"` and `name = "…"')
        raise _fail(file, "file is empty", f"a manifest needs at least `{needs}`")
    if not isinstance(data, dict):
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number",
                "bool": "true or false"}.get(type(data).__name__, type(data).__name__)
        hint = "remove the leading `- `: settings are `key: value` lines" if isinstance(data, list) \
            else None
        raise _fail(file, f"expected a table of settings at the top level, got {kind}", hint)
    return Document(path=path, data=data, display=file, positions=positions,
                    sources={file: text.splitlines()}, files=[path])


def load_manifest(path: str | Path) -> Document:
    """Load a manifest and deep-merge the chain of ``extends`` bases beneath it."""
    return _load_with_bases(Path(path), [])


def _load_with_bases(path: Path, chain: list[Path]) -> Document:
    document = load_document(path, display=_display(path))
    base_ref = document.data.get("extends")
    if base_ref is None:
        return document
    position = document.value_position(("extends",))
    if not isinstance(base_ref, str):
        return document  # the schema reports the wrong type
    try:
        base_path = (path.parent / base_ref).resolve()
    except (OSError, ValueError):
        base_path = path.parent / base_ref
    resolved_chain = chain + [path.resolve()]
    if not _is_file(base_path):
        from runspec.manifest.suggest import did_you_mean_file

        raise ManifestError([Diagnostic.at(position, "extends", f'base manifest "{base_ref}" not found',
                                           did_you_mean_file(base_ref, path.parent), document)])
    if base_path in resolved_chain:
        cycle = " → ".join(_display(p) for p in resolved_chain + [base_path])
        raise ManifestError([Diagnostic.at(position, "extends", f"extends cycle: {cycle}",
                                           document=document)])
    base = _load_with_bases(base_path, resolved_chain)
    return merge_documents(base, document)


def _is_file(path: Path) -> bool:
    """``is_file`` that answers False for names the OS cannot even encode (lone surrogates)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def merge_documents(base: Document, top: Document) -> Document:
    """``top`` over ``base``: tables merge key by key, anything else is replaced by ``top``."""
    data = deep_merge(base.data, top.data)
    positions = {p: loc for p, loc in base.positions.items() if _kept(p, top.data)}
    positions.update(top.positions)
    return Document(path=top.path, data=data, display=top.display, positions=positions,
                    files=[*base.files, *top.files],
                    sources={**base.sources, **top.sources})


def _kept(path: KeyPath, top: Any) -> bool:
    """Is the base's position at ``path`` still the source of the merged value?"""
    node = top
    for part in path:
        if isinstance(node, dict):
            if part not in node:
                return True
            node = node[part]
        else:
            return False  # replaced wholesale by a list or scalar in ``top``
    return False


def deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        merged = dict(base)
        for key, value in top.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return top


def _display(path: Path) -> str:
    """Paths in messages: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


__all__ = ["load_document", "load_manifest", "read_text", "deep_merge", "format_path"]
