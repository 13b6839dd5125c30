"""The command line as a user meets it: --version, --help, init, json output."""

from __future__ import annotations

import json

import pytest
from conftest import invoke

from runspec import __version__


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"runspec {__version__}"


def test_help_lists_commands_and_completion():
    result = invoke("--help")
    for word in ("validate", "schema", "init", "_RUNSPEC_COMPLETE=bash_source"):
        assert word in result.stdout


@pytest.mark.parametrize("fmt,header", [
    ("toml", "#:schema "),
    ("yaml", "# yaml-language-server: $schema="),
])
def test_init_writes_a_valid_manifest_linked_to_the_schema(tmp_path, fmt, header):
    result = invoke("init", "--format", fmt, "--name", "demo", str(tmp_path))
    assert result.exit_code == 0
    manifest = tmp_path / f"run.{fmt}"
    first = manifest.read_text().splitlines()[0]
    assert first.startswith(header) and first.endswith("run.schema.json")
    schema_ref = first.split("schema", 1)[1].lstrip(" =")
    assert (tmp_path / schema_ref).is_file()
    assert invoke("validate", str(manifest)).exit_code == 0


def test_init_keeps_an_existing_manifest(tmp_path):
    (tmp_path / "run.toml").write_text("keep me")
    result = invoke("init", str(tmp_path))
    assert "kept existing" in result.stdout
    assert (tmp_path / "run.toml").read_text() == "keep me"


def test_init_inside_this_repository_points_at_checked_in_schemas(tmp_path):
    from conftest import ROOT

    from runspec.manifest.starter import schema_reference

    reference, written = schema_reference(ROOT / "examples")
    assert reference == "../schemas" and written == []


def test_json_format_is_a_list_of_records(tmp_path):
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "x"\nrecipie = 1\n')
    result = invoke("validate", "--format", "json", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    records = json.loads(result.stdout)
    assert {"file": "run.toml", "line": 3, "col": 1, "path": "recipie", "message": "unknown key",
            "hint": 'did you mean "recipe"?', "severity": "error"} in records
    assert all(set(r) == {"file", "line", "col", "path", "message", "hint", "severity"}
               for r in records)


def test_validate_requires_a_path():
    result = invoke("validate")
    assert result.exit_code == 2
    assert "Missing argument 'PATHS...'" in result.stderr


def test_apply_of_a_directory_says_it_takes_one_manifest(tmp_path):
    (tmp_path / "specs").mkdir()
    result = invoke("apply", "--yes", "specs", cwd=tmp_path)
    assert result.exit_code == 1
    assert "error: specs is a directory: apply takes one manifest (or a saved plan.json)" in result.stderr
