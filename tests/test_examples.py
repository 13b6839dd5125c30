"""The examples and specs/ really run: the README's main job (`make demo`), the smoke specs
(tiny GPT with DDP, the Nemotron-style recipe, the quickstart) with the plan exit codes a
CI gate relies on, and the Ray prep → train pipeline with its lineage.

Each works in a scratch copy of the repository (conftest.scratch_copy), so
nothing is written into the checkout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import scratch_copy

BIN = Path(sys.executable).parent


def runspec(*args: str, cwd: Path, tmp_path: Path, timeout: int = 600
            ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "RUNSPEC_ARTIFACTS": str(tmp_path / "artifacts")}
    return subprocess.run([str(BIN / "runspec"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_specs_smoke_runs_and_the_plan_exit_codes(tmp_path):
    repo = scratch_copy(tmp_path / "repo")
    pending = runspec("plan", "specs/", "--detailed-exitcode", cwd=repo, tmp_path=tmp_path)
    assert pending.returncode == 2, pending.stderr  # nothing applied yet: changes
    smoke = sorted(str(p.relative_to(repo)) for p in (repo / "specs").glob("*smoke*.run.toml"))
    assert len(smoke) == 3
    for spec in smoke:
        applied = runspec("apply", spec, "--yes", cwd=repo, tmp_path=tmp_path)
        assert applied.returncode == 0, f"{spec}:\n{applied.stdout}\n{applied.stderr}"
    clean = runspec("plan", *smoke, "--detailed-exitcode", cwd=repo, tmp_path=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    still = runspec("plan", "specs/", "--detailed-exitcode", cwd=repo, tmp_path=tmp_path)
    assert still.returncode == 2  # the benchmark campaign is not applied
    (repo / "specs/smoke.run.toml").write_text(
        (repo / "specs/smoke.run.toml").read_text().replace('"train.steps" = 20', '"train.stepz" = 20'))
    broken = runspec("plan", "specs/", "--detailed-exitcode", cwd=repo, tmp_path=tmp_path)
    assert broken.returncode == 1
    assert 'recipe.overrides."train.stepz": "train.stepz" is not a key of' in broken.stderr

    # tiny GPT: 2 DDP ranks reported, the loss fell, the checkpoint was written and registered
    tiny = repo / "specs/runs/tiny-gpt-smoke/main/default/c1"
    result = json.loads((tiny / "result.json").read_text())
    assert result["exit_code"] == 0
    ranks = {json.loads(line).get("rank") for line in (tiny / "metrics.jsonl").read_text().splitlines()}
    assert ranks == {0, 1}
    assert result["metrics"]["loss"] < 3.9  # uniform over 64 characters: ln 64 = 4.16
    assert result["metrics"]["tokens_per_s"] > 0
    assert (tiny / "checkpoint/model.pt").stat().st_size > 10_000

    # Nemotron-style: PEP 723 launch (torchrun), the -c tiny config, the dotlist passed through
    nemotron = repo / "specs/runs/nemotron-style-smoke/main/default/c1"
    job = (nemotron / "job.yaml").read_text()
    assert "torchrun" in job and "train.train_iters=50" in job
    assert "iter 50/50" in (nemotron / "stdout.log").read_text()
    assert json.loads((nemotron / "result.json").read_text())["metrics"]["loss"] < 0.5


def test_tiny_gpt_loads_and_saves_through_the_artifacts_api(tmp_path):
    """The main example's recipe loads its data from the registry (art://, named only in its
    config) and saves its checkpoint with typed metadata: the version registered when the
    run succeeds carries it, and its lineage names the data version the code loaded."""
    repo = scratch_copy(tmp_path / "repo")
    example = repo / "examples/tiny_gpt"
    published = runspec("artifacts", "publish", "hamlet", "data/hamlet.txt", "--type", "dataset",
                        cwd=example, tmp_path=tmp_path)
    assert published.returncode == 0, published.stderr
    (example / "api.run.toml").write_text(
        'schema = "runspec/v1"\nname = "tiny-gpt-api"\n[recipe]\nscript = "train.py"\n'
        'config = "config/tiny.yaml"\n[recipe.overrides]\n"train.steps" = 20\n'
        '"checkpoint.dir" = "${run.dir}/checkpoint"\n"data.path" = "art://hamlet:latest"\n'
        '[resources]\nprocs_per_node = 2\n[env]\nprofile = "local"\n'
        '[outputs.artifacts.tiny-gpt-model]\npath = "${run.dir}/checkpoint"\ntype = "model"\n')
    applied = runspec("apply", "api.run.toml", "--yes", cwd=example, tmp_path=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "registered tiny-gpt-model:v1 from tiny-gpt-api/main/default/c1" in applied.stderr
    shown = runspec("artifacts", "show", "tiny-gpt-model:v1", cwd=example, tmp_path=tmp_path)
    version = json.loads(shown.stdout[shown.stdout.index("{"):])
    fields = version["fields"]
    assert (fields["step"], fields["vocab_size"]) == (20, 64) and fields["parameters"] > 10_000
    result = json.loads((example / "runs/tiny-gpt-api/main/default/c1/result.json").read_text())
    assert fields["loss"] == result["metrics"]["loss"]
    assert version["inputs"] == {"hamlet": "hamlet:v1"}
    tree = runspec("artifacts", "lineage", "tiny-gpt-model", cwd=example, tmp_path=tmp_path)
    assert tree.stdout == ("tiny-gpt-model:v1  [model] produced by tiny-gpt-api/main/default/c1\n"
                           "└── hamlet:v1  [dataset] produced by hand\n")


@pytest.mark.ray
@pytest.mark.slow
def test_ray_prep_then_train_pipeline_and_its_lineage(tmp_path, ray_head):
    repo = scratch_copy(tmp_path / "repo")
    example = repo / "examples/ray_dataprep"
    env_toml = example / "env.toml"
    env_toml.write_text(env_toml.read_text().replace(
        'executor = "ray"', f'executor = "ray"\naddress = "{ray_head["RUNSPEC_RAY_ADDRESS"]}"', 1))
    applied = runspec("apply", "run.toml", "--yes", cwd=example, tmp_path=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "registered hamlet-chars:v1 from prep-train/prep/default/c1" in applied.stderr
    meta = json.loads((example / "runs/prep-train/prep/default/c1/dataset/meta.json").read_text())
    assert len(meta["shards"]["train"]) == 4 and meta["vocab_size"] == len(meta["vocab"])
    tree = runspec("artifacts", "lineage", "prep-train-model", cwd=example, tmp_path=tmp_path)
    assert re.fullmatch(  # the text prep read is a plain file: its path and digest
        r"prep-train-model:v1  \[model\] produced by prep-train/train/default/c1\n"
        r"└── hamlet-chars:v1  \[dataset\] produced by prep-train/prep/default/c1\n"
        r"    └── \S+/examples/tiny_gpt/data/hamlet\.txt  \[path\] sha256:[0-9a-f]{16}\n",
        tree.stdout), tree.stdout
    trained = json.loads((example / "runs/prep-train/train/default/c1/result.json").read_text())
    assert trained["metrics"]["loss"] < 3.9


@pytest.mark.slow
def test_make_demo_runs_the_main_job(tmp_path):
    """The README's first command on this machine's setup (the venv is already built)."""
    repo = scratch_copy(tmp_path / "repo")
    # as a user types it, not as a sub-make of `make test` (which prints make[1]: lines)
    env = {**{k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL",
                                                              "MFLAGS")},
           "RUNSPEC_ARTIFACTS": str(tmp_path / "artifacts")}
    done = subprocess.run(["make", "demo"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "did you mean" in out  # the typo demonstration
    assert "Apply complete: 12 launched, 12 succeeded." in out
    assert "No changes." in out
    lines = done.stdout.splitlines()
    header = next(line.split() for line in lines if line.startswith("stage ") and " loss " in line)
    rows = [line.split() for line in lines if line.startswith("main ")]
    n, loss = header.index("n"), header.index("loss")  # loss: mean ± half-width of its CI
    assert len(rows) == 4 and all(row[n] == "3" and row[loss + 1] == "±" for row in rows), rows
    assert "energy_kwh measured by codecarbon with cpu=" in done.stdout
    assert (repo / "examples/tiny_gpt/runs/tiny-gpt.png").read_bytes()[:4] == b"\x89PNG"
    assert "tiny-gpt-model:v12  [model] produced by tiny-gpt/main/" in done.stdout
    # only runspec's output, on two screens, ending with where the results are
    assert "WARNING" not in out and ".venv/bin/runspec" not in out
    assert len(out.splitlines()) <= 120, out
    assert done.stdout.rstrip().splitlines()[-1].startswith("Done: results above; plot in ")
