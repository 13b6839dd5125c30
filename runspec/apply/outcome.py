"""What an apply is asked to do and what it reports: small types the CLI and the quick
no-op path (``apply.noop``) use without importing the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from runspec.state.status import RERUN, RunStatus


class ApplyAborted(Exception):
    """The user declined, or the plan went stale; nothing was launched."""


class Reporter(Protocol):
    def event(self, text: str) -> None: ...
    def progress(self, done: int, total: int, text: str) -> None: ...


@dataclass
class ApplyOptions:
    detach: bool = False
    wait: bool = False
    prune: bool = False


@dataclass
class ApplyReport:
    no_changes: bool = False
    still_active: int = 0       # with no changes: runs still queued or running
    submitted: list[str] = field(default_factory=list)
    statuses: dict[str, RunStatus] = field(default_factory=dict)
    destroyed: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    backend_calls: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # said as they happened, counted at the end
    detached_log: str | None = None
    detached_pid: int | None = None
    detached_manifest: str = "PATH"  # as the user named it: the hint must work as written

    def count(self, status: RunStatus) -> int:
        return sum(s == status for s in self.statuses.values())

    def summary(self) -> str:
        if self.detached_log:
            return (f"Applying {len(self.submitted)} run{'s' * (len(self.submitted) != 1)} in the "
                    f"background (pid {self.detached_pid}); log: {self.detached_log}. Follow it "
                    f"with `runspec status {self.detached_manifest} --watch`.")
        parts = [f"{len(self.submitted)} launched"]
        for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED,
                       RunStatus.LOST):
            if self.count(status):
                parts.append(f"{self.count(status)} {status}")
        if self.destroyed:
            parts.append(f"{len(self.destroyed)} removed from state")
        if self.renamed:
            parts.append(f"{len(self.renamed)} renamed")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning{'s' * (len(self.warnings) != 1)} above")
        lines = [f"error: {e}" for e in self.errors]
        verdict = "Apply stopped by an error" if self.errors else "Apply complete"
        return "\n".join([*lines, f"{verdict}: " + ", ".join(parts) + "."])

    @property
    def ok(self) -> bool:
        return not self.errors and not any(s in RERUN
                                           for s in self.statuses.values())
