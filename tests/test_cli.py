"""The command line as a user meets it: --version, --help, init, json output."""

from __future__ import annotations

import json

import pytest
from conftest import invoke

from runspec import __version__


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"runspec {__version__}"


def test_help_lists_commands_and_completion():
    result = invoke("--help")
    for word in ("validate", "schema", "init", "_RUNSPEC_COMPLETE=bash_source"):
        assert word in result.stdout


@pytest.mark.parametrize("fmt,header", [
    ("toml", "#:schema "),
    ("yaml", "# yaml-language-server: $schema="),
])
def test_init_writes_a_valid_manifest_linked_to_the_schema(tmp_path, fmt, header):
    result = invoke("init", "--format", fmt, "--name", "demo", str(tmp_path))
    assert result.exit_code == 0
    manifest = tmp_path / f"run.{fmt}"
    first = manifest.read_text().splitlines()[0]
    assert first.startswith(header) and first.endswith("run.schema.json")
    schema_ref = first.split("schema", 1)[1].lstrip(" =")
    assert (tmp_path / schema_ref).is_file()
    assert invoke("validate", str(manifest)).exit_code == 0


def test_init_keeps_an_existing_manifest(tmp_path):
    (tmp_path / "run.toml").write_text("keep me")
    result = invoke("init", str(tmp_path))
    assert "kept existing" in result.stdout
    assert (tmp_path / "run.toml").read_text() == "keep me"


def test_init_inside_this_repository_points_at_checked_in_schemas(tmp_path):
    from conftest import ROOT

    from runspec.manifest.starter import schema_reference

    reference, written = schema_reference(ROOT / "examples")
    assert reference == "../schemas" and written == []


def test_json_format_is_a_list_of_records(tmp_path):
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "x"\nrecipie = 1\n')
    result = invoke("validate", "--format", "json", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    records = json.loads(result.stdout)
    assert {"file": "run.toml", "line": 3, "col": 1, "path": "recipie", "message": "unknown key",
            "hint": 'did you mean "recipe"?', "severity": "error"} in records
    assert all(set(r) == {"file", "line", "col", "path", "message", "hint", "severity"}
               for r in records)


def test_without_a_path_commands_use_the_manifest_here(tmp_path):
    empty = invoke("validate", cwd=tmp_path)
    assert empty.exit_code == 1
    assert "error: no manifests found in ." in empty.stderr
    missing = invoke("plan", cwd=tmp_path)
    assert missing.exit_code == 2
    assert "no run.toml or run.yaml in this directory: name the manifest" in missing.stderr


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_init_writes_a_project_that_runs_as_written(tmp_path, fmt):
    """`runspec init`, then `runspec validate && runspec apply --yes && runspec results`,
    with no paths: a table with n = 3 for both points of the sweep, two metrics each."""
    project = tmp_path / "proj"
    assert invoke("init", "--format", fmt, str(project)).exit_code == 0
    assert {".gitignore", "config.yaml", "train.py", f"run.{fmt}"} <= {
        p.name for p in project.iterdir()}
    assert (project / ".gitignore").read_text().splitlines()[1:] == ["runs/", ".runspec/"]
    validated = invoke("validate", cwd=project)
    assert validated.exit_code == 0, validated.output
    applied = invoke("apply", "--yes", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 6 launched, 6 succeeded." in applied.stdout
    shown = invoke("results", "--format", "json", cwd=project)
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)["rows"]
    by_metric = {(r["train.lr"], r["metric"]): r for r in rows}
    for lr in (0.001, 0.01):
        for metric in ("loss", "steps_per_s"):
            assert by_metric[(lr, metric)]["n"] == 3
    # the sweep value reached the recipe: the slower rate fits worse in the same steps
    assert by_metric[(0.001, "loss")]["mean"] > by_metric[(0.01, "loss")]["mean"]


def test_apply_of_a_directory_says_it_takes_one_manifest(tmp_path):
    (tmp_path / "specs").mkdir()
    result = invoke("apply", "--yes", "specs", cwd=tmp_path)
    assert result.exit_code == 1
    assert "error: specs is a directory: apply takes one manifest (or a saved plan.json)" in result.stderr


def test_piped_apply_output_is_in_order_and_free_of_markup(tmp_path):
    """`runspec apply … 2>&1 | tee log`: the plan comes first, then the run events."""
    import subprocess
    import sys

    assert invoke("init", str(tmp_path / "p")).exit_code == 0
    done = subprocess.run([sys.executable, "-m", "runspec", "apply", "--yes", "--set",
                           "campaign.cycles=1", "--set", "recipe.overrides.train.steps=10"],
                          cwd=tmp_path / "p", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert out.index("Plan: 2 to create") < out.index("started ") < out.index("Apply complete")
    assert "[progress" not in out


def test_the_progress_bar_leaks_no_style_tags_and_the_prompt_says_y_n(monkeypatch):
    import io

    import click
    from rich.console import Console
    from rich.progress import Progress

    from runspec import console

    stream = io.StringIO()
    with Progress("[progress.description]{task.description}",
                  console=Console(file=stream, force_terminal=True, width=80)) as progress:
        reporter = console._RichReporter(progress)
        reporter.progress(0, 2, "stage main")
        reporter.event("started x/main/[a]/c1")
    text = stream.getvalue()
    assert "[progress.description]" not in text and "started x/main/[a]/c1" in text
    asked = {}

    def fake_confirm(prompt, **kwargs):  # a fake: what click is asked to show, not a terminal
        asked["prompt"] = prompt + kwargs.get("prompt_suffix", ": ")
        return False

    monkeypatch.setattr(click, "confirm", fake_confirm)
    monkeypatch.setattr(console, "print_plan", lambda text: None)
    assert console.confirm_plan(False)("plan") is False
    assert asked["prompt"] == "Apply these changes? [y/N] "


SWEEP = '''\
schema = "runspec/v1"
name = "small"

[recipe]
command = ["true", "${sweep.i}"]

[sweep.parameters]
i = { range = [0, 3] }
'''


def _small_project(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(SWEEP)
    return tmp_path


def test_plan_out_where_a_file_is_in_the_way_is_a_clear_error(tmp_path):
    project = _small_project(tmp_path)
    (project / "plans").write_text("a file, not a directory\n")
    result = invoke("plan", "run.toml", "--out", "plans/plan.json", cwd=project)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "Saved the plan" not in result.stderr
    assert result.stderr == (
        "error: cannot save the plan to plans/plan.json: Not a directory — plans is not a "
        "directory (a file is in its way): give --out another path; a file that was there is "
        "unchanged\n")
    assert (project / "plans").read_text() == "a file, not a directory\n"


def test_plan_out_that_fails_midway_leaves_the_previous_plan_as_it_was(tmp_path, monkeypatch):
    """A full disk while the plan is written: the older plan.json is intact, no temp file."""
    import errno

    from runspec.plan import report

    project = _small_project(tmp_path)
    assert invoke("plan", "run.toml", "--out", "plan.json", cwd=project).exit_code == 0
    before = (project / "plan.json").read_bytes()
    (project / "run.toml").write_text(SWEEP.replace("[0, 3]", "[0, 2000]"))
    write = report.write_saved_plan

    class Filling:
        def __init__(self, stream):
            self.stream, self.left = stream, 2000

        def write(self, text):
            self.left -= 1
            if not self.left:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.stream.write(text)

    monkeypatch.setattr(report, "write_saved_plan",
                        lambda result, apply, stream: write(result, apply, Filling(stream)))
    result = invoke("plan", "run.toml", "--out", "plan.json", cwd=project)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: cannot save the plan to plan.json: the disk is full (no space left on device) "
        "— free space on the file system that holds ., then plan again; a file that was there "
        "is unchanged\n")
    assert (project / "plan.json").read_bytes() == before
    assert sorted(p.name for p in project.iterdir()) == ["plan.json", "pyproject.toml",
                                                          "run.toml"]
