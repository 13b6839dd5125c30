"""The artifact registry on a file system: ``{root}/{name}/v{N}/metadata.json``.

Path-centric like Nemotron Kit: a version records where the data is (``path``), its type,
a digest, when and by which run it was produced and which input versions that run used.
New versions and aliases (``latest`` included) are written under a lock, each file
atomically, so concurrent publishers never lose or share a version.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runspec.artifacts.digest import digest_of
from runspec.artifacts.uri import ArtifactError, ArtifactRef
from runspec.measure.files import read_json, write_json

DEFAULT_ROOT = "~/.runspec/artifacts"
@dataclass(frozen=True)
class Version:
    name: str
    number: int
    metadata: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.number}"

    @property
    def path(self) -> str:
        return self.metadata["path"]


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(os.path.expanduser(str(root)))

    # -- reading -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[int]:
        directory = self.root / name
        if not directory.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in directory.iterdir()
                      if p.name[:1] == "v" and p.name[1:].isdigit()
                      and (p / "metadata.json").exists())

    def aliases(self, name: str) -> dict[str, int]:
        aliases = read_json(self.root / name / "aliases.json") or {}
        numbers = self.versions(name)
        if numbers and "latest" not in aliases:
            aliases["latest"] = numbers[-1]
        return aliases

    def get(self, name: str, number: int) -> Version:
        metadata = read_json(self.root / name / f"v{number}" / "metadata.json")
        if metadata is None:
            raise self._missing(name, f"v{number}")
        return Version(name, number, metadata)

    def resolve(self, ref: ArtifactRef) -> Version:
        if ref.version is not None:
            return self.get(ref.name, ref.version)
        aliases = self.aliases(ref.name)
        if ref.alias not in aliases:
            raise self._missing(ref.name, ref.alias or "latest")
        return self.get(ref.name, aliases[ref.alias])

    def _missing(self, name: str, tag: str) -> ArtifactError:
        numbers = self.versions(name)
        if not numbers:
            known = self.names()
            from runspec.manifest.suggest import did_you_mean

            return ArtifactError(f'no artifact "{name}" in the registry at {self.root}',
                                 did_you_mean(name, known) or
                                 (f"artifacts: {', '.join(known)}" if known else
                                  "the registry is empty: a run's outputs.artifacts publish one"))
        aliases = ", ".join(f"{a} → v{n}" for a, n in sorted(self.aliases(name).items()))
        return ArtifactError(f'artifact "{name}" has no version or alias "{tag}"',
                             f"versions: {', '.join(f'v{n}' for n in numbers)}; aliases: {aliases}")

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        from filelock import FileLock

        directory = self.root / name
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ArtifactError(f"cannot write the artifact registry at {self.root}: "
                                f"{error.strerror or error}",
                                "set [artifacts] root in env.toml to a writable place") from None
        with FileLock(str(directory / ".lock"), timeout=60):
            yield directory

    def publish(self, name: str, path: str | Path, type_: str, producer: str | None = None,
                inputs: dict[str, str] | None = None, aliases: tuple[str, ...] = ("latest",),
                extra: dict | None = None, remote: tuple[str, str] | None = None) -> Version:
        """Register ``path`` as the next version of ``name`` and move ``aliases`` to it.
        ``extra`` adds metadata fields (e.g. ``wandb``: the W&B artifact it was logged as).
        ``remote``: ``(host, digest)`` of a path that is on a cluster, not here (a run over
        SSH): recorded as the cluster sees it, with the digest computed there."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ArtifactError(f'"{name}" is not an artifact name',
                                "use letters, digits, '.', '_' and '-' (it goes into art://NAME)")
        source = Path(path)
        if remote is not None:
            host, digest = remote
            extra = {**(extra or {}), "host": host}
        elif not source.exists():
            raise ArtifactError(f'cannot publish "{name}": {source} does not exist')
        else:
            digest = digest_of(source)
            source = source.resolve()
        with self._locked(name) as directory:
            number = (self.versions(name) or [0])[-1] + 1
            (directory / f"v{number}").mkdir()
            metadata = {"name": name, "version": number, "type": type_,
                        "path": str(source), "digest": digest,
                        "created": datetime.now(UTC).isoformat(timespec="seconds"),
                        "producer": producer, "inputs": inputs or {}, **(extra or {})}
            write_json(directory / f"v{number}" / "metadata.json", metadata)
            current = read_json(directory / "aliases.json") or {}
            current.update({alias: number for alias in aliases})
            write_json(directory / "aliases.json", current)
        return Version(name, number, metadata)

    def set_alias(self, name: str, alias: str, number: int) -> None:
        self.get(name, number)
        with self._locked(name) as directory:
            current = read_json(directory / "aliases.json") or {}
            current[alias] = number
            write_json(directory / "aliases.json", current)

    # -- lineage -----------------------------------------------------------------------------
    def produced_by(self, name: str, producer: str) -> Version | None:
        """The newest version of ``name`` that run ``producer`` registered, if any."""
        for number in reversed(self.versions(name)):
            version = self.get(name, number)
            if version.metadata.get("producer") == producer:
                return version
        return None

    def lineage(self, version: Version, seen: set[str] | None = None) -> dict[str, Any]:
        """``{"label", "producer", "inputs": [lineage of each input version]}``."""
        seen = seen or set()
        inputs: list[dict[str, Any]] = []
        node = {"label": version.label, "type": version.metadata.get("type"),
                "producer": version.metadata.get("producer"), "inputs": inputs}
        if version.label in seen:
            return node
        seen.add(version.label)
        for label in sorted((version.metadata.get("inputs") or {}).values()):
            name, _, tag = label.partition(":v")
            try:
                inputs.append(self.lineage(self.get(name, int(tag)), seen))
            except (ArtifactError, ValueError):
                inputs.append({"label": label, "missing": True, "inputs": []})
        return node


def registry_root(env_data: dict[str, Any] | None) -> str:
    """env.toml's ``[artifacts] root``, else ``RUNSPEC_ARTIFACTS``, else ~/.runspec/artifacts."""
    configured = ((env_data or {}).get("artifacts") or {}).get("root")
    return configured or os.environ.get("RUNSPEC_ARTIFACTS") or DEFAULT_ROOT
