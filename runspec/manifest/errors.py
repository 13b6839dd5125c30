"""Diagnostics: what went wrong, where (file:line:col and key path), and what to do instead.

Shaped after pydantic's error objects: a list of structured records that render to text
for people and to JSON for tools. Nothing here raises on bad input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runspec.manifest.document import Document, Position


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one file: ``file:line:col: error: path: message — hint``."""

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str | None = None
    severity: str = "error"
    length: int = 1
    source: str | None = None

    @classmethod
    def at(
        cls,
        position: Position,
        path: str,
        message: str,
        hint: str | None = None,
        document: Document | None = None,
        severity: str = "error",
    ) -> Diagnostic:
        source = document.source_line(position) if document is not None else None
        return cls(
            file=position.file, line=position.line, col=position.col, path=path,
            message=message, hint=hint, severity=severity, length=max(position.length, 1),
            source=source,
        )

    @property
    def headline(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.path}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text

    def render(self) -> str:
        """The headline, then the source line with a caret under the offending text."""
        lines = [self.headline]
        if self.source is not None:
            gutter = str(self.line)
            source = self.source.replace("\t", " ")
            underline = max(1, min(self.length, len(source) - self.col + 1))
            lines.append(f"  {gutter} | {source}")
            lines.append(f"  {' ' * len(gutter)} | {' ' * (self.col - 1)}{'^' * underline}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        record = asdict(self)
        keys = ("file", "line", "col", "path", "message", "hint", "severity")
        return {key: record[key] for key in keys}

    def redacted(self) -> Diagnostic:
        """The same diagnostic with the value on its source line hidden (for secrets)."""
        source, col, length = self.source or "", self.col, self.length
        for separator in ("=", ":"):
            head, sep, _ = source.partition(separator)
            if sep:
                source = f"{head}{sep} ***"
                if col > len(head):  # it pointed at the value: point at the stars
                    col, length = len(head) + len(sep) + 2, 3
                break
        return replace(self, source=source, col=col, length=length)

    def without_source(self) -> Diagnostic:
        return replace(self, source=None)


class ManifestError(Exception):
    """Raised when a file cannot be turned into a valid manifest; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.headline for d in diagnostics))


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    return (diagnostic.file, diagnostic.line, diagnostic.col, diagnostic.message)
