"""Backends: the only code that touches the world. ``render`` is pure; the rest submits."""

from __future__ import annotations

from runspec.backends.base import Backend


def backend_for(executor: str) -> Backend:
    """The backend that renders (and later submits) runs of ``executor``."""
    if executor == "slurm":
        from runspec.backends.slurm import SlurmBackend

        return SlurmBackend()
    if executor == "ray":
        from runspec.backends.ray import RayBackend

        return RayBackend()
    if executor == "nemo-run":
        from runspec.backends.nemo_run import NemoRunBackend

        return NemoRunBackend()
    from runspec.backends.local import LocalBackend

    return LocalBackend()
