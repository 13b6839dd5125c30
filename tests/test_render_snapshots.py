"""Every rendered artifact of a plan, snapshot-tested: config.yaml, job.yaml, local.json,
launch.sh, ray.json, nemo_run.json, job.sbatch, and the plan text and JSON.

The snapshots are what a user reads before submitting: review them as you would an sbatch
script written by hand. Regenerate with
``pytest tests/test_render_snapshots.py --snapshot-update`` and read the diff.

Rendered Slurm and Ray files hold the absolute path of the manifest's directory, and CI
clones the repository anywhere, so every test copies its fixtures into ``tmp_path`` and
replaces that path with ``<root>`` before snapshotting. Fixtures live in fixtures/plan/
(manifests ``*.run.toml``, env.toml, config/, scripts, a site sbatch template); the
examples/ and specs/ manifests are copied with the part of the repository they point at.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, JsonTextSnapshotExtension, chdir, invoke
from ruamel.yaml import YAML

from runspec.manifest.validate import discover
from runspec.plan import report
from runspec.plan.pipeline import PlanResult, make_plan

PLAN = FIXTURES / "plan"
MANIFESTS = sorted(p.name for p in PLAN.glob("*.run.toml"))
EXAMPLES = sorted(
    p.relative_to(ROOT).as_posix()
    for p in discover([ROOT / "examples", ROOT / "specs"])
    if p.name != "env.toml"
)
NASTY = "x; rm -rf / $(touch PWNED) `id` 'q' \"dq\""
SECRET_VALUES = {"WANDB_API_KEY": "wandb-SECRET-0123456789abcdef",
                 "RUNSPEC_TEST_HF_TOKEN": "hf_SECRETTOKEN0123456789"}


@pytest.fixture
def json_snapshot(snapshot):
    return snapshot.use_extension(JsonTextSnapshotExtension)


# -- helpers -----------------------------------------------------------------------------


def fixture_root(tmp_path: Path) -> Path:
    """fixtures/plan copied to ``tmp_path``: the manifests' directory is ``<root>``."""
    shutil.copytree(PLAN, tmp_path, dirs_exist_ok=True)
    return tmp_path


def repo_root(tmp_path: Path) -> Path:
    """examples/ and specs/ (and pyproject.toml, where the env.toml search stops) copied."""
    for name in ("examples", "specs"):
        # Only what git tracks: a local `make demo` leaves runs/ and .runspec/ state behind.
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns(".runspec", "runs"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def portable(text: str, root: Path) -> str:
    """``text`` with the temporary root written as ``<root>``."""
    for form in sorted({str(root.resolve()), str(root)}, key=len, reverse=True):
        text = text.replace(form, "<root>")
    return text


def checkout_bound(text: str, result: PlanResult, root: Path) -> str:
    """Requests never hold the checkout's absolute path (scripts outside the manifest's
    directory are written ``../``), so digests are the same in every clone."""
    for run in result.plan.runs:
        assert str(root.resolve()) not in json.dumps(run.request), run.key
    return text


def recipe_argv(argv: list[str], run_dir: str) -> list[str]:
    """The recipe's argv inside the measure wrapper (checking the wrapper on the way)."""
    assert argv[:6] == ["python", "-m", "runspec.measure", "--run-dir", run_dir, "--"], argv
    return argv[6:]


def plan_of(root: Path, manifest: str) -> PlanResult:
    """``make_plan`` run from ``root`` (so displayed paths are relative, as from the CLI)."""
    with chdir(root):
        return make_plan(manifest)


def rendered(result: PlanResult) -> dict[str, str]:
    """Every file ``runspec render`` writes, by path relative to the manifest directory."""
    files: dict[str, str] = {}
    for run in result.plan.runs:
        for name, text in run.files.items():
            files[f"{run.run_dir}/{name}"] = text
    for launch in result.launches:
        for name, text in launch.files.items():
            files[f"{launch.directory}/{name}"] = text
    return files


def tree_text(files: dict[str, str], root: Path) -> str:
    """All files in one readable text: a ``==> path <==`` header before each (like tail)."""
    parts = [f"# {len(files)} rendered files\n"]
    for path in sorted(files):
        parts.append(f"\n==> {path} <==\n{files[path]}")
    return portable("".join(parts), root)


def run_files(result: PlanResult, index: int = 0) -> dict[str, str]:
    return result.plan.runs[index].files


def load_yaml(text: str):
    return YAML(typ="safe").load(text)


def shell_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment whose ``python`` is the interpreter running the tests (its own
    directory first on PATH, as apply arranges; a symlink elsewhere would lose the venv)."""
    shim = tmp_path / ".bin"
    shim.mkdir(exist_ok=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), str(shim),
                            os.environ.get("PATH", "/usr/bin:/bin")])
    return {"PATH": path, "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}


# -- every rendered file -------------------------------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_rendered_files(manifest: str, tmp_path: Path, text_snapshot):
    root = fixture_root(tmp_path)
    files = rendered(plan_of(root, manifest))
    assert tree_text(files, root) == text_snapshot


@pytest.mark.parametrize("manifest", EXAMPLES, ids=lambda path: path.replace("/", "-"))
def test_rendered_files_of_examples(manifest: str, tmp_path: Path, text_snapshot):
    root = repo_root(tmp_path)
    assert tree_text(rendered(plan_of(root, manifest)), root) == text_snapshot


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_cli_render_writes_exactly_the_rendered_files(manifest: str, tmp_path: Path):
    root = fixture_root(tmp_path)
    expected = rendered(plan_of(root, manifest))
    result = invoke("render", manifest, "--out", "out", cwd=root)
    assert result.exit_code == 0, result.output
    written = {p.relative_to(root / "out").as_posix(): p.read_text(encoding="utf-8")
               for p in (root / "out").rglob("*") if p.is_file()}
    assert written == expected
    assert result.stdout == (f"wrote {len(expected)} files for "
                             f"{len(plan_of(root, manifest).plan.runs)} runs under out\n")


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_rendering_is_deterministic(manifest: str, tmp_path: Path):
    root = fixture_root(tmp_path)
    first, second = plan_of(root, manifest), plan_of(root, manifest)
    assert rendered(first) == rendered(second)
    assert report.plan_json(first) == report.plan_json(second)
    assert report.plan_text(first) == report.plan_text(second)


# -- 1. config.yaml and job.yaml -----------------------------------------------------------


def test_config_yaml_keeps_types_overrides_new_keys_and_the_sweep_point(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "local-config.run.toml")
    run = result.plan.runs[1]
    assert run.point == {"model.n_layer": 4, "optim.betas": [0.9, 0.95]}
    config = load_yaml(run.files["config.yaml"])
    assert config["model"] == {"name": "1e-3", "n_layer": 4, "d_model": 64, "dropout": 0.1}
    assert config["optim"] == {"name": "adamw", "lr": 0.001, "weight_decay": 1e-10,
                               "betas": [0.9, 0.95]}
    assert config["train"] == {"steps": 200, "seed": 0, "compile": True, "precision": "true",
                               "tag": "yes", "notes": "null"}
    assert config["data"] == {"path": "0123", "shards": 4}
    assert config["new"] == {"nested": {"key": {"a": 1, "b": [1, "2", 3.5]}}}
    assert config["run"] == {"out": f"{run.run_dir}/out"}
    assert type(config["train"]["steps"]) is int
    assert type(config["optim"]["lr"]) is float
    assert type(config["optim"]["weight_decay"]) is float
    text = run.files["config.yaml"]
    for quoted in ('precision: "true"', 'name: "1e-3"', 'path: "0123"', 'tag: "yes"',
                   'notes: "null"'):
        assert quoted in text


def test_job_yaml_records_the_run_and_references_secrets(tmp_path: Path):
    root = fixture_root(tmp_path)
    run = plan_of(root, "local-config.run.toml").plan.runs[0]
    job = load_yaml(run.files["job.yaml"])
    assert job["run"] == {"key": run.key, "stage": "main", "dir": run.run_dir, "slot": "c1",
                          "cycle": 1, "warmup": False, "cwd": ".",
                          "command": json.loads(run.files["local.json"])["argv"],
                          "env": json.loads(run.files["local.json"])["env"]}
    assert job["sweep"] == {"model.n_layer": 2, "optim.betas": [0.9, 0.95]}
    assert job["manifest"]["path"] == "local-config.run.toml"
    assert job["env"]["vars"] == {"PYTHONUNBUFFERED": "1", "DEBUG_FLAG": "true",
                                  "LR_TEXT": "0.001"}
    module = load_yaml(plan_of(root, "local-module.run.toml").plan.runs[0].files["job.yaml"])
    assert module["env"]["secrets"] == {"HF_TOKEN": {"from_env": "HF_TOKEN"}}


# -- 2. the local backend ------------------------------------------------------------------


def test_local_direct(tmp_path: Path):
    root = fixture_root(tmp_path)
    run = plan_of(root, "local-config.run.toml").plan.runs[0]
    request = json.loads(run.files["local.json"])
    assert recipe_argv(request["argv"], run.run_dir) == [
        "python", "train.py", "--config", f"{run.run_dir}/config.yaml",
                               "--log-every", "10"]
    assert request["cwd"] == "."
    assert request["env"]["RUNSPEC_RUN_KEY"] == run.key
    assert request["env"]["RUNSPEC_RUN_DIR"] == run.run_dir


def test_local_torchrun(tmp_path: Path):
    root = fixture_root(tmp_path)
    run = plan_of(root, "local-torchrun.run.toml").plan.runs[0]
    argv = recipe_argv(json.loads(run.files["local.json"])["argv"], run.run_dir)
    assert argv == ["torchrun", "--standalone", "--nproc_per_node=2", "train.py", "--config",
                    f"{run.run_dir}/config.yaml"]


def test_local_module(tmp_path: Path):
    root = fixture_root(tmp_path)
    run = plan_of(root, "local-module.run.toml").plan.runs[0]
    request = json.loads(run.files["local.json"])
    # The recipe runs in workdir "src": its paths are given relative to it.
    assert recipe_argv(request["argv"], f"../{run.run_dir}") == [
        "python", "-m", "mypkg.train", "--config",
                               f"../{run.run_dir}/config.yaml", "--dry-run"]
    assert request["cwd"] == "src"
    assert request["env"]["RUNSPEC_RUN_DIR"] == f"../{run.run_dir}"
    assert request["secrets"] == {"HF_TOKEN": {"from_env": "HF_TOKEN"}}


def test_local_command_interpolates_sweep_and_run(tmp_path: Path):
    root = fixture_root(tmp_path)
    runs = plan_of(root, "local-command.run.toml").plan.runs
    assert [r.point for r in runs] == [{"size": "small"}, {"size": "large"}]
    for run in runs:
        request = json.loads(run.files["local.json"])
        size = run.point["size"]
        assert recipe_argv(request["argv"], run.run_dir) == [
            "python", "bench.py", "--size", size, "--out",
                                   f"{run.run_dir}/result.json", f"--tag={run.key}"]
        assert request["env"]["BENCH_OUT"] == run.run_dir
        assert request["env"]["BENCH_SIZE"] == size
        # No --config for a command, but its config.yaml holds the point for ${run.dir}/config.yaml
        assert run.files["config.yaml"] == f"size: {size}\n"


# -- 3. Slurm ------------------------------------------------------------------------------


def sbatch_lines(result: PlanResult, stage: str = "main") -> list[str]:
    launch = next(launch for launch in result.launches if launch.stage == stage)
    return launch.files["job.sbatch"].splitlines()


def directives(lines: list[str]) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in lines if line.startswith("#SBATCH ")]


def test_slurm_single_run(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-single.run.toml")
    (launch,) = result.launches
    run = result.plan.runs[0]
    assert set(launch.files) == {"job.sbatch"}
    found = directives(launch.files["job.sbatch"].splitlines())
    assert not any(d.startswith("--array") for d in found)
    assert "--partition=cpu" in found and "--account=ml-research" in found
    assert "--time=01:30:00" in found and "--mem=16G" in found and "--cpus-per-task=4" in found
    assert f"--chdir={root.resolve()}" in found
    assert f"RUN_DIR={run.run_dir}" in launch.files["job.sbatch"]
    assert launch.request["argv"] == ["sbatch", "--parsable", f"{launch.directory}/job.sbatch"]
    assert run.files["launch.sh"].splitlines()[-1] == (
        f"exec python -m runspec.measure --run-dir {run.run_dir} -- "
        f"python train.py --config {run.run_dir}/config.yaml")


def test_slurm_sweep_is_one_array(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-sweep.run.toml")
    (launch,) = result.launches
    assert len(result.plan.runs) == 6
    found = directives(launch.files["job.sbatch"].splitlines())
    assert "--array=0-5%2" in found
    assert launch.request["array_size"] == 6
    script = launch.files["job.sbatch"]
    listed = script[script.index("RUNS=(\n") + 7:script.index("\n)\n")].split()
    assert listed == [r.run_dir for r in result.plan.runs]  # in the script: immutable once sent
    assert set(launch.files) == {"job.sbatch"}
    assert sum(line.startswith("srun ") for line in launch.files["job.sbatch"].splitlines()) == 1


def test_slurm_multi_node_torchrun(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-multinode.run.toml")
    (launch,) = result.launches
    script = launch.files["job.sbatch"]
    found = directives(script.splitlines())
    assert "--nodes=2" in found and "--ntasks-per-node=1" in found
    assert "--gpus-per-node=8" in found and "--exclusive" in found
    assert 'export PET_NNODES="$SLURM_NNODES"' in script
    # torchrun is one task per node starting 8 workers: it gets all 8 × 12 CPUs.
    assert "--cpus-per-task=96" in found
    assert "srun --ntasks-per-node=1 --cpus-per-task=96 bash" in script
    run = result.plan.runs[0]
    assert run.files["launch.sh"].splitlines()[-1] == (
        f"exec python -m runspec.measure --run-dir {run.run_dir} -- "
        f"torchrun --nproc_per_node=8 train.py --config {run.run_dir}/config.yaml")


def test_slurm_container_flags(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-container.run.toml")
    srun = next(line for line in result.launches[0].files["job.sbatch"].splitlines()
                if line.startswith("srun "))
    assert shlex.split(srun) == [
        "srun", "--cpus-per-task=4", "--container-image=nvcr.io/nvidia/pytorch:25.01-py3",
        f"--container-mounts=/lustre/data:/data,/scratch:/scratch,{root.resolve()}:{root.resolve()}",
        f"--container-workdir={root.resolve()}", "bash", "$RUN_DIR/launch.sh"]
    launch_sh = result.plan.runs[0].files["launch.sh"]
    assert "nvidia-smi -L\npip list | grep -i torch\n" in launch_sh


def test_slurm_custom_template(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-template.run.toml")
    script = result.launches[0].files["job.sbatch"]
    assert script.startswith("#!/bin/bash\n# Site template for slurm-template/main")
    assert "#SBATCH --mail-type=END,FAIL" in script and "module load cuda/12.4" in script
    assert "#SBATCH --array=0-2" in script


def test_slurm_pipeline_second_stage_depends_on_the_first(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-pipeline.run.toml")
    prep, train = result.launches
    assert (prep.stage, train.stage) == ("prep", "train")
    assert prep.request["argv"] == ["sbatch", "--parsable", f"{prep.directory}/job.sbatch"]
    assert train.request["argv"] == ["sbatch", "--parsable", "--dependency=afterok:{job:prep}",
                                     f"{train.directory}/job.sbatch"]
    prep_run, train_run = result.plan.runs
    config = load_yaml(train_run.files["config.yaml"])
    assert config["data"]["path"] == f"{prep_run.run_dir}/shards"


def test_secret_values_never_appear_in_any_rendered_file(tmp_path: Path, monkeypatch):
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    root = fixture_root(tmp_path)
    texts = []
    for manifest in ("slurm-secrets.run.toml", "ray.run.toml", "local-module.run.toml"):
        result = plan_of(root, manifest)
        texts += list(rendered(result).values())
        texts += [report.plan_text(result), report.dumps(report.plan_json(result))]
        cli_plan = invoke("plan", manifest, cwd=root)
        cli_json = invoke("plan", "--json", manifest, cwd=root)
        texts += [cli_plan.output, cli_json.output]
        assert invoke("render", manifest, "--out", "out", cwd=root).exit_code == 0
    texts += [p.read_text(encoding="utf-8") for p in (root / "out").rglob("*") if p.is_file()]
    for value in SECRET_VALUES.values():
        assert not any(value in text for text in texts)
    launch_sh = plan_of(root, "slurm-secrets.run.toml").plan.runs[0].files["launch.sh"]
    assert 'export WANDB_API_KEY="${WANDB_API_KEY:?secret WANDB_API_KEY is not set}"' in launch_sh
    assert 'export HF_TOKEN="${RUNSPEC_TEST_HF_TOKEN:?' in launch_sh


# -- 4. Ray --------------------------------------------------------------------------------


def test_ray_job_submission(tmp_path: Path):
    root = fixture_root(tmp_path)
    run = plan_of(root, "ray.run.toml").plan.runs[0]
    request = json.loads(run.files["ray.json"])
    body = request["body"]
    assert body["entrypoint"] == (
        f"cd {root.resolve()} && exec python -m runspec.measure --run-dir {run.run_dir} -- "
        f"python train.py --config {run.run_dir}/config.yaml "
        "--note 'it'\"'\"'s here'")
    assert body["submission_id"] == f"runspec-{run.digest[:20]}"
    assert body["runtime_env"]["pip"] == ["numpy==2.1.0"]
    assert body["runtime_env"]["env_vars"] == {
        "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1", "RUNSPEC_RUN_KEY": run.key,
        "RUNSPEC_RUN_DIR": run.run_dir}
    assert body["entrypoint_num_cpus"] == 6
    assert body["entrypoint_num_gpus"] == 1
    assert body["metadata"] == {"runspec_key": run.key, "runspec_stage": "main"}


# -- 5. plan text and JSON -----------------------------------------------------------------


def _id(path: str) -> str:
    return path.replace("/", "-")


@pytest.mark.parametrize("manifest", EXAMPLES, ids=_id)
def test_plan_text_of_examples(manifest: str, tmp_path: Path, text_snapshot):
    root = repo_root(tmp_path)
    result = invoke("plan", manifest, cwd=root)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert portable(result.stdout, root) == text_snapshot


@pytest.mark.parametrize("manifest", EXAMPLES, ids=_id)
def test_plan_json_of_examples(manifest: str, tmp_path: Path, json_snapshot):
    root = repo_root(tmp_path)
    result = invoke("plan", "--json", manifest, cwd=root)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "runspec.plan/1"
    text = checkout_bound(result.stdout, plan_of(root, manifest), root)
    assert portable(text, root) == json_snapshot


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_plan_text(manifest: str, tmp_path: Path, text_snapshot):
    root = fixture_root(tmp_path)
    result = invoke("plan", manifest, cwd=root)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert portable(result.stdout, root) == text_snapshot
    assert result.stdout == report.plan_text(plan_of(root, manifest))


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_plan_json(manifest: str, tmp_path: Path, json_snapshot):
    root = fixture_root(tmp_path)
    result = invoke("plan", "--json", manifest, cwd=root)
    assert result.exit_code == 0, result.output
    assert portable(result.stdout, root) == json_snapshot
    assert json.loads(result.stdout) == json.loads(report.dumps(report.plan_json(
        plan_of(root, manifest))))


def test_plan_of_a_directory_of_manifests(tmp_path: Path, text_snapshot):
    root = fixture_root(tmp_path)
    result = invoke("plan", ".", cwd=root)
    assert result.exit_code == 0, result.output
    assert portable(result.stdout, root) == text_snapshot


# -- 6. shell metacharacters stay inert ------------------------------------------------------


def test_shell_metacharacters_render_as_data(tmp_path: Path, text_snapshot):
    root = fixture_root(tmp_path)
    result = plan_of(root, "shell-meta.run.toml")
    run = result.plan.runs[1]
    launch_sh = run.files["launch.sh"]
    assert portable(launch_sh, root) == text_snapshot
    expected = ["python", "-c", result.resolved.stages[0].recipe.entry[2], NASTY, "$HOME", "*",
                "a\nb", "--flag=$(touch PWNED2)"]
    # What bash will see, checked before bash runs it.
    exec_line = launch_sh[launch_sh.index("\nexec ") + 1:]
    assert shlex.split(exec_line) == ["exec", "python", "-m", "runspec.measure", "--run-dir",
                                      run.run_dir, "--", *expected]
    assert f"export NASTY={shlex.quote(NASTY)}\n" in launch_sh


@pytest.mark.parametrize("index", [0, 1])
def test_shell_metacharacters_stay_inert_when_launch_sh_runs(index: int, tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "shell-meta.run.toml")
    run = result.plan.runs[index]
    run_dir = root / run.run_dir
    run_dir.mkdir(parents=True)
    (run_dir / "launch.sh").write_text(run.files["launch.sh"], encoding="utf-8")
    completed = subprocess.run(["bash", f"{run.run_dir}/launch.sh"], cwd=root,
                               env=shell_env(tmp_path), capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    printed = json.loads(completed.stdout)
    flag = "--flag=plain" if index == 0 else "--flag=$(touch PWNED2)"
    assert printed == {"argv": [NASTY, "$HOME", "*", "a\nb", flag], "env": NASTY}
    assert not list(root.rglob("PWNED*"))


def test_rendered_array_job_runs_every_task_inertly(tmp_path: Path):
    """job.sbatch under a stand-in ``srun``: from --chdir, each array index finds its run
    directory in the script, redirects to its logs and runs its launch.sh."""
    root = fixture_root(tmp_path)
    assert invoke("render", "shell-meta.run.toml", "--out", ".", cwd=root).exit_code == 0
    result = plan_of(root, "shell-meta.run.toml")
    (launch,) = result.launches
    script = root / launch.directory / "job.sbatch"
    chdir_to = next(line.removeprefix("#SBATCH --chdir=")
                    for line in script.read_text(encoding="utf-8").splitlines()
                    if line.startswith("#SBATCH --chdir="))
    assert Path(chdir_to) == root.resolve()
    env = shell_env(tmp_path)
    (tmp_path / ".bin" / "srun").write_text(
        '#!/usr/bin/env bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    (tmp_path / ".bin" / "srun").chmod(0o755)
    for index, run in enumerate(result.plan.runs):
        completed = subprocess.run(["bash", str(script)], cwd=chdir_to, capture_output=True,
                                   text=True, timeout=60, check=False,
                                   env={**env, "SLURM_ARRAY_TASK_ID": str(index),
                                        "SLURM_JOB_ID": "42"})
        assert completed.returncode == 0, completed.stderr
        stdout = (root / run.run_dir / "stdout.log").read_text(encoding="utf-8")
        assert json.loads(stdout)["argv"][0] == NASTY
        assert json.loads(stdout)["env"] == NASTY
    assert not list(root.rglob("PWNED*"))


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_every_rendered_script_is_valid_bash(manifest: str, tmp_path: Path):
    root = fixture_root(tmp_path)
    scripts = {path: text for path, text in rendered(plan_of(root, manifest)).items()
               if path.endswith((".sh", ".sbatch"))}
    for path, text in scripts.items():
        completed = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True,
                                   timeout=30, check=False)
        assert completed.returncode == 0, f"{path}: {completed.stderr}"


def test_a_newline_in_a_sweep_value_stays_inert(tmp_path: Path):
    root = fixture_root(tmp_path)
    (root / "newline.run.toml").write_text(
        'schema = "runspec/v1"\nname = "newline"\n[recipe]\ncommand = ["true"]\n'
        '[env]\nprofile = "slurm-cpu"\n[sweep.parameters]\nv = ["a\\ntouch INJECTED #"]\n',
        encoding="utf-8")
    run = plan_of(root, "newline.run.toml").plan.runs[0]
    (root / run.run_dir).mkdir(parents=True)
    (root / run.run_dir / "launch.sh").write_text(run.files["launch.sh"], encoding="utf-8")
    subprocess.run(["bash", f"{run.run_dir}/launch.sh"], cwd=root, env=shell_env(tmp_path),
                   capture_output=True, timeout=60, check=False)
    assert not (root / "INJECTED").exists()
