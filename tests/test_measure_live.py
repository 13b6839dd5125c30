"""The wrapper while a run runs: W&B history streamed from ``$RUNSPEC_METRICS`` as lines
arrive (read back from W&B's own offline run file), peak memory against ``/usr/bin/time``,
and env.toml's ``[wandb]`` defaults reaching the rendered run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import invoke
from test_measure import _wandb_records

WRAPPER = [sys.executable, "-m", "runspec.measure"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
            "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def _logged(run_dir: Path) -> tuple[list[dict], dict]:
    """(history rows, summary) of the W&B offline run under ``run_dir``, as far as W&B has
    written its run file; ([], {}) before it exists or while a record is half written."""
    files = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    if not files:
        return [], {}
    history, summary = [], {}
    try:
        for record in _wandb_records(files[0]):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                history.append(_items(record.history.item))
            elif kind == "summary":
                summary.update(_items(record.summary.update))
    except Exception:  # the last record is still being written
        pass
    return history, summary


LIVE_RECIPE = textwrap.dedent('''\
    import json, os, sys, time
    from pathlib import Path
    go = Path(sys.argv[1])
    with open(os.environ["RUNSPEC_METRICS"], "a") as metrics:
        metrics.write(json.dumps({"step": 1, "live_loss": 0.8125}) + "\\n")
        metrics.write('{"step": 2, "half_writ')  # a line still being written
        metrics.flush()
        deadline = time.time() + 60
        while not go.exists() and time.time() < deadline:  # the test says when to go on
            time.sleep(0.1)
        metrics.write('ten": 0.5, "live_loss": 0.25}\\n')
        metrics.write("this is not json\\n")
    ''')


def test_metrics_reach_wandb_while_the_recipe_runs_and_the_summary_after(tmp_path):
    (tmp_path / "recipe.py").write_text(LIVE_RECIPE)
    run_dir, go = tmp_path / "run", tmp_path / "go"
    settings = json.dumps({"project": "live-test", "mode": "offline", "tags": ["ci"]})
    wrapper = subprocess.Popen([*WRAPPER, "--run-dir", str(run_dir), "--wandb", settings, "--",
                                sys.executable, "recipe.py", str(go)], cwd=tmp_path,
                               env=_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline, history = time.monotonic() + 60, []
        while time.monotonic() < deadline and not any("live_loss" in r for r in history):
            time.sleep(0.2)
            history, _ = _logged(run_dir)
        # Seen while the recipe still waits for the go: streamed, not logged at the end.
        assert wrapper.poll() is None and not (run_dir / "result.json").exists()
        assert [(r["step"], r["live_loss"]) for r in history if "live_loss" in r] == [(1, 0.8125)]
        assert not any("half_written" in r for r in history)  # no half line parsed
    finally:
        go.touch()
    _, stderr = wrapper.communicate(timeout=120)
    assert wrapper.returncode == 0, stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["wandb"]["project"] == "live-test" and "error" not in result["wandb"]
    assert result["metric_warnings"] == [
        "metrics.jsonl:3: skipped a malformed line (Expecting value: line 1 column 1 (char 0))"]
    assert "skipped a malformed line" in stderr
    history, summary = _logged(run_dir)
    assert [(r.get("step"), r.get("live_loss"), r.get("half_written")) for r in history
            if "live_loss" in r] == [(1, 0.8125, None), (2, 0.25, 0.5)]
    # The end of the run: aggregated metrics, wall time, exit code and peak memory.
    assert summary["live_loss"] == 0.25 and summary["half_written"] == 0.5
    assert summary["exit_code"] == 0 and summary["wall_s"] == result["wall_s"]
    assert summary["peak_rss_mb"] == result["peak_rss_mb"]


ALLOCATE = textwrap.dedent('''\
    import time
    block = bytearray(200 * 2**20)
    for i in range(0, len(block), 4096):  # touched: resident, not just reserved
        block[i] = 1
    time.sleep(0.3)
    ''')


def _time_v_kib(tmp_path: Path, script: Path) -> int:
    """``/usr/bin/time -v``'s "Maximum resident set size" of ``python script``, in KiB."""
    if shutil.which("time", path="/usr/bin") is None:
        raise AssertionError("/usr/bin/time is missing: install the Debian package `time`")
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=True)
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])


def _wrapped_peak_kib(tmp_path: Path, script: Path, name: str, *flags: str) -> float:
    run_dir = tmp_path / name
    subprocess.run([*WRAPPER, "--run-dir", str(run_dir), *flags, "--", sys.executable,
                    str(script)], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                   timeout=120, check=True)
    return json.loads((run_dir / "result.json").read_text())["peak_rss_mb"] * 1024


def test_peak_rss_is_what_usr_bin_time_reports(tmp_path):
    script = tmp_path / "allocate.py"
    script.write_text(ALLOCATE)
    expected = _time_v_kib(tmp_path, script)
    assert expected > 200 * 1024
    peaks = [_wrapped_peak_kib(tmp_path, script, f"run{n}") for n in range(3)]
    assert all(abs(peak - expected) <= 0.05 * expected for peak in peaks), (peaks, expected)


def test_the_wrappers_own_footprint_is_not_counted_as_the_commands(tmp_path):
    """With codecarbon loaded the wrapper holds ~80 MB; the command it starts inherits that in
    the kernel's high-water mark, and a small command must still read as small."""
    script = tmp_path / "small.py"
    script.write_text("import time\ntime.sleep(1)\n")
    expected = _time_v_kib(tmp_path, script)
    peak = _wrapped_peak_kib(tmp_path, script, "energy", "--energy", "--country", "USA")
    assert abs(peak - expected) <= 0.05 * expected, (peak, expected)


SAMPLE_WITHOUT_PROC = textwrap.dedent('''\
    import json, subprocess, sys
    from pathlib import Path
    from runspec.measure.rss import PeakRss, floor, reap
    footprint = floor()
    child = subprocess.Popen([sys.executable, sys.argv[2]])
    memory = PeakRss(child.pid, interval_s=0.05, proc=Path(sys.argv[1])).start()
    returncode, mark = reap(child)
    print(json.dumps({"returncode": returncode, "mark": mark, "peak": memory.stop(mark, footprint),
                      "sampled": memory.sampled, "readable": memory.readable}))
    ''')


@pytest.mark.parametrize("proc", ["empty", "missing"])
def test_without_proc_the_peak_is_the_kernels_mark(tmp_path, proc):
    """Fault injection: the sampler's process table is an empty or a missing directory, as on
    a system without /proc; the peak still comes from the reaped command. (Sampled in a
    process of its own: the test runner's footprint would be counted in the command's mark.)"""
    fake_proc = tmp_path / "proc"
    if proc == "empty":
        fake_proc.mkdir()
    (tmp_path / "allocate.py").write_text(ALLOCATE)
    (tmp_path / "sample.py").write_text(SAMPLE_WITHOUT_PROC)
    done = subprocess.run([sys.executable, "sample.py", str(fake_proc), "allocate.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(done.stdout)
    assert seen["returncode"] == 0 and seen["sampled"] == 0
    assert seen["readable"] is (proc == "empty")
    expected = _time_v_kib(tmp_path, tmp_path / "allocate.py") * 1024
    assert seen["peak"] == seen["mark"] and abs(seen["peak"] - expected) <= 0.05 * expected


def test_the_sampler_sees_a_tree_the_kernel_mark_misses(tmp_path):
    """Two processes of 120 MB at once hold 240 MB together; neither held more than 120."""
    script = tmp_path / "pair.py"
    script.write_text(textwrap.dedent('''\
        import subprocess, sys, time
        hold = "b = bytearray(120 * 2**20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n" \\
               "import time; time.sleep(1.5)"
        workers = [subprocess.Popen([sys.executable, "-c", hold]) for _ in range(2)]
        for worker in workers:
            worker.wait()
        '''))
    run_dir = tmp_path / "run"
    subprocess.run([*WRAPPER, "--run-dir", str(run_dir), "--", sys.executable, str(script)],
                   cwd=tmp_path, env=_env(tmp_path), timeout=120, check=True)
    peak = json.loads((run_dir / "result.json").read_text())["peak_rss_mb"]
    assert peak > 240


ENV_TOML = '''\
[wandb]
entity = "my-team"
project = "team-project"
tags = ["team"]
mode = "disabled"
'''


def _wandb_flag(project: Path, manifest: str) -> dict:
    (project / "run.toml").write_text(manifest)
    result = invoke("render", "run.toml", "--out", "rendered", cwd=project)
    assert result.exit_code == 0, result.output
    (local,) = (project / "rendered").rglob("local.json")
    argv = json.loads(local.read_text())["argv"]
    return json.loads(argv[argv.index("--wandb") + 1])


MANIFEST = '''\
schema = "runspec/v1"
name = "wb"
[recipe]
command = ["true"]
[measure.wandb]
'''


def test_env_toml_wandb_defaults_reach_the_run_and_the_manifest_overrides_them(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "env.toml").write_text(ENV_TOML)
    defaults = _wandb_flag(tmp_path, MANIFEST)
    assert defaults == {"project": "team-project", "entity": "my-team", "tags": ["team"],
                        "mode": "disabled", "group": "wb", "job_type": "main"}
    ours = _wandb_flag(tmp_path, MANIFEST + 'project = "mine"\nentity = "me"\ntags = []\n'
                       'mode = "offline"\ngroup = "g"\n')
    assert ours == {"project": "mine", "entity": "me", "tags": [], "mode": "offline",
                    "group": "g", "job_type": "main"}


def test_a_reapply_after_env_toml_wandb_changed_relaunches(tmp_path):
    """An unchanged re-apply stops before planning, on the files the plan read: the env file
    the W&B defaults came from (here one no search would find) is one of them."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "conf").mkdir()
    team = tmp_path / "conf" / "team.toml"
    team.write_text(ENV_TOML)
    (tmp_path / "run.toml").write_text(MANIFEST.replace(
        "[measure.wandb]", '[env]\nfile = "conf/team.toml"\n[measure.wandb]'))
    first = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert first.exit_code == 0, first.output
    (run_dir,) = (tmp_path / "runs").rglob("result.json")
    assert json.loads(run_dir.read_text())["exit_code"] == 0
    again = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert again.exit_code == 0 and "wb/main/default/c1" not in again.output, again.output
    team.write_text(ENV_TOML.replace("my-team", "other-team"))
    changed = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert changed.exit_code == 0, changed.output
    assert "wb/main/default/c1" in changed.output and "other-team" in changed.output


@pytest.mark.parametrize("env_toml", [None, '[wandb]\nentity = "my-team"\n'])
def test_no_project_anywhere_is_refused_at_the_wandb_table(tmp_path, env_toml):
    (tmp_path / "pyproject.toml").write_text("")
    if env_toml is not None:
        (tmp_path / "env.toml").write_text(env_toml)
    (tmp_path / "run.toml").write_text(MANIFEST + 'mode = "offline"\n')
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    elsewhere = ("nor does env.toml (no project in its [wandb] table)" if env_toml else
                 "and no env.toml was found to give one")
    assert (f"run.toml:5:10: error: measure.wandb.project: W&B logging needs a project: this "
            f"table names none, {elsewhere} — add `project = \"tiny-gpt\"` here, or to [wandb] "
            "in env.toml (the default of every manifest using it)") in result.output
    assert not (tmp_path / "runs").exists()


def test_a_wrong_default_in_env_toml_is_reported_in_env_toml(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "env.toml").write_text('[wandb]\nproject = "p"\ntags = "team"\n')
    (tmp_path / "run.toml").write_text(MANIFEST)
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert "env.toml:3:8: error: wandb.tags: input should be a valid list" in result.output


def test_validate_does_not_import_wandb(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "env.toml").write_text(ENV_TOML)
    (tmp_path / "run.toml").write_text(MANIFEST)
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "runspec", "validate",
                           "run.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "runspec.manifest.validate" in imported  # the listing is real ...
    assert not {m for m in imported if m.split(".")[0] == "wandb"}  # ... and has no wandb


def test_every_stage_without_a_project_is_found_without_resolving(tmp_path):
    """``wandb_project_diagnostics``: the same refusal for a whole manifest at once (what
    ``validate`` can show without building the plan); a project in env.toml clears it."""
    from runspec.manifest.load import load_manifest
    from runspec.plan.resolve import wandb_project_diagnostics

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.yaml").write_text(textwrap.dedent('''\
        schema: runspec/v1
        name: wb
        measure:
          wandb: {mode: offline}
        stages:
          a:
            recipe: {command: ["true"]}
          b:
            recipe: {command: ["true"]}
            measure:
              wandb: {project: own}
          c:
            recipe: {command: ["true"]}
            measure:
              wandb:
                tags: [c]
        '''))
    found = wandb_project_diagnostics(load_manifest(tmp_path / "run.yaml"))
    assert [(d.line, d.col, d.path) for d in found] == [
        (4, 3, "measure.wandb.project"), (15, 7, "stages.c.measure.wandb.project")]
    assert all("add `project: tiny-gpt` here" in d.hint for d in found)
    (tmp_path / "env.toml").write_text('[wandb]\nproject = "team"\n')
    assert wandb_project_diagnostics(load_manifest(tmp_path / "run.yaml")) == []


def test_metric_lines_hold_a_half_line_back_until_it_ends(tmp_path):
    from runspec.measure.wandb_log import MetricLines, history_row

    path = tmp_path / "metrics.jsonl"
    lines = MetricLines(path)
    assert lines.read() == []  # not created yet
    with path.open("ab") as handle:
        handle.write(b'{"loss": 1.0}\n{"loss": 0.')
    assert lines.read() == [b'{"loss": 1.0}']
    assert lines.read() == []
    with path.open("ab") as handle:
        handle.write(b'5, "rank": 1}\n{"step": 3, "loss": 0.25}')
    assert lines.read() == [b'{"loss": 0.5, "rank": 1}']
    assert lines.read(final=True) == [b'{"step": 3, "loss": 0.25}']  # the writer is gone
    assert [history_row(b) for b in (b'{"loss": 0.5, "rank": 1}', b'{"step": 3, "loss": 0.25}',
                                      b'[1]', b'{"step": 4}', b'{"ok": true, "x": 2}', b'{')] == [
        None, {"step": 3, "loss": 0.25}, None, None, {"x": 2}, None]
    path.write_bytes(b'{"loss": 9.0}\n')  # replaced by a shorter file: read from its start
    assert lines.read() == [b'{"loss": 9.0}']
