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

import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, JsonTextSnapshotExtension, chdir, invoke
from ruamel.yaml import YAML

from runspec import run_table
from runspec.ir import LaunchContext
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
EXPORT = "--export=PATH,LD_LIBRARY_PATH,PYTHONPATH,VIRTUAL_ENV,HOME,USER,LOGNAME,LANG,LC_ALL"
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
    """``text`` with the temporary root written as ``<root>``, and the digest of runspec's
    own source (shipped to a login node) as ``<digest>``: it changes with every edit."""
    for form in sorted({str(root.resolve()), str(root)}, key=len, reverse=True):
        text = text.replace(form, "<root>")
    return re.sub(r"runspec-[0-9a-f]{16}\b", "runspec-<digest>", text)


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
    by_key = result.plan.by_key()
    for launch in result.launches:
        for name, text in launch.files.items():
            files[f"{launch.directory}/{name}"] = text
        if launch.table:  # what each array task writes its run directory from
            files[launch.table] = run_table.encode(
                (by_key[k].run_dir, by_key[k].files) for k in launch.keys).decode()
    return files


def tree_text(files: dict[str, str], root: Path) -> str:
    """All files in one readable text: a ``==> path <==`` header before each (like tail)."""
    parts = [f"# {len(files)} rendered files\n"]
    for path in sorted(files):
        parts.append(f"\n==> {path} <==\n{table_text(files[path]) if path.endswith('.table') else files[path]}")
    return portable("".join(parts), root)


def table_text(text: str) -> str:
    """A run table as its tasks' directories and files (the files themselves are shown
    at their run directories; the byte offsets depend on the temporary root's length)."""
    lines = text.splitlines()
    assert lines[0] == "runspec-run-table 1"
    assert len(json.loads(lines[1])["index"]) == len(lines) - 2
    entries = [json.loads(line) for line in lines[2:]]
    return "".join(f"task {index}: {entry['dir']}: {', '.join(entry['files'])}\n"
                   for index, entry in enumerate(entries))


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
    assert launch.request["argv"] == ["sbatch", "--parsable", EXPORT,
                                      f"{launch.directory}/job.sbatch"]
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
    # cpus_per_task is per Slurm task, as given (Nemotron's and itwinai's meaning): the one
    # torchrun launcher per node gets 12, not 8 × 12.
    assert "--cpus-per-task=12" in found
    assert "srun --export=ALL --ntasks-per-node=1 --cpus-per-task=12 bash" in script
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
        "srun", "--export=ALL", "--cpus-per-task=4",
        "--container-image=nvcr.io/nvidia/pytorch:25.01-py3",
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
    assert prep.request["argv"] == ["sbatch", "--parsable", EXPORT, f"{prep.directory}/job.sbatch"]
    assert train.request["argv"] == ["sbatch", "--parsable", EXPORT,
                                     "--dependency=afterok:{job:prep}",
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
    result = plan_of(root, "slurm-secrets.run.toml")
    run, (launch,) = result.plan.runs[0], result.launches
    # The job reads its run's secrets file (written at submission), never the launching
    # environment: sbatch does not pass the source variables on.
    launch_sh = run.files["launch.sh"]
    assert ': "${WANDB_API_KEY:?secret WANDB_API_KEY was not delivered to the job}"' in launch_sh
    assert ': "${HF_TOKEN:?' in launch_sh and "RUNSPEC_TEST_HF_TOKEN" not in launch_sh
    assert 'SECRETS_FILE="$RUN_DIR/secrets.env"' in launch.files["job.sbatch"]
    assert launch.request["secret_files"] == [f"{run.run_dir}/secrets.env"]
    assert launch.request["secrets"] == {"WANDB_API_KEY": {"from_env": "WANDB_API_KEY"},
                                         "HF_TOKEN": {"from_env": "RUNSPEC_TEST_HF_TOKEN"}}


def test_slurm_launch_ray_starts_a_ray_cluster_in_the_job(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-ray.run.toml")
    (launch,), run = result.launches, result.plan.runs[0]
    script = launch.files["job.sbatch"]
    found = directives(script.splitlines())
    # One task per node: the Ray head or a worker, with the task's CPUs and the node's GPUs.
    assert {"--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=16", "--gpus-per-node=2"} <= \
        set(found)
    lines = script.splitlines()
    head = next(i for i, line in enumerate(lines) if "ray-head" in line and "srun" in line)
    assert lines[head].startswith(
        'srun --export=ALL --cpus-per-task=16 --gpus-per-node=2 --nodes=1 --ntasks=1 '
        '-w "$ray_head" bash -c')
    assert '--head --node-ip-address="$ray_ip" --port="$ray_port"' in lines[head + 1]
    assert any('--exclude="$ray_head"' in line for line in lines)
    assert "--num-gpus=2" in script and 'export RAY_ADDRESS="$ray_ip:$ray_port"' in script
    assert "trap 'stop_ray' EXIT" in script
    # The run starts once, on the head node, beside (--overlap) the Ray head's step.
    assert lines[-1] == ('srun --overlap --nodes=1 --ntasks=1 -w "$ray_head" --export=ALL '
                         '--cpus-per-task=16 bash "$RUN_DIR/launch.sh"')
    assert run.files["launch.sh"].splitlines()[-1] == (
        f"exec python -m runspec.measure --run-dir {run.run_dir} -- python prep.py")
    # Ray's socket paths (<temp dir>/session_<date>_<time>_<us>_<pid>/sockets/plasma_store)
    # must stay under 108 bytes, with a 10-digit job id and a 7-digit pid.
    temp_dir = script.split('export RAY_TMP="', 1)[1].split('"', 1)[0]
    socket = temp_dir.replace("$SLURM_JOB_ID", "9" * 10) + \
        "/session_2026-01-01_00-00-00_000000_9999999/sockets/plasma_store"
    assert len(socket) < 108


def test_slurm_launch_ray_in_a_container_starts_ray_in_it(tmp_path: Path):
    """Ray's head, its workers and the entrypoint all start in the run's container (as
    Nemotron's Ray template does), so the entrypoint finds the Ray it joins there."""
    root = fixture_root(tmp_path)
    (root / "ray-container.run.toml").write_text(
        'schema = "runspec/v1"\nname = "ray-container"\n[recipe]\nscript = "prep.py"\n'
        'launch = "ray"\n[env]\nprofile = "slurm-container"\n', encoding="utf-8")
    (launch,) = plan_of(root, "ray-container.run.toml").launches
    (script,) = launch.files.values()
    sruns = [line for line in script.splitlines() if line.lstrip().startswith("srun ")]
    head, workers, step = (next(line for line in sruns if marker in line) for marker in
                           ("ray-head", "--exclude=", "launch.sh"))
    for line in (head, workers, step):
        assert "--container-image=" in line and "--container-mounts=" in line, line
    ip_probe = next(line for line in script.splitlines() if "hostname --ip-address" in line)
    assert "--container-image" not in ip_probe


def test_slurm_launch_ray_with_several_processes_per_node_is_refused(tmp_path: Path):
    root = fixture_root(tmp_path)
    (root / "ray-procs.run.toml").write_text(
        'schema = "runspec/v1"\nname = "ray-procs"\n[recipe]\nscript = "prep.py"\n'
        'launch = "ray"\n[resources]\nprocs_per_node = 4\n[env]\nprofile = "slurm-cpu"\n',
        encoding="utf-8")
    result = invoke("validate", "ray-procs.run.toml", cwd=root)
    assert result.exit_code == 1
    assert ('ray-procs.run.toml:7:18: error: resources.procs_per_node: launch = "ray" on slurm '
            "starts one process per node, not 4") in result.output


def test_a_resources_sweep_gives_each_run_its_resources_and_each_shape_an_array(tmp_path: Path):
    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-resources.run.toml")
    runs = result.plan.runs
    assert [result.plan.specs[r.key].resources["nodes"] for r in runs] == [1, 1, 2, 2, 4, 4, 8, 8]
    assert [load_yaml(r.files["job.yaml"])["resources"]["nodes"] for r in runs] == \
        [1, 1, 2, 2, 4, 4, 8, 8]
    assert [r.request["resources"]["nodes"] for r in runs] == [1, 1, 2, 2, 4, 4, 8, 8]
    assert all("resources" not in load_yaml(r.files["config.yaml"]) for r in runs)
    launches = result.launches
    assert [launch.keys for launch in launches] == [[r.key for r in runs[i:i + 2]]
                                                   for i in range(0, 8, 2)]
    for number, (launch, nodes) in enumerate(zip(launches, [1, 2, 4, 8], strict=True), 1):
        assert set(launch.files) == {f"job-{number}.sbatch"}
        found = directives(launch.files[f"job-{number}.sbatch"].splitlines())
        assert f"--nodes={nodes}" in found and "--array=0-1" in found
        assert f"--job-name=slurm-resources-main-{number}" in found
        # Nothing asks for order or a limit: the arrays run side by side.
        assert not any(a.startswith("--dependency") for a in launch.request["argv"])


def test_an_ordered_campaign_chains_one_array_per_stretch_of_one_shape(tmp_path: Path):
    from runspec.plan.launches import gaps_before

    root = fixture_root(tmp_path)
    result = plan_of(root, "slurm-campaign.run.toml")
    runs, launches = result.plan.runs, result.launches
    assert [k for launch in launches for k in launch.keys] == [r.key for r in runs]  # plan order
    assert [len(launch.keys) for launch in launches] == [2, 2, 2, 2]
    gaps = gaps_before(runs, result.resolved.stages[0].campaign)
    assert gaps == [0, 30, 30, 30, 120, 30, 30, 30]
    for index, launch in enumerate(launches):
        script = launch.files[f"job-{index + 1}.sbatch"]
        assert "#SBATCH --array=0-1%1" in script
        assert f"GAPS=({' '.join(f'{g:g}' for g in gaps[2 * index:2 * index + 2])})" in script
        assert '[ "$attempt" -le 2 ] || break' in script
        dependency = [a for a in launch.request["argv"] if a.startswith("--dependency=")]
        previous = launches[index - 1].request["script"]
        assert dependency == ([f"--dependency=afterany:{{launch:{previous}}}"] if index else [])


def test_submit_fills_in_the_job_ids_of_the_stages_and_the_array_before():
    from runspec.backends.base import BackendError
    from runspec.backends.slurm import SlurmBackend

    backend = SlurmBackend()
    backend.submitted["runs/x/main/job-1.sbatch"] = "14"
    arg = "--dependency=afterok:{job:prep}:{job:gone},afterany:{launch:runs/x/main/job-1.sbatch}"
    assert backend._dependency(arg, {"prep": "12:13"}) == "--dependency=afterok:12:13,afterany:14"
    assert backend._dependency("--dependency=afterok:{job:gone}", {}) is None
    with pytest.raises(BackendError, match="this apply did not submit"):
        SlurmBackend()._dependency(arg, {"prep": "12"})


@pytest.mark.parametrize(("sweep", "message"), [
    ('"resources.nodes" = [1, 0]', "resources.nodes: Input should be greater than or equal to 1"),
    ('"resources.gpus" = [1]', "resources.gpus: Extra inputs are not permitted"),
    ('"resources.time" = ["soon"]', "resources.time: String should match pattern"),
])
def test_a_resources_sweep_value_is_checked_like_the_resources_table(sweep, message,
                                                                      tmp_path: Path):
    root = fixture_root(tmp_path)
    (root / "bad.run.toml").write_text(
        'schema = "runspec/v1"\nname = "bad"\n[recipe]\ncommand = ["true"]\n[env]\n'
        f'profile = "slurm-cpu"\n[sweep.parameters]\n{sweep}\n', encoding="utf-8")
    result = invoke("plan", "bad.run.toml", cwd=root)
    assert result.exit_code == 1
    assert f'sweep.parameters."{sweep.split(chr(34))[1]}": {message}' in result.output


def test_a_site_template_that_leaves_out_what_the_stage_needs_is_refused(tmp_path: Path):
    root = fixture_root(tmp_path)
    (root / "paced.run.toml").write_text(
        'schema = "runspec/v1"\nname = "paced"\n[recipe]\ncommand = ["true"]\n[env]\n'
        'profile = "slurm-custom"\n[sweep.parameters]\nv = [1, 2]\n[campaign]\n'
        'config_gap = 5\nretries = 1\n', encoding="utf-8")
    result = invoke("plan", "paced.run.toml", cwd=root)
    assert result.exit_code == 1
    assert "the template templates/custom.sbatch.j2 leaves out {{ pace }}, {{ run }}" in \
        result.output


# -- 4. Ray --------------------------------------------------------------------------------


def test_ray_job_submission(tmp_path: Path):
    root = fixture_root(tmp_path)
    run = plan_of(root, "ray.run.toml").plan.runs[0]
    request = json.loads(run.files["ray.json"])
    body = request["body"]
    # The secret is read from (and removed with) the run's secrets file, written at
    # submission: Ray keeps a job's runtime_env and shows it to anyone at the dashboard.
    secrets_file = f"{root.resolve()}/{run.run_dir}/secrets.env"
    assert body["entrypoint"] == (
        f"cd {root.resolve()} && . {secrets_file} && rm -f {secrets_file} && "
        f"exec python -m runspec.measure --run-dir {run.run_dir} -- "
        f"python train.py --config {run.run_dir}/config.yaml "
        "--note 'it'\"'\"'s here'")
    assert request["secret_file"] == f"{run.run_dir}/secrets.env"
    assert request["secrets"] == {"WANDB_API_KEY": {"from_env": "WANDB_API_KEY"}}
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


@pytest.mark.parametrize("extra, table", [
    ("", True),
    ('container_image = "nvcr.io/nvidia/pytorch:25.01-py3"\n', False),
    ('startup_commands = ["module load python/3.11"]\n', False),
])
def test_a_run_table_only_where_the_batch_step_has_runspec_s_python(tmp_path: Path, extra,
                                                                     table):
    """With a container or startup_commands, the batch step may have no Python with runspec
    before the run's own set-up: apply writes those run directories itself."""
    root = fixture_root(tmp_path)
    (root / "t.run.toml").write_text(
        'schema = "runspec/v1"\nname = "t"\n[recipe]\ncommand = ["true", "${sweep.i}"]\n'
        '[env]\nexecutor = "slurm"\n' + extra + '[sweep.parameters]\ni = [1, 2]\n',
        encoding="utf-8")
    (launch,) = plan_of(root, "t.run.toml").launches
    script = launch.files["job.sbatch"]
    assert (launch.table is not None) is table
    assert ("python -m runspec.run_table" in script) is table
    if table:
        assert f"python -m runspec.run_table {launch.table} \"$SLURM_ARRAY_TASK_ID\" || " \
            "exit 1" in script


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


# -- 7. hostile names are refused, hostile values stay inert --------------------------------

PAYLOAD = "a\n$(touch PWNED) `touch PWNED`; touch PWNED 'q' \"dq\""
HOSTILE = '''\
schema = "runspec/v1"
name = "hostile"
[recipe]
command = ["python", "-c", "import os, sys; print(sys.argv[1]); print(os.environ['PAYLOAD'])",
           "$(touch PWNED)"]
[env]
profile = "slurm-cpu"
partition = "cpu;touch PWNED"
account = "$(touch PWNED)"
qos = "`touch PWNED`"
constraint = "a&b|c' \\"x\\" $(touch PWNED)"
extra_directives = { reservation = "ml; touch PWNED", mail-user = "a@b $(touch PWNED)", requeue = true, nice = 5, hold = false }
[env.vars]
PAYLOAD = """a
$(touch PWNED) `touch PWNED`; touch PWNED 'q' "dq\""""
'''


def hostile_root(tmp_path: Path) -> Path:
    root = fixture_root(tmp_path)
    (root / "hostile.run.toml").write_text(HOSTILE, encoding="utf-8")
    return root


def test_hostile_values_render_quoted(tmp_path: Path, text_snapshot):
    root = hostile_root(tmp_path)
    result = plan_of(root, "hostile.run.toml")
    (launch,), run = result.launches, result.plan.runs[0]
    script = launch.files["job.sbatch"]
    assert portable(f"{script}\n==> launch.sh <==\n{run.files['launch.sh']}", root) == text_snapshot
    found = directives(script.splitlines())
    assert "--partition='cpu;touch PWNED'" in found and "--account='$(touch PWNED)'" in found
    assert "--requeue" in found and "--nice=5" in found
    assert not any(d.startswith("--hold") for d in found)  # false leaves a flag out
    # Each directive is one line: a value can never start a line of its own.
    assert all(line.startswith(("#", "set ", "RUN_DIR=", "python -m runspec.run_table ",
                                "mkdir ", "echo ", "exec ", "srun "))
               or not line for line in script.splitlines())
    assert f"export PAYLOAD={shlex.quote(PAYLOAD)}\n" in run.files["launch.sh"]


def test_hostile_values_stay_inert_when_the_job_script_runs(tmp_path: Path):
    root = hostile_root(tmp_path)
    assert invoke("render", "hostile.run.toml", "--out", ".", cwd=root).exit_code == 0
    result = plan_of(root, "hostile.run.toml")
    (launch,), run = result.launches, result.plan.runs[0]
    completed = subprocess.run(["bash", str(root / launch.directory / "job.sbatch")], cwd=root,
                               env=stand_in_srun(tmp_path), capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    out = (root / run.run_dir / "stdout.log").read_text(encoding="utf-8")
    assert out == f"$(touch PWNED)\n{PAYLOAD}\n"
    assert not list(root.rglob("PWNED*"))


def stand_in_srun(tmp_path: Path) -> dict[str, str]:
    """shell_env with an ``srun`` that drops its flags and runs the command (like a
    one-task step on this machine)."""
    env = shell_env(tmp_path)
    srun = tmp_path / ".bin" / "srun"
    srun.write_text('#!/usr/bin/env bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    srun.chmod(0o755)
    return {**env, "SLURM_JOB_ID": "42"}


def a_spec(root: Path, manifest: str = "slurm-single.run.toml", **changes):
    """The first run's spec of ``manifest``, changed as the Python API allows (no validate)."""
    result = plan_of(root, manifest)
    run = result.plan.runs[0]
    return result, run, dataclasses.replace(result.plan.specs[run.key], **changes)


@pytest.mark.parametrize("changes", [
    {"env": {"A=1 $(touch X) B": "x"}},
    {"env": {"OK\n": "x"}},
    {"env": {"": "x"}},
    {"secrets": {"S;touch X;Y": "HOME"}},
    {"secrets": {"TOKEN": "HOME;touch X"}},
], ids=["env-injection", "env-newline", "env-empty", "secret-name", "secret-source"])
def test_a_name_that_is_no_shell_name_never_reaches_a_script(changes, tmp_path: Path):
    from runspec.backends.base import RenderError, run_script
    from runspec.backends.nemo_run import NemoRunBackend
    from runspec.backends.slurm import SlurmBackend

    root = fixture_root(tmp_path)
    _, _, spec = a_spec(root, **changes)
    for render in (run_script, lambda s: SlurmBackend().render_run(s, root, "0" * 64),
                   lambda s: NemoRunBackend().render_run(s, root, "0" * 64)):
        with pytest.raises(RenderError, match="not a valid shell variable name"):
            render(spec)


@pytest.mark.parametrize(("settings", "message"), [
    ({"extra_directives": {"comment=x\ntouch X\n": True}}, "not an sbatch option name"),
    ({"extra_directives": {"--mail-type": "END"}}, "not an sbatch option name"),
    ({"extra_directives": {"output": "/tmp/elsewhere"}}, "runspec writes --output itself"),
    ({"extra_directives": {"job-name": "mine"}}, "runspec writes --job-name itself"),
    ({"extra_directives": {"reservation": "ml\ntouch X"}}, "control character"),
    ({"partition": "cpu\ntouch X"}, "#SBATCH --partition contains a control character"),
    ({"account": "ml\r"}, "#SBATCH --account contains a control character"),
], ids=["name-newline", "name-dashes", "output", "job-name", "value-newline", "partition",
        "account"])
def test_the_slurm_render_refuses_what_is_not_one_directive_line(settings, message,
                                                                  tmp_path: Path):
    from runspec.backends.base import RenderError
    from runspec.backends.slurm import SlurmBackend

    root = fixture_root(tmp_path)
    result, run, spec = a_spec(root)
    spec = dataclasses.replace(spec, settings={**spec.settings, **settings})
    context = LaunchContext(manifest="slurm-single", stage="main", root=root,
                            directory="runs/slurm-single/main")
    with pytest.raises(RenderError, match=re.escape(message)):
        SlurmBackend().render_launch(context, [run], {run.key: spec})
    with pytest.raises(ValueError):  # a RenderError is a ValueError too
        SlurmBackend().render_launch(context, [run], {run.key: spec})


def test_a_newline_in_a_resource_value_is_refused_by_the_render(tmp_path: Path):
    from runspec.backends.base import RenderError
    from runspec.backends.slurm import SlurmBackend

    root = fixture_root(tmp_path)
    result, run, spec = a_spec(root)
    spec = dataclasses.replace(spec, resources={**spec.resources, "time": "120\n"})
    context = LaunchContext(manifest="slurm-single", stage="main", root=root,
                            directory="runs/slurm-single/main")
    with pytest.raises(RenderError, match="#SBATCH --time"):
        SlurmBackend().render_launch(context, [run], {run.key: spec})


# -- 8. secrets on Slurm: a 0600 file per run, written at submission, removed by the job -----

SECRET_JOB = '''\
schema = "runspec/v1"
name = "secret-job"
[recipe]
command = ["python", "-c", "import hashlib, os, sys, time; print(hashlib.sha256(os.environ['TOKEN'].encode()).hexdigest(), flush=True); open(sys.argv[1], 'w').close(); time.sleep(float(sys.argv[2]))", "${run.dir}/started", "${sweep.pause}"]
[env]
profile = "slurm-cpu"
[env.secrets]
TOKEN = { from_env = "RUNSPEC_TEST_CANARY" }
[sweep.parameters]
pause = [0, 60]
'''
CANARY = "canary-$(touch PWNED) 'q' \"dq\"\nline two"


def secret_job(tmp_path: Path, monkeypatch) -> tuple[Path, PlanResult]:
    root = fixture_root(tmp_path)
    (root / "secret-job.run.toml").write_text(SECRET_JOB, encoding="utf-8")
    assert invoke("render", "secret-job.run.toml", "--out", ".", cwd=root).exit_code == 0
    monkeypatch.setenv("RUNSPEC_TEST_CANARY", CANARY)
    return root, plan_of(root, "secret-job.run.toml")


def test_the_secrets_file_is_written_0600_at_submission_and_holds_quoted_values(
        tmp_path: Path, monkeypatch):
    from runspec.backends.slurm import SlurmBackend

    root, result = secret_job(tmp_path, monkeypatch)
    (launch,) = result.launches
    assert not list(root.rglob("secrets.env"))  # rendering writes none
    written = SlurmBackend.write_secret_files(launch, root)
    assert written == [root / run.run_dir / "secrets.env" for run in result.plan.runs]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text(encoding="utf-8") == f"export TOKEN={shlex.quote(CANARY)}\n"
    assert sorted(p.name for p in written[0].parent.iterdir() if p.name.startswith(".")) == []
    assert "--export=PATH," in launch.request["argv"][2]
    assert "RUNSPEC_TEST_CANARY" not in launch.request["argv"][2]


def test_the_job_reads_its_secrets_file_and_removes_it_when_it_ends(tmp_path: Path,
                                                                     monkeypatch):
    from runspec.backends.slurm import SlurmBackend

    root, result = secret_job(tmp_path, monkeypatch)
    (launch,), run = result.launches, result.plan.runs[0]
    SlurmBackend.write_secret_files(launch, root)
    env = stand_in_srun(tmp_path)  # without RUNSPEC_TEST_CANARY: only the file has it
    completed = subprocess.run(["bash", str(root / launch.directory / "job.sbatch")], cwd=root,
                               env={**env, "SLURM_ARRAY_TASK_ID": "0"}, capture_output=True,
                               text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    expected = hashlib.sha256(CANARY.encode()).hexdigest()
    assert (root / run.run_dir / "stdout.log").read_text(encoding="utf-8") == expected + "\n"
    assert not (root / run.run_dir / "secrets.env").exists()
    assert not list(root.rglob("PWNED*"))
    other = root / result.plan.runs[1].run_dir / "secrets.env"  # the task that did not run
    for path in root.rglob("*"):
        if path.is_file() and path != other:
            assert b"canary-" not in path.read_bytes(), path
    again = subprocess.run(["bash", str(root / launch.directory / "job.sbatch")], cwd=root,
                           env={**env, "SLURM_ARRAY_TASK_ID": "0"}, capture_output=True,
                           text=True, timeout=60, check=False)
    assert again.returncode == 1
    assert "secrets.env is missing" in (root / run.run_dir / "stderr.log").read_text()


def test_a_job_ended_by_a_signal_keeps_its_secrets_for_a_requeued_start(tmp_path: Path,
                                                                       monkeypatch):
    from runspec.backends.slurm import SlurmBackend

    root, result = secret_job(tmp_path, monkeypatch)
    (launch,), run = result.launches, result.plan.runs[1]  # pause = 60
    SlurmBackend.write_secret_files(launch, root)
    job = subprocess.Popen(["bash", str(root / launch.directory / "job.sbatch")], cwd=root,
                           env={**stand_in_srun(tmp_path), "SLURM_ARRAY_TASK_ID": "1"},
                           start_new_session=True)
    deadline = time.monotonic() + 30
    while not (root / run.run_dir / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGTERM)  # what Slurm sends a preempted (requeued) job
    assert job.wait(timeout=30) == 143
    assert (root / run.run_dir / "secrets.env").exists()


# -- 9. plan masks secret-looking variables it prints ----------------------------------------

LEAKY = '''\
schema = "runspec/v1"
name = "leaky"
[recipe]
command = ["true"]
[env]
profile = "{profile}"
[env.vars]
HF_TOKEN = "{token}"
'''


@pytest.mark.parametrize("profile", ["slurm-cpu", "local", "ray"])
def test_plan_masks_secret_looking_variables(profile: str, tmp_path: Path):
    from runspec.plan.diff import request_diff

    root = fixture_root(tmp_path)
    (root / "leaky.run.toml").write_text(LEAKY.format(profile=profile, token="hf_OLDVALUE123"))
    old = plan_of(root, "leaky.run.toml")
    (root / "leaky.run.toml").write_text(LEAKY.format(profile=profile, token="hf_NEWVALUE456"))
    new = plan_of(root, "leaky.run.toml")
    printed = [invoke("plan", "leaky.run.toml", cwd=root).output,
               invoke("plan", "--json", "leaky.run.toml", cwd=root).output,
               "\n".join(request_diff(old.plan.runs[0].request, new.plan.runs[0].request))]
    assert all("hf_NEWVALUE456" not in text and "hf_OLDVALUE123" not in text for text in printed)
    assert '"HF_TOKEN": "***"' in printed[1]
    assert '"RUNSPEC_RUN_KEY": "leaky/main/default/c1"' in printed[1]  # runspec's own, not a secret
    # What is submitted keeps the value: the mask is for what plan prints.
    assert any("hf_NEWVALUE456" in text for text in rendered(new).values())
