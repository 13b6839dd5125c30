"""Artifact URIs: ``art://NAME[:vN|:ALIAS][/subpath]``, plain paths, ``file://``, ``wandb://``."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ART = re.compile(r"^art://(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
                  r"(?::(?P<tag>[A-Za-z0-9._-]+))?(?P<subpath>/.*)?$")
_WANDB = re.compile(r"^wandb://(?P<entity>[^/]+)/(?P<project>[^/]+)/(?P<name>[^:/]+)"
                    r"(?::(?P<tag>[A-Za-z0-9._-]+))?$")


def output_variable(name: str) -> str:
    """The environment variable that tells a job where to write output artifact ``name``."""
    return "RUNSPEC_OUTPUT_" + "".join(c if c.isalnum() else "_" for c in name).upper()


class ArtifactError(ValueError):
    """A malformed URI, an unknown artifact or version, a registry that cannot be written."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        """With the hint: what recipe code shows (runspec's own output uses both fields)."""
        return f"{self.message} — {self.hint}" if self.hint else self.message


@dataclass(frozen=True)
class ArtifactRef:
    scheme: str                 # art | file | wandb
    name: str = ""
    version: int | None = None
    alias: str | None = None
    subpath: str = ""
    path: str = ""              # for file / plain paths
    entity: str = ""
    project: str = ""

    def label(self) -> str:
        tag = f":v{self.version}" if self.version is not None else f":{self.alias or 'latest'}"
        return f"{self.name}{tag}"


def parse(uri: str) -> ArtifactRef:
    if uri.startswith("art://"):
        found = _ART.match(uri)
        if not found:
            raise ArtifactError(f'malformed artifact URI "{uri}"',
                                "expected art://NAME[:vN|:ALIAS][/subpath], e.g. "
                                "art://tiny-shakespeare:latest")
        tag = found["tag"]
        version = int(tag[1:]) if tag and re.fullmatch(r"v\d+", tag) else None
        alias = None if version is not None else (tag or "latest")
        return ArtifactRef("art", found["name"], version, alias, (found["subpath"] or "")[1:])
    if uri.startswith("wandb://"):
        found = _WANDB.match(uri)
        if not found:
            raise ArtifactError(f'malformed W&B artifact URI "{uri}"',
                                "expected wandb://entity/project/name:alias")
        return ArtifactRef("wandb", found["name"], None, found["tag"] or "latest",
                           entity=found["entity"], project=found["project"])
    if "://" in uri and not uri.startswith("file://"):
        raise ArtifactError(f'unsupported artifact URI scheme in "{uri}"',
                            "use art://, file://, wandb:// or a plain path")
    return ArtifactRef("file", path=uri.removeprefix("file://"))
