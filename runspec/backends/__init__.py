"""Backends: the only code that touches the world. ``render`` is pure; the rest submits."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from runspec.backends.base import Backend, BackendError, PacedBackend

M = TypeVar("M", bound=Any)  # a state member (``state.store.Member``: below this package)

# One loader per executor: it imports its module only when that executor is used, and its
# return type is the contract the backend holds (``PacedBackend`` where runspec paces the
# runs), so the type checker refuses a backend that lacks a part of it.


def _local() -> PacedBackend:
    from runspec.backends.local import LocalBackend

    return LocalBackend()


def _slurm() -> Backend:
    from runspec.backends.slurm import SlurmBackend

    return SlurmBackend()


def _ray() -> PacedBackend:
    from runspec.backends.ray import RayBackend

    return RayBackend()


def _nemo_run() -> Backend:
    from runspec.backends.nemo_run import NemoRunBackend

    return NemoRunBackend()


def _nemo_run_preset(flavour: str) -> Callable[[], Backend]:
    """Nemotron's env.toml names NeMo-Run's executors directly (executor = "docker")."""

    def load() -> Backend:
        from runspec.backends.nemo_run import NemoRunBackend

        return NemoRunBackend(flavour)

    return load


REGISTRY: dict[str, Callable[[], Backend]] = {
    "local": _local,
    "slurm": _slurm,
    "ray": _ray,
    "nemo-run": _nemo_run,
    "docker": _nemo_run_preset("docker"),
    "dgxcloud": _nemo_run_preset("dgxcloud"),
    "lepton": _nemo_run_preset("lepton"),
    "skypilot": _nemo_run_preset("skypilot"),
}
"""executor name → a new backend; each module is imported only when its executor is used."""



def is_executor(name: object) -> bool:
    """Does a backend implement ``name``? (A mangled document may give any value: a list
    or a table is simply not an executor.)"""
    return isinstance(name, str) and name in REGISTRY


DEFAULT_EXECUTOR = "local"
"""The executor of a stage whose manifest and profile name none (the embedded default)."""


def backend_for(executor: str) -> Backend:
    """The backend that renders (and later submits) runs of ``executor``; an executor that no
    backend implements is an error, never a silent fall-back to local runs."""
    try:
        load = REGISTRY[executor]
    except (KeyError, TypeError):
        raise BackendError(f'no backend implements executor "{executor}"',
                           "use one of: " + ", ".join(REGISTRY)) from None
    return load()


def by_backend(members: Iterable[M]) -> dict[str, list[M]]:
    """State members grouped by their backend, in order: each backend is asked once."""
    groups: dict[str, list[M]] = {}
    for member in members:
        groups.setdefault(member.backend, []).append(member)
    return groups
