"""The run table: what apply writes for a Slurm array, and what each task unpacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runspec import run_table
from runspec.run_table import TableError

ENTRIES = [(f"runs/m/main/i={i}/c1", {"launch.sh": f"echo {i}\n", "job.yaml": f"i: {i} – ü\n"})
           for i in range(300)]


def test_each_task_unpacks_exactly_its_own_run(tmp_path: Path):
    table = tmp_path / "runs/m/main/runs-x.table"
    run_table.write(table, ENTRIES)
    for index in (0, 1, 137, 299):
        run_dir = run_table.unpack(table, index, tmp_path)
        assert run_dir == tmp_path / ENTRIES[index][0]
        assert {p.name: p.read_text(encoding="utf-8") for p in run_dir.iterdir()} == \
            ENTRIES[index][1]
    assert not (tmp_path / "runs/m/main/i=2").exists()


def test_unpacking_keeps_what_the_run_directory_already_holds(tmp_path: Path):
    """A secrets file written at submission, an earlier attempt's records: left alone."""
    table = tmp_path / "t.table"
    run_table.write(table, ENTRIES[:1])
    run_dir = tmp_path / ENTRIES[0][0]
    run_dir.mkdir(parents=True)
    (run_dir / "secrets.env").write_text("export A=1\n")
    (run_dir / "result.attempt-1.json").write_text("{}")
    run_table.unpack(table, 0, tmp_path)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "job.yaml", "launch.sh", "result.attempt-1.json", "secrets.env"]


def test_the_name_follows_the_runs_and_the_manifest():
    runs = [("m/main/a/c1", "d1"), ("m/main/b/c1", "d2")]
    name = run_table.table_name(runs, "m1")
    assert name.startswith("runs-") and name.endswith(".table")
    assert run_table.table_name(runs, "m1") == name
    assert run_table.table_name(runs[::-1], "m1") != name  # task order is part of it
    assert run_table.table_name([runs[0], ("m/main/b/c1", "d3")], "m1") != name
    assert run_table.table_name(runs, "m2") != name


@pytest.mark.parametrize("run_dir, files, why", [
    ("/etc", {"a": ""}, "is not inside the job's directory"),
    ("runs/../../x", {"a": ""}, "is not inside the job's directory"),
    ("", {"a": ""}, "is not inside the job's directory"),
    ("runs/a", {"../b": ""}, "is not a plain name"),
    ("runs/a", {"..": ""}, "is not a plain name"),
])
def test_an_entry_that_would_write_outside_its_run_is_refused(tmp_path: Path, run_dir, files,
                                                              why):
    table = tmp_path / "t.table"
    run_table.write(table, [(run_dir, files)])
    with pytest.raises(TableError, match=why):
        run_table.unpack(table, 0, tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_the_command_line_says_what_went_wrong_in_one_line(tmp_path: Path):
    table = tmp_path / "t.table"
    run_table.write(table, ENTRIES[:2])

    def unpack(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runspec.run_table", *args], cwd=tmp_path,
                              capture_output=True, text=True, check=False)

    done = unpack(str(table), "1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ENTRIES[1][0] / "launch.sh").read_text() == "echo 1\n"
    for args, code, said in [
        ((str(table), "2"), 1, "holds 2 runs, not task 2"),
        ((str(tmp_path / "missing.table"), "0"), 1, "No such file or directory"),
        ((str(table),), 2, "usage: python -m runspec.run_table TABLE INDEX"),
        ((str(table), "-1"), 2, "usage:"),
    ]:
        done = unpack(*args)
        assert done.returncode == code and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    (tmp_path / "other.table").write_text("not a table\n")
    done = unpack(str(tmp_path / "other.table"), "0")
    assert done.returncode == 1 and "is not a run table of this runspec version" in done.stderr


def test_the_layout_is_an_index_then_one_json_line_per_run():
    lines = run_table.encode(ENTRIES[:3]).decode().splitlines()
    assert lines[0] == "runspec-run-table 1"
    index = json.loads(lines[1])["index"]
    body = "".join(line + "\n" for line in lines[2:]).encode()
    for (offset, length), (run_dir, files) in zip(index, ENTRIES[:3], strict=True):
        assert json.loads(body[offset:offset + length]) == {"dir": run_dir, "files": files}
