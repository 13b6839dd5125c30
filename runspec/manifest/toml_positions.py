"""Line and column of every key and value in a TOML text.

tomllib parses TOML faithfully but keeps no positions, so this scanner walks the same text
(already known to be valid, because tomllib parsed it first) and records where each key path
starts: table headers, arrays of tables, dotted keys, inline tables and array items.
"""

from __future__ import annotations

import bisect
import tomllib

from runspec.manifest.document import MAX_DEPTH, KeyPath, Located, Position

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = set(",]}\n#")


class DuplicateKey(Exception):
    """A key (or table) defined twice; only raised when the scanner is asked to look."""

    def __init__(self, path: KeyPath, first: Position | None, again: Position):
        super().__init__(path)
        self.path, self.first, self.again = path, first, again


class TooDeep(Exception):
    """A key path nested deeper than ``MAX_DEPTH``; ``at`` is where the too-deep part starts."""

    def __init__(self, path: KeyPath, at: Position):
        super().__init__(path)
        self.path, self.at = path, at


class _Invalid(Exception):
    """The text is not TOML after all (only when looking for duplicates in a failed parse)."""


class _Scanner:
    def __init__(self, text: str, file: str, find_duplicates: bool = False):
        self.find_duplicates = find_duplicates
        self.tables: set[KeyPath] = set()
        self.text = text
        self.file = file
        self.i = 0
        self.line_starts = [0] + [n + 1 for n, c in enumerate(text) if c == "\n"]
        self.keys: dict[KeyPath, Position] = {}
        self.values: dict[KeyPath, Position] = {}
        self.array_tables: dict[KeyPath, int] = {}

    # -- positions -------------------------------------------------------------------------
    def pos(self, offset: int, length: int = 1) -> Position:
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return Position(self.file, line + 1, offset - self.line_starts[line] + 1, length)

    # -- lexing helpers --------------------------------------------------------------------
    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def skip_blank(self, newlines: bool) -> None:
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            else:
                return

    def read_key(self) -> list[tuple[str, int, int]]:
        """A dotted key → [(segment, offset, raw length)]."""
        parts = []
        while True:
            self.skip_blank(newlines=False)
            start = self.i
            c = self.peek()
            if c in "\"'":
                end = self._string_end(self.i)
                raw = self.text[start:end]
                name = tomllib.loads(f"k = {raw}")["k"]
                self.i = end
            else:
                while self.i < len(self.text) and self.text[self.i] in _BARE:
                    self.i += 1
                name = raw = self.text[start : self.i]
                if not raw:  # no key here: the text is invalid, and scanning on would not move
                    raise _Invalid(start)
            parts.append((name, start, len(raw)))
            self.skip_blank(newlines=False)
            if self.peek() == ".":
                self.i += 1
                continue
            return parts

    def _string_end(self, start: int) -> int:
        """Offset just past the string starting at ``start``."""
        text = self.text
        quote = text[start]
        if text.startswith(quote * 3, start):
            j = start + 3
            while True:
                j = text.find(quote * 3, j) if quote == "'" else self._find_unescaped(j, '"""')
                if j < 0:
                    return len(text)
                end = j + 3
                while end < len(text) and text[end] == quote and end - j < 5:
                    end += 1
                return end
        j = text.find("'", start + 1) if quote == "'" else self._find_unescaped(start + 1, '"')
        return len(text) if j < 0 else j + 1

    def _find_unescaped(self, j: int, needle: str) -> int:
        text = self.text
        while j < len(text):
            if text[j] == "\\":
                j += 2
                continue
            if text.startswith(needle, j):
                return j
            j += 1
        return -1

    # -- grammar ---------------------------------------------------------------------------
    def resolve(self, base: KeyPath, parts: list[tuple[str, int, int]], record: bool) -> KeyPath:
        """Walk dotted ``parts`` under ``base``, stepping into the last element of arrays of tables."""
        path = base
        for n, (name, offset, length) in enumerate(parts):
            path = path + (name,)
            if len(path) > MAX_DEPTH:
                raise TooDeep(path, self.pos(offset, length))
            if record and path not in self.keys:
                self.keys[path] = self.pos(offset, length)
            if n < len(parts) - 1 and path in self.array_tables:
                path = path + (self.array_tables[path] - 1,)
        return path

    def run(self) -> None:
        table: KeyPath = ()
        text = self.text
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(text):
                return
            before = self.i
            if text.startswith("[[", self.i):
                header_at = self.i
                self.i += 2
                path = self.resolve((), self.read_key(), record=True)
                self.i = self._after(text.find("]]", self.i), 2)
                count = self.array_tables.get(path, 0) + 1
                self.array_tables[path] = count
                table = path + (count - 1,)
                self.keys[table] = self.pos(header_at, self.i - header_at)
            elif text[self.i] == "[":
                header_at = self.i
                self.i += 1
                table = self.resolve((), self.read_key(), record=True)
                self.i = self._after(text.find("]", self.i), 1)
                if self.find_duplicates and (table in self.tables or table in self.values):
                    raise DuplicateKey(table, self.keys.get(table),
                                       self.pos(header_at, self.i - header_at))
                self.tables.add(table)
            else:
                self.key_value(table)
            self._moved(before)

    def _moved(self, before: int) -> None:
        """Every step must consume text; on text that is not TOML one might not (and loop)."""
        if self.i <= before:
            raise _Invalid(self.i)

    def _after(self, found: int, width: int) -> int:
        if found < 0:
            raise _Invalid(self.i)
        return found + width

    def key_value(self, table: KeyPath) -> None:
        key_at = self.i
        parts = self.read_key()
        path = self.resolve(table, parts, record=True)
        if self.find_duplicates and (path in self.values or path in self.tables):
            _, last_at, last_length = parts[-1]
            raise DuplicateKey(path, self.keys.get(path),
                               self.pos(key_at, last_at + last_length - key_at))
        self.skip_blank(newlines=False)
        if self.peek() == "=":
            self.i += 1
        self.skip_blank(newlines=False)
        self.value(path)

    def value(self, path: KeyPath) -> None:
        text = self.text
        start = self.i
        if len(path) > MAX_DEPTH:  # before recursing: nesting must not exhaust the stack
            raise TooDeep(path, self.pos(start))
        c = self.peek()
        if c in "\"'":
            end = self._string_end(start)
            line_end = text.find("\n", start)
            shown = end if line_end < 0 or end <= line_end else line_end
            self.values[path] = self.pos(start, shown - start)
            self.i = end
        elif c == "[":
            self.values[path] = self.pos(start)
            self.i += 1
            index = 0
            while True:
                self.skip_blank(newlines=True)
                if self.i >= len(text) or self.peek() == "]":
                    self.i += 1
                    return
                before = self.i
                self.value(path + (index,))
                index += 1
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.i += 1
                self._moved(before)
        elif c == "{":
            self.values[path] = self.pos(start)
            self.i += 1
            while True:
                self.skip_blank(newlines=False)
                if self.i >= len(text) or self.peek() == "}":
                    self.i += 1
                    return
                before = self.i
                self.key_value(path)
                self.skip_blank(newlines=False)
                if self.peek() == ",":
                    self.i += 1
                self._moved(before)
        else:
            j = start
            while j < len(text) and text[j] not in _SCALAR_END:
                j += 1
            raw = text[start:j].rstrip()
            self.values[path] = self.pos(start, len(raw))
            self.i = start + len(raw)


def find_duplicate(text: str, file: str) -> DuplicateKey | None:
    """The first key defined twice in ``text``, if that is what makes it invalid."""
    try:
        _Scanner(text, file, find_duplicates=True).run()
    except DuplicateKey as duplicate:
        return duplicate
    except Exception:  # the text is invalid in some other way; the parser's message stands
        return None
    return None


def toml_positions(text: str, file: str) -> dict[KeyPath, Located]:
    """Map every key path in a valid TOML ``text`` to where its key and value start.
    Raises TooDeep for nesting beyond ``MAX_DEPTH``."""
    scanner = _Scanner(text, file)
    scanner.run()
    paths = scanner.keys.keys() | scanner.values.keys()
    return {p: Located(scanner.keys.get(p), scanner.values.get(p)) for p in paths}
