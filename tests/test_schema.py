"""The checked-in JSON Schemas equal what the models generate, and are useful to editors."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, invoke

from runspec.manifest import schema as schemas


@pytest.mark.parametrize("kind", sorted(schemas.SCHEMA_FILES))
def test_checked_in_schema_equals_generated(kind):
    path = ROOT / "schemas" / schemas.SCHEMA_FILES[kind]
    assert path.read_text(encoding="utf-8") == schemas.render(kind), (
        f"{path} is stale: run `runspec schema`")


def _objects(node, trail=()):
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield trail, node
        for key, value in node.items():
            yield from _objects(value, trail + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _objects(value, trail + (index,))


@pytest.mark.parametrize("kind", sorted(schemas.SCHEMA_FILES))
def test_every_object_forbids_unknown_keys(kind):
    for trail, node in _objects(schemas.generate(kind)):
        if "properties" in node:
            assert node.get("additionalProperties") is False or trail == (), trail
        else:  # free-form maps (overrides, env vars) declare what their values are
            assert "additionalProperties" in node, trail


def test_env_schema_top_level_takes_profiles():
    env = schemas.generate("env")
    assert set(env["properties"]) == {"wandb", "artifacts", "cache", "cli"}
    assert env["additionalProperties"]["oneOf"][0] == {"$ref": "#/$defs/LocalProfile"}


@pytest.mark.parametrize("kind", ["env", "run"])  # result.json is written by runspec itself
def test_every_property_is_described_for_editors(kind):
    generated = schemas.generate(kind)
    for name, definition in generated["$defs"].items():
        assert definition.get("description"), name
        for prop, spec in definition.get("properties", {}).items():
            assert spec.get("description") or "$ref" in spec or "oneOf" in spec \
                or "anyOf" in spec, f"{name}.{prop}"


def test_enums_and_examples_reach_the_schema():
    run = schemas.generate("run")
    assert run["$defs"]["Campaign"]["properties"]["order"]["enum"] == [
        "grouped", "interleaved", "shuffled"]
    assert run["$defs"]["Recipe"]["properties"]["launch"]["enum"] == ["direct", "torchrun", "ray"]
    assert run["properties"]["name"]["examples"] == ["tiny-gpt-lr"]
    assert run["$defs"]["Campaign"]["properties"]["cycles"]["default"] == 1


def test_schema_check_command(tmp_path):
    assert invoke("schema", "--check").exit_code == 0
    written = invoke("schema", "--out", str(tmp_path))
    assert written.exit_code == 0
    assert json.loads((tmp_path / "run.schema.json").read_text())["$id"].endswith("run.schema.json")
    (tmp_path / "env.schema.json").write_text("{}")
    stale = invoke("schema", "--out", str(tmp_path), "--check")
    assert stale.exit_code == 1
    assert "env.schema.json: out of date" in stale.stderr
