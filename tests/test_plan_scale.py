"""Plans that scale for big sweeps: one reason shared by many runs is shown once, an edited
recipe script shows as a diff of the script, ``recipe.on_code_change = "keep"`` keeps
succeeded runs whose only change is the code, and ``plan --json`` is written change by
change."""

from __future__ import annotations

import io
import json
from contextlib import chdir
from pathlib import Path

import pytest
from conftest import invoke, state_members

from runspec.plan import report
from runspec.plan.diff import Action
from runspec.plan.pipeline import Selection, make_plan
from runspec.plan.source import KEPT_FIELD, MAX_SOURCE_BYTES, SOURCE_FIELD, SOURCE_FIELDS, without
from runspec.state.store import Member

MANIFEST = '''\
schema = "runspec/v1"
name = "big"

[recipe]
script = "train.py"
config = "config.yaml"{keep}

[env]
executor = "local"

[sweep.parameters]
"optim.lr" = [0.1, 0.2, 0.3]
"optim.wd" = [0.0, 0.1, 0.2, 0.3]
'''
KEEP = '\non_code_change = "keep"'
CONFIG = "train:\n  batch: 64\n  steps: 1\noptim:\n  lr: 0.1\n  wd: 0.0\n"
SCRIPT = '''\
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--config")
print("trained with", parser.parse_args().config)
'''
GRID = "big/main/optim.lr={0.1,0.2,0.3},optim.wd={0.0,0.1,0.2,0.3}/c1"


def make_project(root: Path, keep: bool = False) -> Path:
    (root / "pyproject.toml").write_text("")  # the project root: env.toml search stops here
    (root / "train.py").write_text(SCRIPT)
    (root / "config.yaml").write_text(CONFIG)
    (root / "run.toml").write_text(MANIFEST.format(keep=KEEP if keep else ""))
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


@pytest.fixture
def keeping(tmp_path: Path) -> Path:
    return make_project(tmp_path, keep=True)


def applied(path: Path, status: str = "succeeded", statuses: dict[str, str] | None = None,
            selection: Selection | None = None) -> None:
    """What apply records (through the store's API, without running anything): every run it
    would submit, with the request the plan rendered, as ``status``."""
    result = make_plan(path, selection)
    for change in result.changes.to_submit():
        run = change.run
        assert run is not None
        result.state.members[run.key] = Member(
            run.key, run.stage, run.digest, (statuses or {}).get(run.key, status), {"pid": 1},
            run.request, point=run.point, slot=run.slot)
    result.store.write(result.state)


def plan_text(path: Path, selection: Selection | None = None) -> str:
    return report.plan_text(make_plan(path, selection))


def edit_comment(project: Path) -> None:
    (project / "train.py").write_text(SCRIPT + "# tuned later\n")


# -- 1. identical reasons are grouped ------------------------------------------------------


def test_a_config_change_shared_by_every_run_is_one_entry_with_one_diff(project):
    applied(project / "run.toml")
    (project / "config.yaml").write_text(CONFIG.replace("batch: 64", "batch: 128"))
    text = plan_text(project / "run.toml")
    assert "  -/+ 12 runs: config changed: train.batch 64 → 128\n" in text
    assert f"        {GRID}\n" in text  # every combination: one brace pattern
    assert text.count("-    batch: 64") == text.count("+    batch: 128") == 1
    assert "Plan: 0 to create, 12 to replace, 0 to rerun, 0 to destroy, 0 unchanged." in text


def test_grouped_plan_text(project, text_snapshot):
    """One run with reasons of its own keeps its own lines; the other replaces are one entry
    (their keys listed in short); the runs a removed sweep value drops are one destroy."""
    applied(project / "run.toml")
    result = make_plan(project / "run.toml")
    odd = result.state.members["big/main/optim.lr=0.1,optim.wd=0.0/c1"]
    odd.request = {**odd.request, "config": {**odd.request["config"], "train": {
        "batch": 64, "steps": 2}}}
    odd.digest = "0" * 64  # recorded from another config
    result.store.write(result.state)
    (project / "config.yaml").write_text(CONFIG.replace("batch: 64", "batch: 128"))
    (project / "run.toml").write_text(MANIFEST.format(keep="").replace(
        '"optim.wd" = [0.0, 0.1, 0.2, 0.3]', '"optim.wd" = [0.0, 0.1, 0.2]'))
    text = invoke("plan", "run.toml", cwd=project).stdout
    assert "  -/+ 8 runs: config changed: train.batch 64 → 128\n" in text
    assert "        …and 5 more\n" in text
    assert "    - 3 runs: no longer in the manifest\n" \
        "        big/main/optim.lr={0.1,0.2,0.3},optim.wd=0.3/c1\n" in text
    assert text.count("+    batch: 128") == 2  # the group's diff, and the odd run's own
    assert text == report.plan_text(make_plan(project / "run.toml")).replace(
        str(project / "run.toml"), "run.toml")
    assert text == text_snapshot


def test_the_json_plan_keeps_one_entry_per_run(project):
    applied(project / "run.toml")
    (project / "config.yaml").write_text(CONFIG.replace("batch: 64", "batch: 128"))
    result = invoke("plan", "--json", "run.toml", cwd=project)
    changes = json.loads(result.stdout)["changes"]
    assert len(changes) == 12
    assert {c["action"] for c in changes} == {"replace"}
    assert all(c["reasons"] == ["config changed: train.batch 64 → 128"] for c in changes)


def test_reruns_are_grouped_and_runs_with_other_reasons_keep_their_lines(project):
    statuses = {f"big/main/optim.lr=0.1,optim.wd={wd}/c1": "failed" for wd in (0.0, 0.1, 0.2)}
    statuses |= {f"big/main/optim.lr=0.2,optim.wd={wd}/c1": "cancelled" for wd in (0.0, 0.1)}
    applied(project / "run.toml", statuses=statuses)
    text = plan_text(project / "run.toml")
    assert "    ↻ 3 runs: failed last time\n" \
        "        big/main/optim.lr=0.1,optim.wd={0.0,0.1,0.2}/c1\n" in text
    # Two runs sharing a reason are no shorter as one entry: they keep their own lines.
    for wd in (0.0, 0.1):
        assert f"    ↻ big/main/optim.lr=0.2,optim.wd={wd}/c1\n        # cancelled last time\n" \
            in text


def test_diffs_that_differ_per_run_show_one_with_a_note(project):
    applied(project / "run.toml")
    manifest = (project / "run.toml").read_text()
    (project / "run.toml").write_text(manifest + '[outputs]\nroot = "elsewhere"\n')
    text = plan_text(project / "run.toml")
    assert "  -/+ 12 runs: env changed: RUNSPEC_RUN_DIR; command changed\n" in text
    assert "        # the runs' diffs differ; this is big/main/optim.lr=0.1,optim.wd=0.0/c1's\n" \
        in text
    assert text.count("--- applied") == 1


# -- 2. a code edit shows the script's diff ------------------------------------------------


def test_a_comment_only_edit_shows_the_scripts_own_diff(project):
    applied(project / "run.toml")
    edit_comment(project)
    text = plan_text(project / "run.toml")
    assert "  -/+ 12 runs: recipe script train.py edited\n" in text
    diff = text[text.index("--- train.py (applied)"):text.index("\n\n", text.index("--- train"))]
    assert diff.splitlines() == [
        "--- train.py (applied)", "        +++ train.py (planned)", "        @@ -3,3 +3,4 @@",
        '         parser = argparse.ArgumentParser()', '         parser.add_argument("--config")',
        '         print("trained with", parser.parse_args().config)',
        "        +# tuned later"]
    assert "code_digest" not in text


def test_the_script_text_is_recorded_once_per_stage_outside_the_digest(project):
    from runspec.plan.identity import digest

    runs = make_plan(project / "run.toml").plan.runs
    carriers = [r for r in runs if SOURCE_FIELD in r.request]
    assert [r.key for r in carriers] == [runs[0].key]
    assert carriers[0].request[SOURCE_FIELD] == {"path": "train.py", "text": SCRIPT}
    assert all(r.digest == digest(without(r.request, SOURCE_FIELDS)) for r in runs)


def test_without_the_old_text_the_plan_names_the_file_and_its_digests(project):
    applied(project / "run.toml")
    result = make_plan(project / "run.toml")
    for member in result.state.members.values():  # a state written before texts were kept
        member.request = without(member.request, SOURCE_FIELDS)
    result.store.write(result.state)
    old = next(iter(result.state.members.values())).request["code_digest"]
    edit_comment(project)
    new = make_plan(project / "run.toml").plan.runs[0].request["code_digest"]
    text = plan_text(project / "run.toml")
    assert f"  -/+ 12 runs: recipe file train.py changed (digest {old[:12]} → {new[:12]})\n" \
        in text
    assert "--- train.py" not in text


def test_a_large_script_is_not_copied_into_the_request(project):
    (project / "train.py").write_text(SCRIPT + "#" * MAX_SOURCE_BYTES + "\n")
    applied(project / "run.toml")
    assert make_plan(project / "run.toml").plan.runs[0].request[SOURCE_FIELD] == {
        "path": "train.py"}
    (project / "train.py").write_text(SCRIPT + "#" * MAX_SOURCE_BYTES + "!\n")
    assert "12 runs: recipe file train.py changed (digest " in plan_text(project / "run.toml")


# -- 3. recipe.on_code_change = "keep" -----------------------------------------------------


def test_keep_launches_nothing_for_a_comment_only_edit(keeping):
    first = invoke("apply", "run.toml", "--yes", cwd=keeping)
    assert first.exit_code == 0, first.output
    before = {k: (m.digest, m.submitted_at) for k, m in state_members(keeping, "big").items()}
    edit_comment(keeping)
    result = make_plan(keeping / "run.toml")
    assert result.changes.to_submit() == [] and not result.changes.has_changes
    assert len(result.changes.stale) == 12
    shown = invoke("plan", "--detailed-exitcode", "run.toml", cwd=keeping)
    assert shown.exit_code == 0  # nothing to do
    assert '    = 12 runs kept on older code (recipe.on_code_change = "keep"): recipe script ' \
        "train.py edited\n" in shown.stdout
    assert "        +# tuned later\n" in shown.stdout
    assert '12 runs kept on older code (recipe.on_code_change = "keep")' in shown.stdout
    again = invoke("apply", "run.toml", "--yes", cwd=keeping)
    assert again.exit_code == 0, again.output
    assert "launched" not in again.output
    after = {k: (m.digest, m.submitted_at) for k, m in state_members(keeping, "big").items()}
    assert after == before


def test_keep_still_runs_failed_and_otherwise_changed_runs_on_the_new_code(keeping):
    failed = "big/main/optim.lr=0.1,optim.wd=0.0/c1"
    applied(keeping / "run.toml", statuses={failed: "failed"})
    edit_comment(keeping)
    changes = make_plan(keeping / "run.toml").changes
    assert [c.key for c in changes.to_submit()] == [failed]
    assert changes.to_submit()[0].reasons == ["recipe script train.py edited"]
    assert changes.count(Action.NOOP) == len(changes.stale) == 11
    forced = make_plan(keeping / "run.toml", Selection(replace=["*optim.wd=0.3*"])).changes
    assert len(forced.to_submit()) == 4 and len(forced.stale) == 8
    (keeping / "config.yaml").write_text(CONFIG.replace("batch: 64", "batch: 128"))
    both = make_plan(keeping / "run.toml").changes
    assert both.count(Action.REPLACE) == 12 and both.stale == []
    assert both.changes[1].reasons == ["config changed: train.batch 64 → 128",
                                       "recipe script train.py edited"]


def test_kept_plan_text(keeping, text_snapshot):
    """A run that failed runs again on the edited script; the rest are kept, listed with the
    script's diff."""
    applied(keeping / "run.toml", statuses={"big/main/optim.lr=0.2,optim.wd=0.1/c1": "failed"})
    edit_comment(keeping)
    result = invoke("plan", "run.toml", cwd=keeping)
    assert result.exit_code == 0
    assert result.stdout == text_snapshot


def test_replace_is_the_default(project):
    applied(project / "run.toml")
    edit_comment(project)
    changes = make_plan(project / "run.toml").changes
    assert changes.count(Action.REPLACE) == 12 and changes.stale == []


def test_kept_runs_keep_their_scripts_text_when_the_run_carrying_it_is_replaced(keeping):
    """The first run carries the script; when it alone runs again on new code, the text the
    other (kept) runs ran is moved to a request apply records, so later plans still diff."""
    first = "big/main/optim.lr=0.1,optim.wd=0.0/c1"
    applied(keeping / "run.toml", statuses={first: "failed"})
    edit_comment(keeping)
    result = make_plan(keeping / "run.toml")
    kept = result.changes.to_submit()[0].run.request[KEPT_FIELD]
    assert [(k["path"], k["text"]) for k in kept] == [("train.py", SCRIPT)]
    applied(keeping / "run.toml")
    text = plan_text(keeping / "run.toml")
    assert "= 11 runs kept on older code" in text and "        +# tuned later\n" in text
    assert make_plan(keeping / "run.toml").changes.to_submit() == []


PIPELINE = '''\
schema = "runspec/v1"
name = "pipe"

[env]
executor = "local"

[stages.prep.recipe]
script = "prep.py"{keep}

[stages.train]
needs = ["prep"]
[stages.train.recipe]
script = "train.py"
config = "config.yaml"
'''


@pytest.mark.parametrize("keep", [True, False])
def test_a_downstream_stage_is_kept_with_its_kept_upstream(tmp_path, keep):
    make_project(tmp_path)
    (tmp_path / "prep.py").write_text("print('prep')\n")
    (tmp_path / "run.toml").write_text(PIPELINE.format(keep=KEEP if keep else ""))
    applied(tmp_path / "run.toml")
    (tmp_path / "prep.py").write_text("print('prep')  # faster later\n")
    changes = make_plan(tmp_path / "run.toml").changes
    by_stage = {c.stage: c for c in changes.changes}
    if keep:
        assert changes.to_submit() == []
        assert by_stage["prep"].stale and not by_stage["train"].stale
    else:
        assert [c.stage for c in changes.to_submit()] == ["prep", "train"]
        assert by_stage["train"].reasons == ["upstream runs changed: prep"]


def test_runs_on_two_older_versions_are_two_entries_each_with_its_diff(project):
    """A targeted apply leaves runs on two versions; the next edit shows one entry per
    version, each diffed against what its runs ran (kept in the state through the first
    run's replacement)."""
    applied(project / "run.toml")
    edit_comment(project)
    applied(project / "run.toml", selection=Selection(targets=["*optim.lr=0.1,*"]))
    (project / "train.py").write_text(SCRIPT.replace("trained with", "done") + "# tuned later\n")
    text = plan_text(project / "run.toml")
    assert "  -/+ 4 runs: recipe script train.py edited\n" \
        "        big/main/optim.lr=0.1,optim.wd={0.0,0.1,0.2,0.3}/c1\n" in text
    assert "  -/+ 8 runs: recipe script train.py edited\n" \
        "        big/main/optim.lr={0.2,0.3},optim.wd={0.0,0.1,0.2,0.3}/c1\n" in text
    assert text.count('-print("trained with", parser.parse_args().config)') == 2
    assert text.count("         # tuned later") == 1 and text.count("+# tuned later") == 1


# -- 4. plan --json is streamed ------------------------------------------------------------


def varied(project: Path) -> None:
    """A state and an edit that plan a rerun, creates, destroys and unchanged runs, with a
    secret-looking variable in every request."""
    manifest = MANIFEST.format(keep="") + '[env.vars]\nHF_TOKEN = "hf_secret_value"\n'
    (project / "run.toml").write_text(manifest)
    applied(project / "run.toml", statuses={"big/main/optim.lr=0.1,optim.wd=0.0/c1": "failed"})
    (project / "run.toml").write_text(manifest.replace("[0.1, 0.2, 0.3]", "[0.1, 0.2, 0.3, 0.4]")
                                      .replace("[0.0, 0.1, 0.2, 0.3]", "[0.0, 0.1, 0.2]"))


def test_the_streamed_json_plan_is_the_document_byte_for_byte(project):
    varied(project)
    printed = invoke("plan", "--json", "run.toml", cwd=project).stdout
    with chdir(project):
        assert printed == report.dumps(report.plan_json(make_plan("run.toml")))
    actions = {c["action"] for c in json.loads(printed)["changes"]}
    assert actions == {"rerun", "create", "destroy", "noop"}
    assert '"HF_TOKEN": "***"' in printed and "hf_secret_value" not in printed


def test_two_manifests_stream_as_one_list_of_plans(project):
    varied(project)
    (project / "other.toml").write_text(MANIFEST.format(keep="").replace('"big"', '"other"'))
    printed = invoke("plan", "--json", "run.toml", "other.toml", cwd=project).stdout
    with chdir(project):
        documents = [report.plan_json(make_plan(path)) for path in ("run.toml", "other.toml")]
    assert printed == report.dumps(documents)
    assert [d["manifest"]["name"] for d in json.loads(printed)] == ["big", "other"]


class Recording(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_change_is_written_on_its_own_as_it_is_made(project):
    varied(project)
    with chdir(project):
        result = make_plan("run.toml")
    stream = Recording()
    report.write_plan_json([result], stream)
    assert stream.getvalue() == report.dumps(report.plan_json(result))
    with_changes = [w for w in stream.writes if '"key": ' in w]
    assert len(with_changes) == len(result.changes.changes) == 15
    assert all(w.count('"key": ') == 1 for w in with_changes)


def test_the_saved_plan_is_the_document_byte_for_byte(project):
    """``plan --out`` streams the saved plan; it is what the whole document made at once was."""
    from runspec.apply.session import saved_plan_json

    varied(project)
    (project / "plan.json").write_text("an older plan\n")
    (project / "made.txt").write_text("")  # a new file's permissions, for comparison
    saved = invoke("plan", "run.toml", "--out", "plan.json", "--exclude", "*wd=0.2*",
                   "--set", 'env.vars.EXTRA="é"', cwd=project)
    assert saved.exit_code == 0, saved.output
    selection = Selection(excludes=["*wd=0.2*"], sets=['env.vars.EXTRA="é"'])
    with chdir(project):
        document = saved_plan_json(make_plan("run.toml", selection), selection)
    written = (project / "plan.json").read_text(encoding="utf-8")
    assert written == report.dumps(document)
    assert json.loads(written) == document and list(document)[-1] == "apply"
    assert document["apply"]["selection"]["excludes"] == ["*wd=0.2*"]
    assert {c["action"] for c in document["changes"]} == {"replace", "create", "destroy"}
    assert '"EXTRA": "é"' in written
    assert (project / "plan.json").stat().st_mode == (project / "made.txt").stat().st_mode
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".plan.json")) == []


def test_the_saved_plan_is_written_change_by_change(project):
    varied(project)
    with chdir(project):
        result = make_plan("run.toml")
    stream = Recording()
    report.write_saved_plan(result, {"manifest_file": "run.toml"}, stream)
    assert stream.getvalue() == report.dumps({**report.plan_json(result),
                                              "apply": {"manifest_file": "run.toml"}})
    with_changes = [w for w in stream.writes if '"key": ' in w]
    assert len(with_changes) == len(result.changes.changes) == 15
    assert all(w.count('"key": ') == 1 for w in with_changes)
