"""Planning against state: identities, diffs, the plan command and its exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import invoke

from runspec.plan.pipeline import Selection, make_plan
from runspec.state.store import Member

MANIFEST = '''\
schema = "runspec/v1"
name = "lr"

[recipe]
script = "train.py"
config = "config.yaml"
[recipe.overrides]
"train.steps" = 10

[sweep.parameters]
"optim.lr" = [0.001, 0.0003]
"model.n_layer" = [2, 4]

[campaign]
cycles = 2
'''

REFORMATTED = '''\
# The same manifest: reordered, reformatted, commented.
name   = "lr"    # identity
schema = "runspec/v1"
campaign = { cycles = 2 }

[sweep]
parameters = { "model.n_layer" = [ 2, 4 ], "optim.lr" = [ 1e-3, 3e-4 ] }

[recipe]
config = "config.yaml"
overrides = { "train.steps" = 10 }
script = "train.py"
'''

YAML_TWIN = '''\
name: lr
schema: runspec/v1
campaign: {cycles: 2}
sweep:
  parameters:
    model.n_layer: [2, 4]
    optim.lr: [1.0e-3, 3.0e-4]
recipe: {config: config.yaml, overrides: {train.steps: 10}, script: train.py}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")  # the project root: env.toml search stops here
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "config.yaml").write_text(
        "train:\n  steps: 100\noptim:\n  lr: 0.01\nmodel:\n  n_layer: 1\n")
    (tmp_path / "run.toml").write_text(MANIFEST)
    return tmp_path


def applied(path: Path, status: str = "succeeded") -> None:
    """Record every planned run in the state, as apply will (through the store's API)."""
    result = make_plan(path)
    for run in result.plan.runs:
        result.state.members[run.key] = Member(run.key, run.stage, run.digest, status,
                                               {"pid": 1}, run.request, point=run.point,
                                               slot=run.slot)
    result.store.write(result.state)


def test_first_plan_creates_every_run_with_readable_keys(project):
    result = make_plan(project / "run.toml")
    keys = [c.key for c in result.changes.changes]
    assert keys[0] == "lr/main/model.n_layer=2,optim.lr=0.001/c1"
    assert result.changes.count("create") == 8
    assert {c.run.run_dir for c in result.changes.changes} == {
        f"runs/{k}" for k in keys}


def test_reformatted_reordered_or_yaml_manifest_plans_no_changes(project):
    applied(project / "run.toml")
    (project / "run.toml").write_text(REFORMATTED)
    result = invoke("plan", "--detailed-exitcode", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    assert "No changes. The 8 planned runs match what was applied." in result.stdout
    (project / "run.toml").unlink()
    (project / "run.yaml").write_text(YAML_TWIN)
    assert invoke("plan", "--detailed-exitcode", "run.yaml", cwd=project).exit_code == 0


def test_changing_one_sweep_value_replaces_exactly_its_runs(project):
    applied(project / "run.toml")
    (project / "run.toml").write_text(MANIFEST.replace("0.0003]", "0.0001]"))
    result = make_plan(project / "run.toml")
    replaced = [c for c in result.changes.changes if c.action == "replace"]
    assert len(replaced) == 4 and result.changes.count("noop") == 4
    assert result.changes.count("create") == result.changes.count("destroy") == 0
    assert all("optim.lr=0.0001" in c.key for c in replaced)
    assert replaced[0].reasons == [
        "sweep changed: optim.lr 0.0003 → 0.0001 (was lr/main/model.n_layer=2,optim.lr=0.0003/c1)"]


def test_changing_an_override_replaces_all_with_the_reason_and_a_diff(project):
    applied(project / "run.toml")
    (project / "run.toml").write_text(MANIFEST.replace('"train.steps" = 10', '"train.steps" = 20'))
    result = invoke("plan", "--detailed-exitcode", "run.toml", cwd=project)
    assert result.exit_code == 2
    # The eight runs share the reason: one entry, one diff (grouping: test_plan_scale.py).
    assert "-/+ 8 runs: config changed: train.steps 10 → 20" in result.stdout
    assert result.stdout.count("-    steps: 10") == result.stdout.count("+    steps: 20") == 1
    assert "Plan: 0 to create, 8 to replace, 0 to rerun, 0 to destroy, 0 unchanged." in result.stdout


def test_failed_runs_are_rerun_and_removed_runs_destroyed(project):
    applied(project / "run.toml", status="failed")
    result = make_plan(project / "run.toml")
    assert result.changes.count("rerun") == 8
    assert result.changes.changes[0].reasons == ["failed last time"]
    applied(project / "run.toml", status="running")
    (project / "run.toml").write_text(MANIFEST.replace('"model.n_layer" = [2, 4]',
                                                       '"model.n_layer" = [2]'))
    result = make_plan(project / "run.toml")
    destroyed = [c for c in result.changes.changes if c.action == "destroy"]
    assert len(destroyed) == 4
    assert destroyed[0].reasons == ["no longer in the manifest",
                                    "running: cancelled only with --prune"]


def test_target_exclude_and_replace_select_runs(project):
    applied(project / "run.toml")
    only = make_plan(project / "run.toml", Selection(replace=["*optim.lr=0.001/c1"]))
    assert [c.key for c in only.changes.changes if c.action == "replace"] == [
        "lr/main/model.n_layer=2,optim.lr=0.001/c1", "lr/main/model.n_layer=4,optim.lr=0.001/c1"]
    targeted = make_plan(project / "run.toml", Selection(targets=["*n_layer=2*"],
                                                          excludes=["*/c2"]))
    assert [c.key for c in targeted.changes.changes] == [
        "lr/main/model.n_layer=2,optim.lr=0.001/c1", "lr/main/model.n_layer=2,optim.lr=0.0003/c1"]


def test_set_overrides_the_manifest(project):
    result = make_plan(project / "run.toml", Selection(sets=["campaign.cycles=1",
                                                             'recipe.overrides."train.steps"=5']))
    assert len(result.plan.runs) == 4
    assert result.plan.runs[0].request["config"]["train"]["steps"] == 5
    bad = invoke("plan", "run.toml", "--set", "campaign.cycles=zero", cwd=project)
    assert bad.exit_code == 1
    assert '--set:1:1: error: campaign.cycles: expected an integer, got string "zero"' in bad.stderr


def test_digest_ignores_formatting_and_changes_with_values(project):
    first = {r.key: r.digest for r in make_plan(project / "run.toml").plan.runs}
    (project / "run.toml").write_text(REFORMATTED)
    assert {r.key: r.digest for r in make_plan(project / "run.toml").plan.runs} == first


def test_plan_json_and_saved_plan(project):
    result = invoke("plan", "--json", "--out", "plan.json", "run.toml", cwd=project)
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    saved = json.loads((project / "plan.json").read_text())
    assert saved == {**printed, "apply": {"manifest_file": str(project / "run.toml"),
                                          "selection": {"targets": [], "excludes": [],
                                                        "replace": [], "sets": []}}}
    assert saved["format"] == "runspec.plan/1"
    assert saved["state"] == {"location": str(project / ".runspec/state/lr.json"),
                              "lineage": None, "serial": 0}
    assert saved["summary"]["create"] == 8 and len(saved["manifest"]["digest"]) == 64
    assert saved["changes"][0]["request"]["argv"][:3] == ["python", "-m", "runspec.measure"]
    assert saved["changes"][0]["request"]["argv"][6:8] == ["python", "train.py"]
    assert saved["launches"][0]["backend"] == "local"


def test_detailed_exitcode_is_1_on_error(project):
    (project / "run.toml").write_text(MANIFEST.replace('"train.steps"', '"train.stepz"'))
    result = invoke("plan", "--detailed-exitcode", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert ('run.toml:8:1: error: recipe.overrides."train.stepz": "train.stepz" is not a key of '
            'config.yaml — did you mean "train.steps"?') in result.stderr


@pytest.mark.parametrize("change,expected", [
    ('"optim.lr" = [0.001, 0.0003]', 'sweep.parameters."optim.lrr": "optim.lrr" is not a key'),
])
def test_sweep_parameter_must_be_a_config_key(project, change, expected):
    (project / "run.toml").write_text(MANIFEST.replace('"optim.lr" =', '"optim.lrr" ='))
    result = invoke("plan", "run.toml", cwd=project)
    assert result.exit_code == 1 and expected in result.stderr
    assert 'did you mean "optim.lr"?' in result.stderr


def test_plus_key_adds_a_key_the_config_lacks(project):
    (project / "run.toml").write_text(MANIFEST.replace('"train.steps" = 10',
                                                       '"+train.extra" = "yes"'))
    result = make_plan(project / "run.toml")
    assert result.plan.runs[0].request["config"]["train"] == {"steps": 100, "extra": "yes"}


def test_interpolation_cycle_and_undefined_name_positions(project):
    text = MANIFEST.replace('"train.steps" = 10', '"train.steps" = "${sweep.optim.lrx}"')
    (project / "run.toml").write_text(text)
    result = invoke("plan", "run.toml", cwd=project)
    assert ('run.toml:8:17: error: recipe.overrides."train.steps": ${sweep.optim.lrx} is '
            'undefined: no sweep parameter "optim.lrx" — did you mean "optim.lr"?') in result.stderr
    cyclic = textwrap.dedent('''\
        schema = "runspec/v1"
        name = "cyc"
        [recipe]
        command = ["echo", "${sweep.a}"]
        [sweep.parameters]
        a = ["${sweep.b}"]
        b = ["${sweep.a}"]
        ''')
    (project / "run.toml").write_text(cyclic)
    result = invoke("plan", "run.toml", cwd=project)
    assert result.stderr.startswith("run.toml:6:5: error: sweep.parameters.a: interpolation "
                                    "cycle: ${sweep.b} → ${sweep.a} → ${sweep.b}")


def test_omegaconf_resolvers_pass_through(project):
    (project / "config.yaml").write_text(
        "train:\n  steps: 100\n  home: ${oc.env:HOME}\n  twice: ${train.steps}\n"
        "  where: ${run.dir}/ckpt\noptim:\n  lr: 0.01\nmodel:\n  n_layer: 1\n")
    run = make_plan(project / "run.toml").plan.runs[0]
    train = run.request["config"]["train"]
    assert train["home"] == "${oc.env:HOME}" and train["twice"] == "${train.steps}"
    assert train["where"] == f"{run.run_dir}/ckpt"
    assert "home: ${oc.env:HOME}" in run.files["config.yaml"] or \
        'home: "${oc.env:HOME}"' in run.files["config.yaml"]


def test_a_sweep_emptied_by_exclude_is_an_error_with_its_position(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "x"\n[recipe]\ncommand = ["echo", "${sweep.a}"]\n'
        '[sweep.parameters]\na = [1, 2]\n[[sweep.exclude]]\na = 1\n[[sweep.exclude]]\na = 2\n')
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith("run.toml:7:9: error: sweep.exclude: the sweep is empty: "
                                    "exclude removed every point — loosen the exclude entries")


def test_command_recipe_interpolates_each_point(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "x"\n[recipe]\ncommand = ["echo", "${sweep.a}", '
        '"${run.dir}/out-${sweep.a}"]\n[sweep.parameters]\na = [1, 2.5]\n')
    runs = make_plan(tmp_path / "run.toml").plan.runs
    assert [r.request["argv"][6:] for r in runs] == [
        ["echo", "1", "runs/x/main/a=1/c1/out-1"],
        ["echo", "2.5", "runs/x/main/a=2.5/c1/out-2.5"]]


def _rendered_config(path: Path, sets: list[str] | None = None) -> dict:
    from ruamel.yaml import YAML

    run = make_plan(path, Selection(sets=sets or [])).plan.runs[0]
    return YAML(typ="safe").load(run.files["config.yaml"])


@pytest.mark.parametrize("overrides", [
    '[recipe.overrides.train]\nsteps = 5\n',                 # a nested table
    '[recipe.overrides]\ntrain = { steps = 5 }\n',           # an inline table
    '[recipe.overrides]\n"train.steps" = 5\n',               # the quoted dotted key
])
def test_nested_overrides_set_leaves_and_keep_their_siblings(tmp_path, overrides):
    """As OmegaConf merges: a table under recipe.overrides sets its leaves; it never deletes
    the other keys of that part of the config."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "config.yaml").write_text(
        "train:\n  steps: 100\n  seed: 7\n  log_interval: 10\noptim:\n  lr: 0.01\n")
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "n"\n[recipe]\n'
                                       'script = "train.py"\nconfig = "config.yaml"\n' + overrides)
    assert invoke("validate", "run.toml", cwd=tmp_path).exit_code == 0
    config = _rendered_config(tmp_path / "run.toml")
    assert config["train"] == {"steps": 5, "seed": 7, "log_interval": 10}


def test_a_nested_set_merges_and_a_nested_typo_has_its_position(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "config.yaml").write_text("train:\n  steps: 100\n  seed: 7\n")
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "n"\n[recipe]\n'
                                       'script = "train.py"\nconfig = "config.yaml"\n'
                                       '[recipe.overrides.train]\nseed = 1\n"+extra" = 2\n')
    config = _rendered_config(tmp_path / "run.toml", ["recipe.overrides.train.steps=5"])
    assert config["train"] == {"steps": 5, "seed": 1, "extra": 2}
    (tmp_path / "run.toml").write_text((tmp_path / "run.toml").read_text().replace(
        "seed = 1", "sead = 1"))
    result = invoke("validate", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        'run.toml:7:1: error: recipe.overrides.train.sead: "train.sead" is not a key of '
        'config.yaml — did you mean "train.seed"?'), result.stderr


def test_an_unknown_executor_is_an_error_not_a_local_run():
    from runspec.backends import REGISTRY, backend_for
    from runspec.backends.base import BackendError

    assert {name: type(backend_for(name)).__name__ for name in REGISTRY} == {
        "local": "LocalBackend", "slurm": "SlurmBackend", "ray": "RayBackend",
        "nemo-run": "NemoRunBackend", **dict.fromkeys(
            ("docker", "dgxcloud", "lepton", "skypilot"), "NemoRunBackend")}
    with pytest.raises(BackendError, match='no backend implements executor "k8s"'):
        backend_for("k8s")


def test_a_resources_sweep_sets_each_runs_resources_with_a_config_too(project):
    """resources.* sweep parameters are the runs' resources, not keys of the recipe config:
    validate accepts them beside a config, and each run gets its own."""
    text = (project / "run.toml").read_text().replace(
        '"model.n_layer" = [2, 4]', '"resources.cpus_per_task" = [1, 2]')
    (project / "run.toml").write_text(text)
    assert invoke("validate", "run.toml", cwd=project).exit_code == 0
    runs = make_plan(project / "run.toml").plan.runs
    assert sorted({r.request["resources"]["cpus_per_task"] for r in runs}) == [1, 2]


def test_a_stage_reading_an_upstream_dir_fans_out_over_its_runs(tmp_path):
    """``${stage.prep.dir}`` of a stage with several runs (here two cycles) gives one
    consumer run per upstream run, as ``${stage.prep.outputs.…}`` does; before, plan refused
    it while validate (which plans one cycle) accepted it."""
    from runspec.plan.check import plan_diagnostics
    from runspec.plan.render import build_plan
    from runspec.plan.resolve import resolve

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "fan"
        [stages.prep.recipe]
        command = ["true"]
        [stages.use]
        needs = ["prep"]
        [stages.use.recipe]
        command = ["cat", "${stage.prep.dir}/out.txt"]
        [campaign]
        cycles = 2
        '''))
    assert plan_diagnostics(tmp_path / "run.toml") == []
    runs = {r.key: r for r in build_plan(resolve(tmp_path / "run.toml")).runs}
    assert runs["fan/use/stage.prep=default@c2/c1"].request["argv"][-1] == \
        "runs/fan/prep/default/c2/out.txt"
    assert len([k for k in runs if k.startswith("fan/use/")]) == 4
