"""Adaptive cycles (campaign.until), for real: local runs whose results decide how many
cycles each point gets, and downstream stages that wait for them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import invoke, state_members

# Cycle N of point x=1 reports VALUES[N-1]; x=2 always 5.0 (a zero-width CI).
VALUES = [10, 11, 9, 10, 10, 10, 10, 10, 10, 10]
RECIPE = f"""\
import json, os, sys
cycle = int(os.environ["RUNSPEC_RUN_KEY"].rsplit("/c", 1)[1])
value = {VALUES}[cycle - 1] if sys.argv[1] == "1" else 5.0
open(os.environ["RUNSPEC_METRICS"], "a").write(json.dumps({{"score": value}}) + "\\n")
"""


def _project(tmp_path: Path, rel_ci: float, max_cycles: int, downstream: bool = False) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "recipe.py").write_text(RECIPE)
    main = textwrap.dedent(f'''\
        [recipe]
        command = ["python", "recipe.py", "${{sweep.x}}"]
        [sweep.parameters]
        x = [1, 2]
        [campaign]
        cycles = 3
        order = "interleaved"
        until = {{ metric = "score", rel_ci = {rel_ci}, max_cycles = {max_cycles} }}
        ''')
    if downstream:
        main = main.replace("[recipe]", "[stages.main.recipe]").replace(
            "[sweep.", "[stages.main.sweep.").replace("[campaign]", "[stages.main.campaign]")
        main += textwrap.dedent('''\
            [stages.report]
            needs = ["main"]
            [stages.report.recipe]
            command = ["python", "-c", "print('report')"]
            ''')
    (tmp_path / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "ad"\n[measure]\nmetrics = ["score"]\n' + main)
    return tmp_path


def _cycles(project: Path, stage: str = "main") -> dict[str, int]:
    counts: dict[str, int] = {}
    for member in state_members(project, "ad").values():
        if member.stage == stage:
            label = ",".join(f"{k}={v}" for k, v in member.point.items())
            counts[label] = counts.get(label, 0) + 1
    return counts


def test_cycles_are_added_until_each_point_meets_its_target(tmp_path):
    """x=1's CI half-width is 24.8%, 13.0%, 8.8%, 6.6% of its mean after 3…6 cycles, so a
    ±7% target stops it at 6; x=2 (constant) is done after the minimum 3."""
    project = _project(tmp_path, rel_ci=0.07, max_cycles=10)
    plan = invoke("plan", "run.toml", cwd=project)
    assert ("Stage main: cycles until score's 95% CI is within ±0.07 of its mean: 3 per point "
            "planned now (at least 3), up to 10: at most 14 runs more") in plan.output
    assert "Plan: 6 to create" in plan.output

    applied = invoke("apply", "--yes", "run.toml", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert _cycles(project) == {"x=1": 6, "x=2": 3}
    assert applied.output.count("stage main: adding 1 run(s)") == 3
    assert ("stage main: every point has score's 95% CI within ±0.07 of its mean (3–6 cycles)"
            in applied.output)
    assert "Apply complete: 9 launched, 9 succeeded." in applied.output
    # Done: the next plan keeps what was measured and adds nothing.
    again = invoke("plan", "run.toml", cwd=project)
    assert "No changes. The 9 planned runs match what was applied." in again.output
    # A looser target keeps every measured cycle (nothing is destroyed), a tighter one adds.
    (project / "run.toml").write_text((project / "run.toml").read_text().replace(
        "rel_ci = 0.07", "rel_ci = 0.05"))
    tighter = invoke("plan", "run.toml", cwd=project)
    assert "+ ad/main/x=1/c7" in tighter.output and "0 to destroy" in tighter.output


def test_max_cycles_ends_a_point_that_never_meets_the_target(tmp_path):
    project = _project(tmp_path, rel_ci=0.01, max_cycles=5)
    applied = invoke("apply", "--yes", "run.toml", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert _cycles(project) == {"x=1": 5, "x=2": 3}
    assert ("stage main: max_cycles = 5 reached with 1 of 2 point(s) short of score's 95% CI "
            "within ±0.01 of its mean: x=1 (±8.78%) (3–5 cycles)") in applied.output


def test_a_stage_needing_an_adaptive_stage_waits_for_its_last_cycle(tmp_path):
    project = _project(tmp_path, rel_ci=0.07, max_cycles=10, downstream=True)
    plan = invoke("plan", "run.toml", cwd=project)
    assert ("Stage report: planned later — it waits for stage main to finish its adaptive "
            "cycles (campaign.until)") in plan.output
    applied = invoke("apply", "--yes", "run.toml", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert _cycles(project) == {"x=1": 6, "x=2": 3}
    assert _cycles(project, "report") == {"": 1}  # it reads no output of main: one run
    order = [line.split()[1] for line in applied.output.splitlines() if line.startswith("started")]
    assert max(i for i, key in enumerate(order) if "/main/" in key) < \
        min(i for i, key in enumerate(order) if "/report/" in key)


def test_the_plan_json_and_state_are_untouched_by_planning(tmp_path):
    project = _project(tmp_path, rel_ci=0.07, max_cycles=10)
    data = json.loads(invoke("plan", "run.toml", "--json", cwd=project).output)
    assert data["summary"]["create"] == 6
    assert not (project / ".runspec").exists()
