"""Terminal output: rich colour on a terminal, plain text anywhere else (pipes, CI, tests)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from typing import TextIO

from runspec.manifest.errors import Diagnostic
from runspec.state.status import RunStatus

_STYLE = {"error": "bold red", "warning": "bold yellow"}


def printable(text: str) -> str:
    """Text that any UTF-8 stream accepts: lone surrogates (from odd YAML escapes) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def print_diagnostics(diagnostics: Sequence[Diagnostic], stream: TextIO | None = None) -> None:
    """Every diagnostic with its source line; coloured only on a terminal."""
    stream = stream or sys.stderr
    if not diagnostics:
        return
    if not is_terminal(stream):
        stream.write(printable("\n".join(d.render() for d in diagnostics) + "\n"))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=stream, highlight=False, soft_wrap=True)
    for d in diagnostics:
        head, _, rest = d.render().partition("\n")
        location, _, message = head.partition(f" {d.severity}: ")
        console.print(f"[bold]{escape(printable(location))}[/] [{_STYLE.get(d.severity, 'bold')}]"
                      f"{d.severity}:[/] {escape(printable(message))}")
        if rest:
            console.print(f"[dim]{escape(printable(rest))}[/]")


def diagnostics_json(diagnostics: Sequence[Diagnostic]) -> str:
    return printable(json.dumps([d.to_json() for d in diagnostics], indent=2, ensure_ascii=False))


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
        stream.flush()  # before apply's events on stderr, also when both go to one pipe
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=stream, highlight=False, soft_wrap=True)
    for line in text.splitlines():
        style = next((s for prefix, s in _PLAN_STYLES if line.startswith(prefix)), None)
        console.print(f"[{style}]{escape(line)}[/]" if style else escape(line))


def confirm_plan(assume_yes: bool):
    """Show the plan; ask before applying unless ``assume_yes``."""

    def confirm(plan_text: str) -> bool:
        print_plan(plan_text)
        if assume_yes:
            return True
        import click

        return click.confirm("Apply these changes? [y/N]", default=False, err=True,
                             show_default=False, prompt_suffix=" ")

    return confirm


class _LineReporter:
    """Progress as plain lines: for logs, CI and pipes."""

    def event(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def progress(self, done: int, total: int, text: str) -> None:
        pass


class _RichReporter:
    """A progress bar per stage on a terminal, events printed above it."""

    def __init__(self, progress):
        self.bar = progress
        self.tasks: dict[str, int] = {}

    def event(self, text: str) -> None:
        from rich.markup import escape

        # markup stays on (with markup=False rich would print the bar's own style tags)
        self.bar.console.print(escape(text), highlight=False)

    def progress(self, done: int, total: int, text: str) -> None:
        if text not in self.tasks:
            self.tasks[text] = self.bar.add_task(text, total=total)
        self.bar.update(self.tasks[text], completed=done)


@contextmanager
def apply_reporter():
    """A reporter for apply: rich progress on a terminal, plain lines otherwise."""
    if not is_terminal(sys.stderr):
        yield _LineReporter()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(file=sys.stderr)) as progress:
        yield _RichReporter(progress)


STATUS_STYLES: dict[str, str] = {
    RunStatus.SUCCEEDED: "green", RunStatus.FAILED: "red", RunStatus.LOST: "red",
    RunStatus.CANCELLED: "yellow", RunStatus.RUNNING: "cyan", RunStatus.SUBMITTED: "cyan"}


def status_rows(members) -> list[list[str]]:
    rows = []
    from runspec.backends import backend_for

    for m in members:
        where = backend_for(m.backend).describe(m.handle)
        rows.append([m.key, m.status, m.backend, where, str(m.attempts), m.submitted_at or "",
                     m.finished_at or ""])
    return rows


def print_status(name: str, members, stream: TextIO | None = None) -> None:
    """One row per run: key, status, backend, handle, attempts, times; a count per status."""
    stream = stream or sys.stdout
    header = ["run", "status", "backend", "handle", "tries", "submitted", "finished"]
    rows = status_rows(members)
    counts: dict[str, int] = {}
    for m in members:
        counts[m.status] = counts.get(m.status, 0) + 1
    footer = f"{name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    footer += "".join(f"\n  {m.key}: {m.error}" for m in members if getattr(m, "error", None))
    if not is_terminal(stream):
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                         + "\n")
        stream.write(footer + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, title=name, title_justify="left")
    for row in rows:
        style = STATUS_STYLES.get(row[1])
        table.add_row(row[0], f"[{style}]{row[1]}[/]" if style else row[1], *row[2:])
    console = Console(file=stream)
    console.print(table)
    console.print(footer)
