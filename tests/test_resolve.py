"""Resolution precedence: --set > manifest > profile > PEP 723 defaults > built-in defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import invoke

from runspec.manifest.errors import Diagnostic, ManifestError
from runspec.manifest.load import load_manifest
from runspec.manifest.validate import validate_document
from runspec.plan.resolve import apply_sets, resolve

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


# -- --set values in the manifest's own language ----------------------------------------

YAML_HEAD = "schema: runspec/v1\nname: p\nrecipe:\n  script: train.py\n"
LR = '{distribution = "log_uniform", min = 1e-4, max = 1e-2}'


def write_yaml(project: Path, body: str = "") -> Path:
    path = project / "run.yaml"
    path.write_text(YAML_HEAD + body)
    return path


def set_errors(path: Path, *sets: str) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as raised:
        resolve(path, list(sets))
    return raised.value.diagnostics


def test_set_takes_a_toml_inline_table_for_a_toml_manifest(project):
    path = write(project, '[sweep]\nmode = "random"\nsamples = 2\n')
    stage = resolve(path, [f'sweep.parameters."optim.lr"={LR}', "name=foo",
                           "campaign.cycles=2", "recipe.overrides.a=[1, 2]"]).stages[0]
    spec = stage.sweep.parameters["optim.lr"]
    assert (spec.distribution, spec.min, spec.max) == ("log_uniform", 1e-4, 1e-2)
    assert stage.campaign.cycles == 2 and stage.recipe.overrides["a"] == [1, 2]
    document = apply_sets(load_manifest(path), ["name=foo", 'x="a b"', "y=1e-4", "z=true",
                                                 "t=01:00:00", "w=my run"])
    assert document.data["name"] == "foo"          # an unquoted word is that word
    assert (document.data["x"], document.data["y"], document.data["z"]) == ("a b", 1e-4, True)
    assert (document.data["t"], document.data["w"]) == ("01:00:00", "my run")


def test_a_malformed_toml_set_value_is_an_error_at_the_argument(project):
    path = write(project, "")
    [unclosed] = set_errors(path, "campaign.cycles=1", 'sweep.parameters."optim.lr"={min = 1')
    assert (unclosed.file, unclosed.line, unclosed.col) == ("--set", 2, 29)
    assert unclosed.path == 'sweep.parameters."optim.lr"'
    assert unclosed.message == ("invalid TOML value (--set values are written in the manifest's "
                                "TOML): unclosed inline table")
    assert "close the inline table with }" in unclosed.hint
    assert unclosed.source == 'sweep.parameters."optim.lr"={min = 1'
    yaml_in_toml, number, list_ = set_errors(path, "recipe.overrides.a={b: 1, c: [x]}",
                                             "recipe.overrides.b=.5", "recipe.overrides.c=[1, 2")
    assert yaml_in_toml.hint == 'that is YAML; in TOML write {b = 1, c = ["x"]}'
    assert (yaml_in_toml.line, number.line, list_.line) == (1, 2, 3)  # every bad --set at once
    assert number.message.endswith(".5 is not a TOML number, date or time")
    assert number.hint == "TOML numbers need a digit before the point: 0.5"
    assert list_.message.endswith("unclosed array")
    [second] = set_errors(path, "recipe.overrides.a=1\nb = 2")
    assert second.message.endswith('a second key "b" follows the value')


def test_a_malformed_set_value_is_a_diagnostic_not_a_traceback(project):
    write(project, "")
    result = invoke("plan", "run.toml", "--set", 'sweep.parameters."optim.lr"={min = 1',
                    cwd=project)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert ('--set:1:29: error: sweep.parameters."optim.lr": invalid TOML value'
            in result.stderr)
    assert '  1 | sweep.parameters."optim.lr"={min = 1' in result.stderr


def test_set_takes_yaml_for_a_yaml_manifest(project):
    path = write_yaml(project, "sweep:\n  mode: random\n  samples: 2\n")
    flow = '{distribution: log_uniform, min: 0.0001, max: 0.01}'
    stage = resolve(path, [f'sweep.parameters."optim.lr"={flow}', "name=foo"]).stages[0]
    assert stage.sweep.parameters["optim.lr"].distribution == "log_uniform"
    document = apply_sets(load_manifest(path), ["name=foo", "x=.5", "y=[1, a]", "z=a: b: c"])
    assert (document.data["name"], document.data["x"], document.data["y"]) == ("foo", .5, [1, "a"])
    assert document.data["z"] == "a: b: c"          # not YAML, no bracket: taken as it stands
    [unclosed] = set_errors(path, 'sweep.parameters."optim.lr"={min: 1')
    assert (unclosed.file, unclosed.line, unclosed.col) == ("--set", 1, 29)
    assert unclosed.message.startswith(
        "invalid YAML value (--set values are written in the manifest's YAML): expected ','")
    [toml_in_yaml] = set_errors(path, f'sweep.parameters."optim.lr"={LR}')
    assert "TOML inline table" in toml_in_yaml.message
    assert toml_in_yaml.hint == "in YAML write {distribution: log_uniform, min: 0.0001, max: 0.01}"


# -- sweep values keep the type of the config value they replace -------------------------

def typed(project: Path, parameters: str) -> Path:
    (project / "conf" / "typed.yaml").write_text(
        "model:\n  hidden: 32\n  name: gpt\noptim:\n  lr: 0.001\ntrain:\n  fp16: false\n"
        "  seed: null\n  sizes: [1, 2]\n")
    return write(project, f'config = "conf/typed.yaml"\n[sweep.parameters]\n{parameters}')


def type_errors(path: Path, *sets: str) -> list[str]:
    return [d.headline for d in validate_document(apply_sets(load_manifest(path), list(sets)))
            if d.severity == "error"]


def test_sweep_values_that_fit_the_config_pass(project):
    path = typed(project, '"optim.lr" = [1, 0.01]\n"model.hidden" = { range = [16, 64, 16] }\n'
                          '"train.seed" = ["any", 1]\n"train.sizes" = [3, "x"]\n'
                          '"model.name" = ["${sweep.optim.lr}", "b"]\n"+model.new" = ["x", 1]\n'
                          '"a" = [2, 3]\n"train.fp16" = [true, false]\n')
    assert type_errors(path) == []


def test_a_sweep_value_of_the_wrong_type_points_at_the_value(project):
    path = typed(project, '"model.hidden" = [64, "big"]\n"a" = [1.5]\n'
                          '"optim.lr" = { range = [0, 1, 0.25] }\n')
    hidden, from_default = type_errors(path)
    assert hidden.endswith('run.toml:7:23: error: sweep.parameters."model.hidden"[1]: expected '
                           'an integer, got string "big" (model.hidden is integer 32 in '
                           'conf/typed.yaml) — write an integer, such as 32: the config holds '
                           'an integer')
    # "a" is not in conf/typed.yaml: it comes from the script's default config under it
    assert "(a is integer 1 in conf/small.yaml) — write whole numbers" in from_default


def test_a_sweep_distribution_or_range_that_draws_the_wrong_type(project):
    path = typed(project, '"model.hidden" = { range = [0, 1, 0.25] }\n'
                          '"model.name" = { distribution = "uniform", min = 0, max = 1 }\n')
    path.write_text(path.read_text().replace("[recipe]", '[sweep]\nmode = "random"\nsamples = 2\n'
                                             "[recipe]"))
    hidden, name = type_errors(path)
    assert "range [0, 1, 0.25] gives floats, but model.hidden is integer 32" in hidden
    assert 'distribution "uniform" draws floats, but model.name is string "gpt"' in name
    wrong = typed(project, '"model.hidden" = { distribution = "log_uniform", min = 1, max = 8 }\n'
                           '"train.fp16" = { distribution = "int_uniform", min = 0, max = 1 }\n')
    wrong.write_text(wrong.read_text().replace("[recipe]", '[sweep]\nmode = "random"\n'
                                               "samples = 2\n[recipe]"))
    hidden, fp16 = type_errors(wrong)
    assert hidden.endswith('use `distribution = "int_uniform"` to draw whole numbers')
    assert 'distribution "int_uniform" draws integers, but train.fp16 is boolean false' in fp16


def test_a_set_sweep_value_of_the_wrong_type_points_at_the_argument(project):
    path = typed(project, '"optim.lr" = [0.1]\n')
    [error] = type_errors(path, 'sweep.parameters."model.hidden"=["big"]')
    assert error.startswith('--set:1:1: error: sweep.parameters."model.hidden"[0]: expected an '
                            'integer, got string "big"')
