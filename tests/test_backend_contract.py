"""The backend contract: every registered backend implements all of it, and the code above
the backends (engine, plan report, console) never branches on a backend's name or reads a
handle's keys."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from runspec.backends import REGISTRY, backend_for
from runspec.backends.base import Backend, Capabilities, HandleError, PacedBackend, RunHandle

ROOT = Path(__file__).resolve().parent.parent / "runspec"
MEMBERS = [name for name in dir(Backend) if not name.startswith("_")] + [
    "name", "title", "summary", "capabilities", "handle_type"]


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
    assert issubclass(backend.handle_type, RunHandle)


@pytest.mark.parametrize("executor", sorted(REGISTRY))
def test_a_handle_is_read_back_from_its_record_with_its_fields_checked(executor):
    """What the state stores is the handle's record; reading it back gives the same handle,
    and a field of the wrong type is named (the state reader turns that into its error)."""
    handle_type = backend_for(executor).handle_type
    fields = dataclasses.fields(handle_type)
    assert fields, "a handle records something"
    sample = {f.name: (7 if "int" in str(f.type) else True if "bool" in str(f.type) else "x")
              for f in fields}
    handle = handle_type.of(sample)
    assert handle_type.of(handle.record()) == handle
    assert handle_type.of(None) == handle_type()
    with pytest.raises(HandleError) as bad:
        handle_type.of({fields[0].name: [1, 2]})
    assert bad.value.field == fields[0].name


@pytest.mark.parametrize("module", ["apply/engine.py", "apply/pacer.py", "apply/session.py",
                                    "apply/refresh.py", "apply/inspect.py", "plan/report.py",
                                    "console.py", "state/store.py"])
def test_code_above_the_backends_knows_no_backend_names_or_handle_keys(module):
    text = (ROOT / module).read_text()
    names = re.findall(r'["\'](local|slurm|ray|nemo-run)["\']', text)
    keys = re.findall(r'["\'](job_id|task|submission_id|pid|array_size|body|address)["\']', text)
    assert (names, keys) == ([], [])


TOY_BACKEND = """\
from functools import cache

from runspec.backends.local import LocalBackend


@cache
def options_model():
    from pydantic import Field

    from runspec.manifest.fields import Strict

    class ToyFields(Strict):
        \"\"\"Keys of the toy executor.\"\"\"

        toy_level: int | None = Field(None, ge=1, description="How toy it is.")

    return ToyFields


class ToyBackend(LocalBackend):
    name = "toy"
    title = "Toy"
    summary = "runs toys"
    options_model = staticmethod(options_model)
"""

TOY_CHECK = """\
import json, sys
import toy_backend
from runspec.backends import REGISTRY
REGISTRY["toy"] = toy_backend.ToyBackend
from pydantic import ValidationError
from runspec.manifest import schema
from runspec.manifest.models import Manifest
env, run = schema.generate("env"), schema.generate("run")
manifest = {"schema": "runspec/v1", "name": "t", "recipe": {"command": ["true"]},
            "env": {"executor": "toy", "toy_level": 2}}
accepted = Manifest.model_validate(manifest).env.toy_level
try:
    Manifest.model_validate({**manifest, "env": {"executor": "toy", "partition": "x"}})
    refused = None
except ValidationError as error:
    refused = error.errors()[0]["type"]
print(json.dumps({"profile": env["$defs"]["ToyProfile"]["properties"]["toy_level"],
                  "env_doc": run["$defs"]["ToyEnv"]["description"],
                  "accepted": accepted, "refused": refused}))
"""


def test_a_new_backend_is_its_module_and_one_registry_entry(tmp_path):
    """Nothing else names a backend: registering a module's class is enough for its options
    to reach both schemas and the models that plan builds (the checked-in schemas are then
    regenerated with ``make generate``)."""
    import json
    import subprocess
    import sys

    (tmp_path / "toy_backend.py").write_text(TOY_BACKEND)
    done = subprocess.run([sys.executable, "-c", TOY_CHECK], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["profile"]["description"] == "How toy it is."
    assert found["env_doc"] == "An execution environment that runs toys."
    assert found["accepted"] == 2
    assert found["refused"] == "extra_forbidden"
