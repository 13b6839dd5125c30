"""Terminal output: rich colour on a terminal, plain text anywhere else (pipes, CI, tests)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from runspec.manifest.errors import Diagnostic

_STYLE = {"error": "bold red", "warning": "bold yellow"}


def is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def print_diagnostics(diagnostics: Sequence[Diagnostic], stream: TextIO | None = None) -> None:
    """Every diagnostic with its source line; coloured only on a terminal."""
    stream = stream or sys.stderr
    if not diagnostics:
        return
    if not is_terminal(stream):
        stream.write("\n".join(d.render() for d in diagnostics) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=stream, highlight=False, soft_wrap=True)
    for d in diagnostics:
        head, _, rest = d.render().partition("\n")
        location, _, message = head.partition(f" {d.severity}: ")
        console.print(f"[bold]{escape(location)}[/] [{_STYLE.get(d.severity, 'bold')}]"
                      f"{d.severity}:[/] {escape(message)}")
        if rest:
            console.print(f"[dim]{escape(rest)}[/]")


def diagnostics_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2, ensure_ascii=False)


def summary(errors: int, warnings: int, files: int) -> str:
    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'s' * (n != 1)}"

    parts = [plural(errors, "error")] + ([plural(warnings, "warning")] if warnings else [])
    return f"{', '.join(parts)} in {plural(files, 'file')} checked"


_PLAN_STYLES = (("    + ", "green"), ("  -/+ ", "yellow"), ("    ↻ ", "cyan"), ("    - ", "red"),
                ("        # ", "dim"), ("        +", "green"), ("        -", "red"),
                ("Plan: ", "bold"), ("No changes.", "bold green"))


def print_plan(text: str, stream: TextIO | None = None) -> None:
    """Plan text; on a terminal, actions coloured the way Terraform users expect."""
    stream = stream or sys.stdout
    if not is_terminal(stream):
        stream.write(text)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=stream, highlight=False, soft_wrap=True)
    for line in text.splitlines():
        style = next((s for prefix, s in _PLAN_STYLES if line.startswith(prefix)), None)
        console.print(f"[{style}]{escape(line)}[/]" if style else escape(line))
