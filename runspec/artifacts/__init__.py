"""Artifacts: versioned, path-centric inputs and outputs with lineage (art:// URIs).

For recipe code: ``load``, ``save``, ``Artifact``, ``outputs``, ``list`` and ``lineage`` (see
``artifacts.api``). They are imported on first use, so that importing this package, which
runspec itself does everywhere, stays as cheap as it was.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing this package imports nothing else
if TYPE_CHECKING:
    from runspec.artifacts.api import Artifact, lineage, load, outputs, save
    from runspec.artifacts.api import list_artifacts as list

__all__ = ["Artifact", "lineage", "list", "load", "outputs", "save"]
_API = {"Artifact": "Artifact", "lineage": "lineage", "list": "list_artifacts",
        "load": "load", "outputs": "outputs", "save": "save"}


def __getattr__(name: str) -> object:
    if name in _API:
        from runspec.artifacts import api

        return getattr(api, _API[name])
    raise AttributeError(f"module 'runspec.artifacts' has no attribute {name!r}")
