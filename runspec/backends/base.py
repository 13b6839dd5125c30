"""What every backend implements (TorchX's idea: the request you see is the request that runs).

``render_run`` and ``render_launch`` are pure and snapshot-tested; ``submit`` sends exactly
the rendered request, ``refresh_many`` and ``cancel_many`` follow and stop what it started.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Protocol

from runspec.plan.ir import Launch, LaunchContext, Run, RunSpec


class Backend(Protocol):
    name: str

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        """Files for the run directory that describe this backend's request for one run."""

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        """The submissions that start ``runs`` (all of one stage, in execution order)."""

    # The half that touches the world (local runs are started by the apply engine itself
    # through LocalBackend.start, to keep campaign order, gaps and Ctrl-C in one place).
    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, dict]:
        """Send exactly ``launch.request``; handles per run key."""

    def refresh_many(self, members: list, root: Path) -> dict[str, str]:
        """Current status of active members: their result.json first, the scheduler after."""

    def cancel_many(self, members: list, root: Path) -> None:
        """Stop active members."""


def shell_quote(value: object) -> str:
    """Every value rendered into a shell script goes through here: inert, whatever it holds."""
    return shlex.quote(str(value))


def comment_safe(text: str) -> str:
    """Text for a ``#`` comment line: control characters (a newline!) become visible escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def run_script(spec: RunSpec) -> str:
    """``launch.sh``: the run's command as a script (exports, startup commands, exec)."""
    lines = ["#!/usr/bin/env bash", f"# runspec run {comment_safe(spec.key)}", "set -euo pipefail",
             f"cd {shell_quote(spec.cwd)}"]
    for name, value in spec.env.items():
        lines.append(f"export {name}={shell_quote(value)}")
    for name, source in spec.secrets.items():
        # By reference: the value comes from the launching environment at run time.
        lines.append(f'export {name}="${{{source}:?secret {source} is not set}}"')
    lines += spec.startup_commands
    lines.append("exec " + " ".join(shell_quote(a) for a in spec.argv))
    return "\n".join(lines) + "\n"


class BackendError(Exception):
    """A backend could not do what was asked (no sbatch, controller down, address silent…).

    ``ambiguous`` means the request may have arrived anyway (a timeout after sending it): the
    submission is kept as an intent for the next refresh to find, never simply dropped."""

    def __init__(self, message: str, hint: str | None = None, ambiguous: bool = False):
        super().__init__(message + (f" — {hint}" if hint else ""))
        self.message, self.hint, self.ambiguous = message, hint, ambiguous


def executable_env(env: dict[str, str]) -> dict[str, str]:
    """The job environment on top of ours, with this Python's directory first on PATH, so the
    rendered ``python`` is the interpreter runspec runs in (the one with runspec installed)."""
    import os
    import sys
    from pathlib import Path

    merged = {**os.environ, **env}
    bin_dir = str(Path(sys.executable).parent)
    path = merged.get("PATH", "")
    if path.split(os.pathsep)[:1] != [bin_dir]:
        merged["PATH"] = os.pathsep.join([bin_dir, path]) if path else bin_dir
    return merged


def resolve_secrets(secrets: dict[str, str]) -> dict[str, str]:
    """Secret values from the launching environment, only at submission; never stored."""
    import os

    missing = sorted({source for source in secrets.values() if source not in os.environ})
    if missing:
        raise BackendError(f"secret variable{'s' * (len(missing) != 1)} not set: "
                           + ", ".join(missing), "export them in the shell that runs apply")
    return {name: os.environ[source] for name, source in secrets.items()}
