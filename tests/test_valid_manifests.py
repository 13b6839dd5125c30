"""Every manifest section has a valid TOML and YAML twin; both validate and load to one model."""

from __future__ import annotations

import pytest
from conftest import FIXTURES, invoke

from runspec.manifest.load import load_manifest
from runspec.manifest.models import Manifest
from runspec.manifest.validate import validate_file

VALID = FIXTURES / "valid"
TWINS = sorted(p.stem for p in VALID.glob("*.yaml"))


def test_every_section_has_a_twin():
    assert {"minimal", "recipe", "kinds", "resources", "env-profile", "env-inline", "artifacts",
            "sweep-grid", "sweep-zip", "sweep-random", "campaign-measure", "stages",
            "extends"} <= set(TWINS)


@pytest.mark.parametrize("stem", TWINS)
def test_twins_validate_and_load_to_the_same_model(stem):
    toml_path, yaml_path = VALID / f"{stem}.toml", VALID / f"{stem}.yaml"
    assert validate_file(toml_path) == []
    assert validate_file(yaml_path) == []
    from_toml = Manifest.model_validate(load_manifest(toml_path).data)
    from_yaml = Manifest.model_validate(load_manifest(yaml_path).data)
    assert from_toml == from_yaml


def test_valid_directory_is_quiet_and_exits_zero():
    result = invoke("validate", ".", cwd=VALID)
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


def test_extends_deep_merges_base_under_manifest():
    manifest = Manifest.model_validate(load_manifest(VALID / "extends.toml").data)
    assert manifest.name == "extended"
    assert manifest.recipe.script == "train.py"  # from the base
    assert manifest.recipe.overrides == {"train.steps": 10}
    assert manifest.resources.procs_per_node == 2  # from the base
    assert manifest.campaign.cycles == 5  # the manifest wins


def test_typed_values_survive_loading():
    data = load_manifest(VALID / "recipe.toml").data
    assert data["recipe"]["overrides"] == {"train.steps": 200, "optim.lr": 3e-4, "+train.extra": "new"}
    assert isinstance(data["recipe"]["overrides"]["train.steps"], int)
    assert isinstance(data["recipe"]["overrides"]["optim.lr"], float)


def test_env_executor_union_picks_the_executor_model():
    from runspec.backends.ray import options_model
    from runspec.manifest.executors import ENV_MODELS, InheritingEnv

    inline = Manifest.model_validate(load_manifest(VALID / "env-inline.toml").data)
    assert isinstance(inline.env, ENV_MODELS["ray"]) and isinstance(inline.env, options_model())
    assert inline.env.address == "http://127.0.0.1:8265"
    profile = Manifest.model_validate(load_manifest(VALID / "env-profile.toml").data)
    assert isinstance(profile.env, InheritingEnv)
    assert profile.env.secrets["WANDB_API_KEY"].from_env == "WANDB_API_KEY"
