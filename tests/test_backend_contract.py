"""The backend contract: every registered backend implements all of it, and the code above
the backends (engine, plan report, console) never branches on a backend's name or reads a
handle's keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runspec.backends import REGISTRY, backend_for
from runspec.backends.base import Backend, Capabilities, PacedBackend

ROOT = Path(__file__).resolve().parent.parent / "runspec"
MEMBERS = [name for name in dir(Backend) if not name.startswith("_")] + ["name", "capabilities"]


@pytest.mark.parametrize("executor", sorted(REGISTRY))
def test_every_backend_implements_the_whole_interface(executor):
    backend = backend_for(executor)
    missing = [name for name in MEMBERS if not hasattr(backend, name)]
    assert missing == []
    assert backend.name == executor
    assert isinstance(backend.capabilities, Capabilities)
    assert backend.describe(None) == "" and backend.dependency_id(None) is None
    if backend.capabilities.paced_by_runspec:
        assert all(hasattr(backend, name) for name in dir(PacedBackend)
                   if not name.startswith("_"))


@pytest.mark.parametrize("module", ["apply/engine.py", "apply/pacer.py", "apply/session.py",
                                    "apply/refresh.py", "apply/inspect.py", "plan/report.py",
                                    "console.py"])
def test_code_above_the_backends_knows_no_backend_names_or_handle_keys(module):
    text = (ROOT / module).read_text()
    names = re.findall(r'["\'](local|slurm|ray|nemo-run)["\']', text)
    keys = re.findall(r'["\'](job_id|task|submission_id|pid|array_size|body|address)["\']', text)
    assert (names, keys) == ([], [])
