"""The in-job wrapper and `runspec results`: real energy, metrics, statistics, plots."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, invoke, state_members

from runspec.measure.metrics import read_metrics
from runspec.measure.stats import summarize, t_critical

RESULT_SCHEMA = json.loads((ROOT / "schemas/result.schema.json").read_text())


def wrap(tmp_path: Path, *flags: str, code: str = "pass", env: dict | None = None) -> dict:
    run_dir = tmp_path / "run"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           **(env or {})}
    done = subprocess.run([sys.executable, "-m", "runspec.measure", "--run-dir", str(run_dir),
                           *flags, "--", sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    result = json.loads((run_dir / "result.json").read_text())
    jsonschema.validate(result, RESULT_SCHEMA)
    result["_stderr"] = done.stderr
    result["_returncode"] = done.returncode
    return result


BURN = "import time\nend = time.time() + 2\nwhile time.time() < end: pass\n"


@pytest.mark.slow
def test_real_energy_of_a_cpu_burn_is_labelled_cpu_load_tdp(tmp_path):
    result = wrap(tmp_path, "--energy", "--country", "USA", "--power-interval", "0.5", code=BURN)
    energy = result["energy"]
    assert energy["error"] is None
    assert energy["method"] == {"cpu": "cpu_load_tdp", "gpu": "none", "ram": "estimate"}
    assert energy["energy_kwh"] > 0 and energy["cpu_kwh"] > 0
    assert energy["cpu_tdp_w"] and energy["tracking_mode"] == "machine"
    assert energy["overhead_s"] > 0.5  # the tracker's start-up is reported ...
    assert 1.9 < result["wall_s"] < 3.5  # ... and not part of the run's wall time


def test_a_failing_tracker_gives_null_energy_and_the_error(tmp_path):
    result = wrap(tmp_path, "--energy", "--country", "ZZZ", code="print('ran')")
    assert result["exit_code"] == 0
    assert result["energy"]["energy_kwh"] is None
    assert "no energy mix for country 'ZZZ'" in result["energy"]["error"]


def test_exit_codes_memory_and_provenance(tmp_path):
    result = wrap(tmp_path, code="import sys, time; x = b'x' * 60_000_000; time.sleep(0.6); "
                                 "sys.exit(3)")
    assert result["exit_code"] == 3 and result["_returncode"] == 3
    assert result["peak_rss_mb"] > 50
    assert result["energy"] is None
    provenance = result["provenance"]
    assert provenance["runspec"] and provenance["python"] and provenance["cpu_model"]
    assert provenance["slurm"] is None


def test_a_slurm_restart_is_recorded(tmp_path):
    """A requeued job starts again with SLURM_RESTART_COUNT set: the result says which start."""
    slurm = {"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "1"}
    assert wrap(tmp_path, env=slurm)["provenance"]["slurm"] == slurm


def test_a_second_start_in_the_same_run_directory_keeps_the_first_attempt(tmp_path):
    """A requeued Slurm job (or any second start) finds the last attempt's records: the
    wrapper keeps them, numbered, and its own part of the shared logs is marked."""
    run_dir = tmp_path / "run"
    first = wrap(tmp_path, code="import json, os; open(os.environ['RUNSPEC_METRICS'], 'a')"
                                ".write(json.dumps({'loss': 1.0}) + '\\n'); exit(3)")
    assert first["attempt"] == 1 and first["exit_code"] == 3
    (run_dir / "stdout.log").write_text("first attempt\n")  # as a job's appended log
    second = wrap(tmp_path)
    assert second["attempt"] == 2 and second["exit_code"] == 0
    assert second["metrics"] == {}  # the first attempt's metrics stay with it
    assert json.loads((run_dir / "result.attempt-1.json").read_text())["exit_code"] == 3
    assert "loss" in (run_dir / "metrics.attempt-1.jsonl").read_text()
    started = json.loads((run_dir / "started.json").read_text())
    assert started["attempt"] == 2
    assert started["log_offsets"]["stdout.log"] == len("first attempt\n")


def test_metrics_protocol_ranks_and_malformed_lines(tmp_path):
    code = textwrap.dedent('''\
        import json, os
        import runspec
        runspec.report(loss=1.0, tokens_per_s=10.0)
        runspec.report(loss=0.5, tokens_per_s=20.0)
        os.environ["RANK"] = "1"
        runspec.report(loss=9.0, tokens_per_s=30.0)
        with open(os.environ["RUNSPEC_METRICS"], "a") as f:
            f.write("{broken\\n")
            f.write(json.dumps({"acc": "high"}) + "\\n")
        ''')
    result = wrap(tmp_path, code=code)
    assert result["exit_code"] == 0
    assert result["metrics"] == {"loss": 0.5, "tokens_per_s": 50.0}  # sum of ranks' last values
    assert result["metric_warnings"][0].startswith("metrics.jsonl:4: skipped a malformed line")
    assert result["metric_warnings"][1] == "metrics.jsonl:5: skipped acc='high' (not a finite number)"
    assert "runspec.measure: warning: metrics.jsonl:4" in result["_stderr"]


def test_report_outside_runspec_does_nothing(monkeypatch):
    import runspec

    monkeypatch.delenv("RUNSPEC_METRICS", raising=False)
    runspec.report(loss=1.0)  # no file, no error


def test_statistics_are_exact_on_fixed_samples():
    s = summarize([10.0, 12.0, 14.0])
    assert (s.n, s.mean, s.std, s.min, s.max) == (3, 12.0, 2.0, 10.0, 14.0)
    assert s.cv == pytest.approx(2 / 12)
    half = 4.302653 * 2.0 / math.sqrt(3)
    assert (s.ci95_low, s.ci95_high) == pytest.approx((12 - half, 12 + half))
    assert not s.unreliable
    one = summarize([5.0])
    assert one.std is None and one.ci95_low is None and one.unreliable
    assert t_critical(30) == pytest.approx(2.042272)
    assert t_critical(60) == pytest.approx(2.000298, abs=1e-4)
    assert t_critical(1000) == pytest.approx(1.962339, abs=1e-4)


def test_read_metrics_of_a_missing_file(tmp_path):
    assert read_metrics(tmp_path / "none.jsonl") == ({}, [])


# -- `runspec results` ------------------------------------------------------------------------

RECIPE = textwrap.dedent('''\
    import json, os, sys
    lr, cycle = float(sys.argv[1]), os.environ["RUNSPEC_RUN_KEY"].rsplit("/", 1)[1]
    speed = {"c1": 100.0, "c2": 110.0, "c3": 120.0, "w1": 1.0}[cycle] * lr * 1000
    with open(os.environ["RUNSPEC_METRICS"], "a") as f:
        f.write(json.dumps({"tokens_per_s": speed, "loss": 1 / lr}) + "\\n")
    ''')


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "r.py").write_text(RECIPE)
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "res"
        [recipe]
        command = ["python", "r.py", "${sweep.lr}"]
        [sweep.parameters]
        lr = [0.001, 0.003]
        [campaign]
        cycles = 3
        warmup_runs = 1
        [measure]
        metrics = ["tokens_per_s", "loss"]
        primary = "tokens_per_s"
        '''))
    assert invoke("apply", "--yes", "run.toml", cwd=tmp_path).exit_code == 0
    return tmp_path


def test_results_table_json_csv_md_and_plot(campaign, text_snapshot):
    table = invoke("results", "run.toml", cwd=campaign)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["stage", "lr", "n", "tokens_per_s", "loss"]  # primary first
    assert lines[1].split()[:5] == ["main", "0.003", "3", "330", "±"]  # the best point first
    data = json.loads(invoke("results", "--format", "json", "run.toml", cwd=campaign).stdout)
    speed = next(r for r in data["rows"] if r["lr"] == 0.001 and r["metric"] == "tokens_per_s")
    assert (speed["n"], speed["mean"], speed["min"], speed["max"]) == (3, 110.0, 100.0, 120.0)
    assert speed["std"] == pytest.approx(10.0) and speed["unreliable"] is False
    assert speed["ci95_low"] == pytest.approx(110 - 4.302653 * 10 / math.sqrt(3))
    assert data["missing"] == []
    csv_text = invoke("results", "--format", "csv", "run.toml", cwd=campaign).stdout
    assert csv_text.splitlines()[0].startswith("stage,lr,metric,unit,n,mean,std")
    md = invoke("results", "--format", "md", "run.toml", cwd=campaign).stdout
    assert md.startswith("| stage | lr | n | tokens_per_s | loss |")
    plotted = invoke("results", "--plot", "p.png", "run.toml", cwd=campaign)
    assert plotted.exit_code == 0
    assert (campaign / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grouped = json.loads(invoke("results", "--format", "json", "--group-by", "", "run.toml",
                                cwd=campaign).stdout)
    assert grouped["rows"]


def test_results_strict_about_missing_runs_and_unknown_primary(campaign):
    (campaign / "runs/res/main/lr=0.001/c2/result.json").unlink()
    strict = invoke("results", "run.toml", cwd=campaign)
    assert strict.exit_code == 1
    assert "error: 1 run(s) have no complete result: res/main/lr=0.001/c2 (lost: " in strict.stderr
    lenient = invoke("results", "--no-strict", "run.toml", cwd=campaign)
    assert lenient.exit_code == 0 and "warning: 1 run(s)" in lenient.stderr
    text = (campaign / "run.toml").read_text().replace('primary = "tokens_per_s"',
                                                        'primary = "tokens_per_sec"')
    (campaign / "run.toml").write_text(text.replace('"tokens_per_s", "loss"',
                                                    '"tokens_per_sec", "loss"'))
    unknown = invoke("results", "--no-strict", "run.toml", cwd=campaign)
    assert unknown.exit_code == 1
    assert 'measure.primary "tokens_per_sec" was reported by no run' in unknown.stderr


def test_a_declared_metric_never_reported_warns_at_apply_and_fails_strict_results(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "r.py").write_text("import json, os\nopen(os.environ['RUNSPEC_METRICS'], 'a')"
                                   ".write(json.dumps({'val_mse': 0.5}) + '\\n')\n")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "met"
        [recipe]
        command = ["python", "r.py"]
        [measure]
        metrics = ["val_loss"]
        '''))
    applied = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert applied.exit_code == 0, applied.output  # the run itself succeeded
    assert ("warning: met/main/default/c1 never reported the declared metric val_loss (it reported: "
            "val_mse); `runspec results` counts it as incomplete") in applied.stderr
    assert "Apply complete: 1 launched, 1 succeeded, 1 warning above." in applied.stdout
    strict = invoke("results", "run.toml", cwd=tmp_path)
    assert strict.exit_code == 1
    assert ("error: 1 run(s) have no complete result: met/main/default/c1 (never reported val_loss)"
            in strict.stderr), strict.stderr
    assert "val_mse" in strict.stdout  # what it did report is still shown
    assert invoke("results", "--no-strict", "run.toml", cwd=tmp_path).exit_code == 0


def test_results_of_a_manifest_never_applied(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "nope"\n[recipe]\n'
                                       'command = ["true"]\n')
    result = invoke("results", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert "nope was never applied" in result.stderr


def test_require_clean_refuses_a_dirty_tree_before_launching(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "clean"\n[recipe]\n'
                                       'command = ["true"]\n[measure]\nrequire_clean = true\n')
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=tmp_path, check=True)
    (tmp_path / "run.toml").write_text((tmp_path / "run.toml").read_text() + "# edited\n")
    dirty = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert dirty.exit_code == 1
    assert "measure.require_clean: the git tree has uncommitted changes" in dirty.stderr
    assert not (tmp_path / "runs").exists()
    subprocess.run([*git, "commit", "-qam", "edit"], cwd=tmp_path, check=True)
    clean = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert clean.exit_code == 0, clean.output
    job = (tmp_path / "runs/clean/main/default/c1/job.yaml").read_text()
    assert "provenance:" in job and "dirty: false" in job


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_wandb_offline_is_hermetic_and_logs_the_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is installed by `make test`")
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "keep.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    for variable in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR",
                     "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    before = _tree(home)
    project = tmp_path / "p"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    (project / "r.py").write_text(RECIPE)
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "wb"
        [recipe]
        command = ["python", "r.py", "${sweep.lr}"]
        [sweep.parameters]
        lr = [0.001]
        [measure.wandb]
        project = "runspec-test"
        mode = "offline"
        tags = ["ci"]
        '''))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    run_dir = project / "runs/wb/main/lr=0.001/c1"
    recorded = json.loads((run_dir / "result.json").read_text())
    assert recorded["wandb"]["mode"] == "offline" and recorded["wandb"].get("error") is None
    jsonschema.validate(recorded, RESULT_SCHEMA)
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert _tree(home) == before  # nothing written to $HOME (~/.cache, ~/.local, ~/.config)


def _wandb_records(path: Path):
    """Records of a W&B transaction log (``run-*.wandb``): a 7-byte W&B header, then the
    LevelDB log format (32 KiB blocks of chunks: crc32 4, length 2, type 1 FULL/FIRST/
    MIDDLE/LAST). Read here to check what an offline run would upload on ``wandb sync``."""
    from wandb.proto import wandb_internal_pb2

    raw, position, pending = path.read_bytes(), 7, b""
    while position + 7 <= len(raw):
        room = 32768 - position % 32768
        if room < 7:
            position += room
            continue
        length, kind = int.from_bytes(raw[position + 4:position + 6], "little"), raw[position + 6]
        chunk = raw[position + 7:position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_logs_outputs_as_artifacts_and_the_registry_keeps_online_refs(
        tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is installed by `make test`")
    for variable in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "wbart"
        [recipe]
        command = ["sh", "-c", "mkdir -p $RUNSPEC_OUTPUT_MODEL && echo w > $RUNSPEC_OUTPUT_MODEL/w.bin"]
        [outputs.artifacts.model]
        path = "${run.dir}/ckpt"
        type = "model"
        [measure.wandb]
        project = "runspec-test"
        '''))
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs/wbart/main/default/c1"
    recorded = json.loads((run_dir / "result.json").read_text())
    jsonschema.validate(recorded, RESULT_SCHEMA)
    assert recorded["wandb"]["artifacts"]["model"]["type"] == "model"
    assert "ref" not in recorded["wandb"]["artifacts"]["model"]  # offline: no W&B version
    (log,) = (run_dir / "wandb").glob("offline-run-*/*.wandb")
    artifacts = [r.artifact for r in _wandb_records(log) if r.WhichOneof("record_type") == "artifact"]
    assert [(a.name, a.type, list(a.aliases)) for a in artifacts] == [("model", "model", ["latest"])]
    (entry,) = artifacts[0].manifest.contents
    assert entry.ref == (run_dir / "ckpt/w.bin").resolve().as_uri()  # referenced, not copied
    assert json.loads(artifacts[0].metadata)["runspec_producer"] == "wbart/main/default/c1"

    # Online, the wrapper records the W&B name:version it got; the registry keeps it and the
    # next consumer's plan pins it, so its run can use_artifact it (W&B lineage).
    from runspec.artifacts.publish import register_outputs
    from runspec.artifacts.registry import Registry

    recorded["wandb"]["artifacts"]["model"]["ref"] = "team/runspec-test/model:v7"
    (run_dir / "result.json").write_text(json.dumps(recorded))
    (member,) = state_members(tmp_path, "wbart").values()
    member.registered = False
    registry = Registry(member.registry)
    assert register_outputs(member, tmp_path) == (["model:v2"], None)
    assert registry.get("model", 2).metadata["wandb"] == "team/runspec-test/model:v7"
    assert "wandb" not in registry.get("model", 1).metadata
    (tmp_path / "use.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "use"
        [recipe]
        command = ["true"]
        [artifacts.model]
        uri = "art://model"
        '''))
    plan = invoke("render", "use.toml", "--out", "rendered", cwd=tmp_path)
    assert plan.exit_code == 0, plan.output
    job = next((tmp_path / "rendered").rglob("job.yaml")).read_text()
    assert 'wandb: "team/runspec-test/model:v7"' in job
