"""Every invalid manifest under fixtures/invalid/ fails ``runspec validate`` with exactly the
message in its snapshot.

The snapshots are the spec for what a person sees: file:line:col, the key path, what was
expected, a did-you-mean, and the source line with a caret. Regenerate them with
``pytest tests/test_invalid_manifests.py --snapshot-update`` and read the diff.

Layout: ``NN-what-is-wrong.{toml,yaml}`` are the cases; ``env.toml`` (valid profiles
``local``, ``cluster``, ``big``) and ``support/`` (scripts, configs, extends bases) are what
they point at. Runs from inside the directory so messages show relative file names.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import FIXTURES, invoke
from syrupy.extensions.json import JSONSnapshotExtension

INVALID = FIXTURES / "invalid"
CASE = re.compile(r"^\d{2}-[a-z0-9-]+\.(toml|yaml)$")
CASES = sorted(p.name for p in INVALID.iterdir() if p.is_file() and CASE.match(p.name))

@pytest.fixture
def json_snapshot(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_there_are_enough_cases():
    assert len(CASES) >= 36
    assert sum(name.endswith(".yaml") for name in CASES) >= 12
    assert sum(name.endswith(".toml") for name in CASES) >= 12


@pytest.mark.parametrize("name", CASES)
def test_invalid_manifest(name: str, text_snapshot):
    result = invoke("validate", name, cwd=INVALID)
    assert result.stderr == text_snapshot
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "name", ["02-typo-nested-key.yaml", "21-secret-as-value.toml", "43-toml-syntax-error.toml"]
)
def test_invalid_manifest_json(name: str, json_snapshot):
    result = invoke("validate", "--format", "json", name, cwd=INVALID)
    records = json.loads(result.stdout)
    assert records == json_snapshot
    assert result.exit_code == 1
    assert all(set(r) == {"file", "line", "col", "path", "message", "hint", "severity"}
               for r in records)


SECRETS = [
    ("21-secret-as-value.toml", "sk-TOMLSECRET0123456789", "text"),
    ("21-secret-as-value.toml", "sk-TOMLSECRET0123456789", "json"),
    ("22-secret-as-value.yaml", "sk-YAMLSECRET0123456789", "text"),
    ("22-secret-as-value.yaml", "sk-YAMLSECRET0123456789", "json"),
    # A secret-looking name under [env.vars] is flagged with a warning whose line is redacted.
    ("21-secret-as-value.toml", "hf_VARSECRET0123456789", "json"),
    ("22-secret-as-value.yaml", "ghp_YAMLVARSECRET0123456789", "json"),
    ("21-secret-as-value.toml", "hf_VARSECRET0123456789", "text"),
    ("22-secret-as-value.yaml", "ghp_YAMLVARSECRET0123456789", "text"),
]


@pytest.mark.parametrize(("name", "secret", "fmt"), SECRETS)
def test_secret_values_are_never_printed(name: str, secret: str, fmt: str):
    result = invoke("validate", "--format", fmt, name, cwd=INVALID)
    assert result.exit_code == 1
    assert secret not in result.stdout
    assert secret not in result.stderr
