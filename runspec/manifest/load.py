"""Load TOML and YAML files into ``Document``s with positions, and follow ``extends``.

TOML goes through the standard library's tomllib plus our position scanner, YAML through
ruamel.yaml (round-trip mode, which keeps line:col). Both reject duplicate keys. Every failure becomes a ``ManifestError`` with
a diagnostic that names the file and, where there is one, the line and column.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal, overload

from runspec.manifest.document import (
    MAX_DEPTH,
    Document,
    KeyPath,
    Located,
    Position,
    format_path,
)
from runspec.manifest.errors import Diagnostic, ManifestError

MANIFEST_SUFFIXES = (".toml", ".yaml", ".yml")
MAX_BYTES = 2 * 1024 * 1024
"""Largest file we read: manifests are small; a bigger one is a mistake (a data file, a log)."""
MAX_VALUES = 100_000
"""Most values (tables, lists and scalars) one document may hold once YAML aliases are
expanded: a few hundred bytes of nested aliases ("billion laughs") expand to billions."""
MAX_TEXT = 8 * MAX_BYTES
"""Most characters of text once aliases are expanded (an anchored long string, aliased often)."""
MAX_EXTENDS = 64
"""Longest ``extends`` chain (manifests, and env.toml profiles): real ones are a few deep."""


def _fail(file: str | Path, message: str, hint: str | None = None, line: int = 1, col: int = 1,
          path: str = "(file)", text: str | None = None, length: int = 1) -> ManifestError:
    """A ManifestError with one diagnostic; shows the source line when ``text`` is given."""
    source = None
    if text is not None:
        lines = text.splitlines()
        source = lines[line - 1] if 0 < line <= len(lines) else None
        if source is not None and len(source) > 400:  # a wall of text helps nobody
            source = None
    return ManifestError([Diagnostic(str(file), line, col, path, message, hint, length=length,
                                     source=source)])


_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_a_file(path: Path, mode: int, what: str) -> ManifestError:
    if stat.S_ISDIR(mode):
        return _fail(path, f"is a directory, expected a {what} file")
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "a special file")
    return _fail(path, f"{kind}, not a regular file: expected a {what} file",
                 "only files on disk are read: a pipe or device could block or never end")


def _unreadable(path: Path, error: OSError) -> ManifestError:
    if isinstance(error, FileNotFoundError):
        hint = None
        try:
            if path.parent.is_dir():
                from runspec.manifest.suggest import did_you_mean

                hint = did_you_mean(path.name, [p.name for p in path.parent.iterdir()])
        except OSError:
            pass
        return _fail(path, "file not found", hint)
    if isinstance(error, PermissionError):
        return _fail(path, "permission denied: cannot read the file")
    if error.errno == errno.ELOOP:
        return _fail(path, "symlink loop: the link leads back to itself",
                     "point the link at a real file")
    if error.errno == errno.ENAMETOOLONG:
        return _fail(path, "file name too long", "each part of a path must fit in 255 bytes")
    return _fail(path, f"cannot read the file: {error.strerror or error}")


def read_bytes(path: Path, what: str = "manifest", limit: int = MAX_BYTES,
               truncate: bool = False) -> bytes:
    """At most ``limit`` bytes of a regular file, or a ManifestError saying why not.

    Pipes and devices are refused before they are opened (a FIFO blocks, /dev/zero never
    ends), and never more than ``limit`` + 1 bytes are read, even if the file grew after
    the size check. With ``truncate`` a longer file yields its first ``limit`` bytes.
    """
    try:
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            raise _not_a_file(path, mode, what)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(path, flags), "rb") as handle:
            if not stat.S_ISREG(mode := os.fstat(handle.fileno()).st_mode):  # swapped since
                raise _not_a_file(path, mode, what)
            raw = handle.read(limit + 1)
    except OSError as error:
        raise _unreadable(path, error) from None
    except ValueError:  # a NUL or a lone surrogate in the name
        raise _fail(path, "not a usable file name") from None
    if len(raw) > limit:
        if truncate:
            return raw[:limit]
        size = max(len(raw), _size(path))
        raise _fail(path, f"file is too large for a {what} ({_megabytes(size)} > "
                          f"{_megabytes(limit)})",
                    "is this a data file? Manifests hold settings; keep data in artifacts")
    return raw


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def read_text(path: Path, what: str = "manifest") -> str:
    """The file's text, or a ManifestError saying why it cannot be a manifest."""
    raw = read_bytes(path, what)
    if b"\x00" in raw[:8192]:
        raise _fail(path, "binary file, expected UTF-8 text (TOML or YAML)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise _fail(path, f"not valid UTF-8 (byte 0x{raw[error.start]:02x})", line=line) from None
    return text.removeprefix("\ufeff")


class _Limit(Exception):
    """A document past ``MAX_DEPTH``, ``MAX_VALUES`` or ``MAX_TEXT``; ``path`` is filled in
    on the way out of the walk, ``alias`` is the outermost repeated (aliased) node on it."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind
        self.path: list[str | int] = []
        self.rooted = False   # ``path`` starts at the top of the document
        self.alias: tuple[Position, str | None, KeyPath] | None = None


class _Budget:
    """What is left of ``MAX_VALUES`` and ``MAX_TEXT`` while one document is walked."""

    __slots__ = ("values", "text")

    def __init__(self) -> None:
        self.values, self.text = MAX_VALUES, MAX_TEXT

    def spend(self, value: Any, depth: int) -> None:
        self.values -= 1
        if self.values < 0:
            raise _Limit("values")
        if isinstance(value, str):
            self.spend_text(value)
        if depth > MAX_DEPTH:
            raise _Limit("depth")

    def spend_text(self, text: str) -> None:
        self.text -= len(text)
        if self.text < 0:
            raise _Limit("text")


def _plain(value: Any, budget: _Budget | None = None, depth: int = 0) -> Any:
    """Round-trip containers and scalars → plain dict/list/str/int/float/bool, within the
    budget: every value visited counts, so shared (aliased) parts count each time."""
    budget = budget or _Budget()
    budget.spend(value, depth)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            try:
                out[str(k)] = _plain(v, budget, depth + 1)
            except _Limit as limit:
                limit.path.insert(0, str(k))
                raise
        return out
    if isinstance(value, list | tuple):
        items = []
        for index, v in enumerate(value):
            try:
                items.append(_plain(v, budget, depth + 1))
            except _Limit as limit:
                limit.path.insert(0, index)
                raise
        return items
    return _scalar(value)


def _scalar(value: Any) -> Any:
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


def bounded(data: Any, file: str = "(data)", at: KeyPath = ()) -> Any:
    """``data`` (parsed elsewhere, e.g. by the safe YAML loader; found at ``at``) as plain
    data, or a ManifestError if it is deeper or larger than a manifest may be."""
    try:
        return _plain(data, depth=len(at))
    except _Limit as limit:
        limit.path[:0] = at
        raise _limit_error(limit, file, "", {}) from None


def short_path(path: KeyPath) -> str:
    """A key path for messages, its middle elided when it is very deep."""
    if len(path) <= 8:
        return format_path(path)
    tail = format_path(path[-2:])
    joint = ".…" if tail.startswith("[") else ".…."
    return f"{format_path(path[:3])}{joint}{tail} ({len(path)} levels)"


def _limit_error(limit: _Limit, file: str, text: str, positions: dict[KeyPath, Located]
                 ) -> ManifestError:
    """Where and why a document is too deep or too large, in words a person can act on."""
    path = tuple(limit.path)
    shown = short_path(path)
    probe = path
    where = None
    while probe and where is None:
        located = positions.get(probe)
        where = located and (located.value or located.key)
        probe = probe[:-1]
    if limit.alias is not None:
        where, name, at = limit.alias
        alias, shown = (f"alias *{name}" if name else "an alias"), short_path(at)
    line, col = (where.line, where.col) if where else (1, 1)
    if limit.kind == "depth":
        return _fail(file, f"nested deeper than {MAX_DEPTH} levels",
                     "flatten the structure: settings need only a few levels", line, col,
                     shown, text)
    amount = (f"{MAX_VALUES:,} values" if limit.kind == "values"
              else f"{MAX_TEXT:,} characters of text")
    if limit.alias is not None:
        return _fail(file, f"{alias} expands the document past {amount}",
                     "write the values out, or alias less: each use of an alias repeats "
                     "everything under its anchor", line, col, shown, text)
    return _fail(file, f"the document holds more than {amount}",
                 "a manifest holds settings; keep data in files it points at", line, col,
                 shown, text)


def parse_toml(text: str, file: str) -> tuple[Any, dict[KeyPath, Located]]:
    """Data from the standard library's tomllib (a third of tomlkit's import and parse time,
    which counts against validate's cold start), positions from our scanner.

    The scanner goes first: it stops at ``MAX_DEPTH``, where tomllib would spend time and
    memory quadratic in a dotted key's length (20,000 parts: 5 s and 1.5 GB)."""
    import tomllib

    positions = _toml_positions(text, file, valid=False)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise toml_error(text, file, error) from None
    except RecursionError:  # the scanner missed the nesting: a last resort
        raise _fail(file, f"nested deeper than {MAX_DEPTH} levels",
                    "flatten the structure: settings need only a few levels") from None
    except ValueError as error:  # e.g. an integer longer than Python converts
        raise _number_error(text, file, "TOML", error) from None
    if positions is None:
        positions = _toml_positions(text, file, valid=True)
    try:
        return _plain(data), positions
    except _Limit as limit:
        raise _limit_error(limit, file, text, positions) from None


@overload
def _toml_positions(text: str, file: str, valid: Literal[True]) -> dict[KeyPath, Located]: ...
@overload
def _toml_positions(text: str, file: str, valid: bool) -> dict[KeyPath, Located] | None: ...
def _toml_positions(text: str, file: str, valid: bool) -> dict[KeyPath, Located] | None:
    """The scanner's positions; None where the text (not yet ``valid``) is not TOML."""
    from runspec.manifest.toml_positions import TooDeep, toml_positions

    try:
        return toml_positions(text, file)
    except TooDeep as deep:
        raise _fail(file, f"nested deeper than {MAX_DEPTH} levels",
                    "flatten the structure: settings need only a few levels", deep.at.line,
                    deep.at.col, short_path(deep.path), text, deep.at.length) from None
    except RecursionError:
        raise _fail(file, f"nested deeper than {MAX_DEPTH} levels",
                    "flatten the structure: settings need only a few levels") from None
    except Exception:
        if valid:
            raise
        return None


_LONG_NUMBER = re.compile(r"[0-9_]{640,}")


def _number_error(text: str, file: str, syntax: str, error: Exception) -> ManifestError:
    """A parser's ValueError, in practice an integer of thousands of digits."""
    found = _LONG_NUMBER.search(text)
    if found is None:
        return _fail(file, f"invalid {syntax}: {error}")
    line = text.count("\n", 0, found.start()) + 1
    col = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    return _fail(file, f"number too long ({found.end() - found.start():,} digits)",
                 "numbers in a manifest have at most 19 digits", line, col, text=text,
                 length=found.end() - found.start())


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

    deep = _flow_too_deep(text)
    if deep is not None:  # ruamel's scanner is quadratic in flow nesting: never let it try
        raise _fail(file, f"nested deeper than {MAX_DEPTH} levels",
                    "flatten the structure: settings need only a few levels", *deep, text=text)
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
    except RecursionError:  # nesting too deep for the parser: say where it gets too deep
        raise _yaml_too_deep(text, file) from None
    except ValueError as error:  # e.g. an integer longer than Python converts
        raise _number_error(text, file, "YAML", error) from None
    positions: dict[KeyPath, Located] = {}
    try:
        return _yaml_plain(data, (), file, positions, _Budget(), 0, set()), positions
    except _Limit as limit:
        if limit.alias is not None:  # ruamel places an alias at its anchor: find the alias
            _, name, at = limit.alias
            mark = _alias_mark(text, at)
            if mark is not None:
                limit.alias = (Position(file, *mark), name, at)
        raise _limit_error(limit, file, text, positions) from None
    except RecursionError:  # cannot happen within MAX_DEPTH; a last resort all the same
        raise _fail(file, f"nested deeper than {MAX_DEPTH} levels") from None


_FLOW_SIGNS = re.compile(r"[\"'#\[\]{}|>&!]")
_DOUBLE_QUOTED = re.compile(r'(?:[^"\\]|\\.)*"', re.S)
_SINGLE_QUOTED = re.compile(r"(?:[^']|'')*'")
_PROPERTY = re.compile(r"[^ \t\r\n,\[\]{}]*[ \t]*")


def _flow_too_deep(text: str) -> tuple[int, int] | None:
    """Line and column where YAML flow collections (``[`` and ``{``) nest past
    ``MAX_DEPTH``, if they go on to nest four times as deep (less the loader handles fast,
    and reports with the key path); found in one linear pass. None if they do not, or if
    unsure: the loader then finds out, only slower.

    A bracket opens a collection inside another, or at the start of a node (a line's
    start, after ``key: ``, ``- ``, ``? ``, an anchor or a tag); quoted scalars, comments
    and block scalars (``|``, ``>``) are skipped.
    """
    if text.count("[") + text.count("{") <= 4 * MAX_DEPTH:
        return None
    depth, skip, node = 0, 0, -1  # node: where a node starts after an anchor or tag
    first = 0  # where the nesting got too deep
    for found in _FLOW_SIGNS.finditer(text):
        at, sign = found.start(), found.group()
        if at < skip:
            continue
        node_start = at == node or _node_starts(text, at, depth > 0)
        if sign == "#":
            if at == 0 or text[at - 1] in " \t\n":
                skip = _line_end(text, at)
        elif sign in "&!":
            if node_start:
                anchor_or_tag = _PROPERTY.match(text, at)
                assert anchor_or_tag is not None  # the pattern matches the empty text too
                node = anchor_or_tag.end()
        elif sign in "\"'":
            if node_start:
                quoted = (_DOUBLE_QUOTED if sign == '"' else _SINGLE_QUOTED).match(text, at + 1)
                skip = quoted.end() if quoted else len(text)
        elif sign in "[{":
            if depth or node_start:
                depth += 1
                first = at if depth == MAX_DEPTH + 1 else first
                if depth > 4 * MAX_DEPTH:
                    line = text.count("\n", 0, first) + 1
                    return line, first - (text.rfind("\n", 0, first) + 1) + 1
        elif sign in "]}":
            depth = max(depth - 1, 0)
        elif not depth and node_start:  # | or >: a block scalar, whose lines are text
            skip = _block_end(text, at)
    return None


def _node_starts(text: str, at: int, in_flow: bool) -> bool:
    """Does a node start at ``at``: at a line's start, after ``: ``, ``- `` or ``? `` (in
    a flow collection also after ``,``, ``[``, ``{`` or a bare ``:``)?"""
    k = at - 1
    while k >= 0 and text[k] in " \t\r":
        k -= 1
    if k < 0 or text[k] == "\n":
        return True
    if in_flow and text[k] in ",[{:?":
        return True
    return text[k] in ":-?" and k + 1 < at and text[k + 1] in " \t"


def _line_end(text: str, at: int) -> int:
    end = text.find("\n", at)
    return len(text) if end < 0 else end


def _block_end(text: str, at: int) -> int:
    """Where the block scalar whose indicator is at ``at`` ends: the first line after it
    that is not blank and not indented deeper than the indicator's line."""
    start = text.rfind("\n", 0, at) + 1
    indent = len(text[start:at]) - len(text[start:at].lstrip(" "))
    end = _line_end(text, at)
    while end < len(text):
        line_start = end + 1
        line_end = _line_end(text, line_start)
        line = text[line_start:line_end]
        if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
            return line_start
        end = line_end
    return len(text)


def _alias_mark(text: str, target: KeyPath) -> tuple[int, int] | None:
    """Line and column of the alias (``*name``) at ``target``, from the parser's events."""
    from ruamel.yaml import YAML
    from ruamel.yaml.events import (
        AliasEvent,
        CollectionEndEvent,
        CollectionStartEvent,
        MappingStartEvent,
        NodeEvent,
        ScalarEvent,
    )

    frames: list[list[Any]] = []  # per open collection: [is a mapping, key or index, key next]
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, CollectionEndEvent):
                frames.pop()
                continue
            if not isinstance(event, NodeEvent):
                continue  # stream and document events
            if frames:
                top = frames[-1]
                if top[0] and top[2]:  # a mapping's key
                    if not isinstance(event, ScalarEvent):
                        return None  # a complex key: the anchor's place will do
                    top[1], top[2] = event.value, False
                    continue
                if top[0]:
                    top[2] = True
                else:
                    top[1] += 1
                if isinstance(event, AliasEvent) and tuple(f[1] for f in frames) == target:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            if isinstance(event, CollectionStartEvent):
                frames.append([isinstance(event, MappingStartEvent), -1, True])
    except Exception:  # it parsed once already; anything odd only means no better place
        return None
    return None


def _yaml_too_deep(text: str, file: str) -> ManifestError:
    """Where YAML nesting passes ``MAX_DEPTH``, from the parser's events (which, unlike the
    composer, use no stack), for a document too deep to load."""
    from ruamel.yaml import YAML
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth, line, col = 0, 1, 1
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH + 1:  # the top-level table is not nesting
                    line, col = event.start_mark.line + 1, event.start_mark.column + 1
                    break
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except Exception:  # invalid further on: the depth is what stopped the loader
        pass
    return _fail(file, f"nested deeper than {MAX_DEPTH} levels",
                 "flatten the structure: settings need only a few levels", line, col, text=text)


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


def _yaml_plain(node: Any, path: KeyPath, file: str, out: dict[KeyPath, Located],
                budget: _Budget, depth: int, seen: set[int]) -> Any:
    """``_plain`` for round-trip YAML, recording the position of every key and value.

    ruamel shares one object among an anchor and its aliases, so each table or list seen
    before is an alias: if the budget runs out under one, the outermost such alias is
    what the error points at.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(node, CommentedMap | CommentedSeq):
        return _plain(node, budget, depth)
    budget.spend(node, depth)
    seen.add(id(node))
    if isinstance(node, CommentedMap):
        plain = {}
        for key, value in node.items():
            name = str(key)
            budget.spend_text(name)
            child = path + (name,)
            where = None
            try:
                kl, kc = node.lc.key(key)
                vl, vc = node.lc.value(key)
            except (KeyError, TypeError):
                pass
            else:
                vlen = len(str(value)) if not isinstance(value, dict | list) else 1
                where = Position(file, vl + 1, vc + 1, vlen)
                out[child] = Located(Position(file, kl + 1, kc + 1, len(name)), where)
            plain[name] = _yaml_child(value, child, file, out, budget, depth, seen, where)
        return plain
    items = []
    for index, value in enumerate(node):
        child = path + (index,)
        where = None
        try:
            line, col = node.lc.item(index)
        except (KeyError, TypeError, IndexError):
            pass
        else:
            vlen = len(str(value)) if not isinstance(value, dict | list) else 1
            where = Position(file, line + 1, col + 1, vlen)
            out[child] = Located(None, where)
        items.append(_yaml_child(value, child, file, out, budget, depth, seen, where))
    return items


_PLAIN_TYPES = (str, int, float, bool, type(None))


def _yaml_child(value: Any, path: KeyPath, file: str, out: dict[KeyPath, Located],
                budget: _Budget, depth: int, seen: set[int], where: Position | None) -> Any:
    repeated = id(value) in seen
    if type(value) not in _PLAIN_TYPES and getattr(getattr(value, "anchor", None), "value", None):
        seen.add(id(value))  # an anchored scalar: its aliases are the same object
    try:
        return _yaml_plain(value, path, file, out, budget, depth + 1, seen)
    except _Limit as limit:
        if not limit.rooted:
            limit.path, limit.rooted = [*path, *limit.path], True
        if repeated and where is not None:  # overwritten on the way out: the outermost wins
            anchor = getattr(getattr(value, "anchor", None), "value", None)
            limit.alias = (where, anchor, path)
        raise


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
    """Load a manifest and deep-merge the chain of ``extends`` bases beneath it (at most
    ``MAX_EXTENDS`` files, followed in a loop: a long chain cannot exhaust the stack)."""
    path = Path(path)
    documents = [load_document(path, display=_display(path))]
    chain = [_resolved(path)]
    while True:
        document, current = documents[-1], chain[-1]
        base_ref = document.data.get("extends")
        if not isinstance(base_ref, str):
            break  # none, or of the wrong type (the schema reports it)
        position = document.value_position(("extends",))
        base_path = _resolved(current.parent / base_ref)
        if not _is_file(base_path):
            raise ManifestError([_missing_base(base_ref, base_path, current.parent, position,
                                               document)])
        if base_path in chain:
            cycle = " → ".join(_display(p) for p in [*chain, base_path])
            raise ManifestError([Diagnostic.at(position, "extends", f"extends cycle: {cycle}",
                                               document=document)])
        if len(chain) >= MAX_EXTENDS:
            start = documents[0]
            shown = [_display(p) for p in chain[:3]] + ["…", _display(chain[-1])]
            raise ManifestError([Diagnostic.at(
                start.value_position(("extends",)), "extends",
                f"the extends chain of {start.display} is longer than {MAX_EXTENDS} manifests: "
                + " → ".join(shown) + " → …",
                "flatten the chain: let the manifests extend one shared base", start)])
        documents.append(load_document(base_path, display=_display(base_path)))
        chain.append(base_path)
    merged = documents[-1]
    for top in reversed(documents[:-1]):
        merged = merge_documents(merged, top)
    return merged


def _missing_base(base_ref: str, base_path: Path, directory: Path, position: Position,
                  document: Document) -> Diagnostic:
    """Why a base manifest cannot be read, at the ``extends`` that names it."""
    if os.path.lexists(base_path):  # something is there: a directory, a pipe, a link loop
        try:
            read_bytes(base_path)
        except ManifestError as error:
            return Diagnostic.at(position, "extends",
                                 f'base manifest "{base_ref}": {error.diagnostics[0].message}',
                                 error.diagnostics[0].hint, document)
    from runspec.manifest.suggest import did_you_mean_file

    try:
        hint = did_you_mean_file(base_ref, directory)
    except (OSError, ValueError):
        hint = None
    return Diagnostic.at(position, "extends", f'base manifest "{base_ref}" not found', hint,
                         document)


def _resolved(path: Path) -> Path:
    """``path.resolve()``, or the path as it is where it cannot be resolved (a symlink loop,
    a name the OS refuses): reading it then says what is wrong."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path.absolute()


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
    except (OSError, RuntimeError, ValueError):  # outside it, or a symlink loop
        return str(path)


__all__ = ["load_document", "load_manifest", "read_bytes", "read_text", "deep_merge",
           "format_path", "MAX_BYTES", "MAX_DEPTH", "MAX_EXTENDS", "MAX_VALUES"]
