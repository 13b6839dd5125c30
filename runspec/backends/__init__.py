"""Backends: the only code that touches the world. ``render`` is pure; the rest submits."""

from __future__ import annotations

from importlib import import_module

from runspec.backends.base import Backend, BackendError

REGISTRY: dict[str, str] = {
    "local": "runspec.backends.local:LocalBackend",
    "slurm": "runspec.backends.slurm:SlurmBackend",
    "ray": "runspec.backends.ray:RayBackend",
    "nemo-run": "runspec.backends.nemo_run:NemoRunBackend",
}
"""executor name → the backend class; each module is imported only when its executor is used."""


def backend_for(executor: str) -> Backend:
    """The backend that renders (and later submits) runs of ``executor``; an executor that no
    backend implements is an error, never a silent fall-back to local runs."""
    try:
        module, _, name = REGISTRY[executor].partition(":")
    except (KeyError, TypeError):
        raise BackendError(f'no backend implements executor "{executor}"',
                           "use one of: " + ", ".join(REGISTRY)) from None
    return getattr(import_module(module), name)()
