"""Resolution precedence: --set > manifest > profile > PEP 723 defaults > built-in defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from runspec.plan.resolve import resolve

SCRIPT = '''# /// script
# [tool.runspec]
# image = "from-script:1"
# [tool.runspec.run]
# launch = "torchrun"
# [tool.runspec.config]
# dir = "./conf"
# default = "small"
# [tool.runspec.resources]
# nodes = 3
# gpus_per_node = 4
# ///
print("train")
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text(SCRIPT)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "small.yaml").write_text("a: 1\n")
    (tmp_path / "env.toml").write_text(
        '[base]\nexecutor = "slurm"\npartition = "p1"\nnodes = 2\ntime = "01:00:00"\n'
        'env_vars = { FROM = "profile", KEEP = "profile" }\n'
        '[child]\nextends = "base"\npartition = "p2"\ncontainer_image = "from-profile:2"\n')
    return tmp_path


def write(project: Path, body: str) -> Path:
    path = project / "run.toml"
    path.write_text('schema = "runspec/v1"\nname = "p"\n[recipe]\nscript = "train.py"\n' + body)
    return path


def test_builtin_defaults_then_script_metadata(project):
    stage = resolve(write(project, "")).stages[0]
    assert stage.recipe.launch == "torchrun"          # PEP 723 over built-in "direct"
    assert stage.recipe.config == "conf/small.yaml"   # PEP 723 config.dir/default
    assert stage.resources.nodes == 3 and stage.resources.gpus_per_node == 4
    assert stage.resources.procs_per_node == 4        # torchrun: one per GPU (Nemotron)
    assert stage.env.executor == "local" and stage.base_config == {"a": 1}


def test_profile_over_script_and_chain_merged(project):
    stage = resolve(write(project, '[env]\nprofile = "child"\n')).stages[0]
    assert stage.env.executor == "slurm" and stage.env.profile_chain == ["child", "base"]
    assert stage.resources.nodes == 2                 # profile over PEP 723
    assert stage.resources.gpus_per_node == 4         # PEP 723, the profile is silent
    assert stage.resources.time == "01:00:00"
    assert stage.env.settings["partition"] == "p2"    # child over parent
    assert stage.env.container_image == "from-profile:2"
    assert stage.env.vars == {"FROM": "profile", "KEEP": "profile"}


def test_manifest_over_profile_and_set_over_manifest(project):
    body = ('[resources]\nnodes = 5\n[env]\nprofile = "child"\npartition = "p3"\n'
            '[env.vars]\nFROM = "manifest"\n[recipe.overrides]\na = 2\n')
    stage = resolve(write(project, body)).stages[0]
    assert stage.resources.nodes == 5 and stage.env.settings["partition"] == "p3"
    assert stage.env.vars == {"FROM": "manifest", "KEEP": "profile"}
    stage = resolve(write(project, body), ["resources.nodes=6", "env.partition=p4"]).stages[0]
    assert stage.resources.nodes == 6 and stage.env.settings["partition"] == "p4"


def test_stage_sections_override_top_level(project):
    body = ('[resources]\nnodes = 1\ngpus_per_node = 1\n[campaign]\ncycles = 3\n'
            '[stages.a.recipe]\nscript = "train.py"\n'
            '[stages.b]\nneeds = ["a"]\n[stages.b.recipe]\nscript = "train.py"\n'
            '[stages.b.resources]\ngpus_per_node = 2\n[stages.b.campaign]\n'
            'order = "interleaved"\n')
    path = project / "run.toml"
    path.write_text('schema = "runspec/v1"\nname = "p"\n' + body)
    a, b = resolve(path).stages
    assert (a.name, b.name) == ("a", "b")
    assert a.resources.gpus_per_node == 1 and b.resources.gpus_per_node == 2
    assert b.campaign.cycles == 3 and b.campaign.order == "interleaved"
