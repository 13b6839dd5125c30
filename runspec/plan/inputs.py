"""What a plan is a function of, recorded so that an unchanged re-apply is recognized
without resolving the manifest again.

A plan depends on runspec's version, the --set values, where the project is, the bytes of
every file resolving read (the manifest, its bases, env.toml, recipe configs and scripts,
sbatch templates), the files whose absence mattered (an env.toml or a pyproject.toml that
would have been found above the manifest or a script), and the environment variables the
files name (``${oc.env:NAME}``). Apply records all of it in the state with its digest once
everything planned was submitted; the next apply re-reads just those files and variables
(``Inputs.unchanged``), with no manifest models and no plan, and stops there when nothing
moved (see ``apply.noop``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runspec.plan.identity import digest

if TYPE_CHECKING:
    from runspec.plan.resolve import Resolved

ENVIRONMENT = ("NEMOTRON_ENV_FILE", "RUNSPEC_ARTIFACTS")   # read by resolving itself
_OC_ENV = re.compile(rb"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)")
_MARKERS = ("env.toml", "pyproject.toml", ".git")   # what discovery looks for, directory up
_MAX_LEVELS = 64


@dataclass(frozen=True)
class Inputs:
    runspec: str
    sets: tuple[str, ...]
    root: str
    workdirs: tuple[str | None, ...]
    files: dict[str, str | None]        # path → sha256 of its bytes, None: absent
    environment: dict[str, str | None]  # variable → its value, None: unset

    @property
    def digest(self) -> str:
        return digest(self.to_json())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sets"], data["workdirs"] = list(self.sets), list(self.workdirs)
        return data

    @classmethod
    def of_json(cls, data: Any) -> Inputs | None:
        """The recorded inputs, or None for a record this runspec cannot use."""
        try:
            return cls(data["runspec"], tuple(data["sets"]), data["root"],
                       tuple(data["workdirs"]), dict(data["files"]),
                       dict(data["environment"]))
        except (KeyError, TypeError, ValueError):
            return None

    def unchanged(self, sets: list[str]) -> bool:
        """Do the files and variables still read as recorded (same runspec, same --set)?"""
        from runspec import __version__

        if self.runspec != __version__ or list(self.sets) != list(sets):
            return False
        return all(_file_digest(Path(p)) == d for p, d in self.files.items()) and all(
            os.environ.get(name) == value for name, value in self.environment.items())


def recorded(resolved: Resolved, sets: list[str]) -> Inputs:
    """The inputs of a plan of ``resolved`` (with these --set values), as read now."""
    from runspec import __version__

    paths = {Path(p) for p in resolved.inputs}
    paths.add(resolved.root / resolved.manifest_file)
    starts = {resolved.root} | {Path(p).parent for p in resolved.inputs}
    paths |= {directory / marker for start in starts for directory in _upward(start)
              for marker in _MARKERS}
    files = {str(p): _file_digest(p) for p in sorted(paths)}
    names = set(ENVIRONMENT)
    for path, found in files.items():
        if found is not None and not path.endswith(".git"):
            names |= _named_variables(Path(path))
    return Inputs(__version__, tuple(sets), str(resolved.root),
                  tuple(str(s.recipe.workdir) if s.recipe.workdir is not None else None
                        for s in resolved.stages),
                  files, {name: os.environ.get(name) for name in sorted(names)})


def _upward(start: Path) -> list[Path]:
    """``start`` and the directories above it, up to the first one holding .git."""
    try:
        directory = start.resolve()
    except (OSError, RuntimeError, ValueError):
        return []
    out = []
    for candidate in (directory, *directory.parents)[:_MAX_LEVELS]:
        out.append(candidate)
        if (candidate / ".git").exists():
            break
    return out


def _file_digest(path: Path) -> str | None:
    """sha256 of a regular file's bytes; ``"dir"`` for a directory; None when absent."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            return "dir"
        if not stat.S_ISREG(mode):
            return "special"
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except (OSError, RuntimeError, ValueError):
        return None


def _named_variables(path: Path) -> set[str]:
    try:
        if path.stat().st_size > 1 << 20:  # a config or a script, not a dataset
            return set()
        return {m.decode() for m in _OC_ENV.findall(path.read_bytes())}
    except OSError:
        return set()
