"""How a plan is shown: Terraform-like text for people, a versioned JSON format for tools."""

from __future__ import annotations

from typing import Any, TextIO, cast

from runspec import __version__
from runspec.backends import backend_for
from runspec.plan import jsontext
from runspec.plan.diff import KEPT, Action, Change, masked
from runspec.plan.estimate import describe as describe_estimate
from runspec.plan.identity import SINGLE_POINT, format_value, point_label
from runspec.plan.pipeline import PlanResult

JSON_FORMAT = "runspec.plan/1"
SYMBOLS = {Action.CREATE: "+", Action.REPLACE: "-/+", Action.RERUN: "↻", Action.DESTROY: "-",
           Action.MOVE: "→", Action.NOOP: "="}
LEGEND = ("Actions: + create   -/+ replace   ↻ rerun (failed or lost last time)   - destroy"
          "   = unchanged")
MOVE_LEGEND = "   → rename (nothing runs)"   # shown only in plans that rename runs
MIN_GROUP = 3           # runs sharing their reasons shown as one entry (two keep their lines)
LISTED_KEYS = 3         # keys a group of runs lists before "…and N more"
MAX_SUMMARY = 160       # the longest one-line summary of a group's keys
MAX_DIFF_VARIANTS = 3   # a group whose runs' diffs differ more ways shows one of them


def summary_line(result: PlanResult) -> str:
    c = result.changes.counts()
    moves = c[Action.MOVE]
    return (f"Plan: {c[Action.CREATE]} to create, {c[Action.REPLACE]} to replace, "
            f"{c[Action.RERUN]} to rerun, {c[Action.DESTROY]} to destroy, "
            + (f"{moves} to rename, " if moves else "") + f"{c[Action.NOOP]} unchanged.")


def plan_text(result: PlanResult, show_unchanged: bool = False) -> str:
    """The plan as text: legend, runs grouped by stage with reasons and diffs, summary."""
    plan, changes = result.plan, result.changes
    lines = [f"runspec plan for {plan.name} ({plan.manifest_path})"]
    for glob in changes.unmatched:
        lines.append(f"Warning: {glob} matched no run (keys look like {plan.runs[0].key if plan.runs else '…'}; "
                     "in globs [ ] is a character class: write [[] for a literal [)")
    stale = changes.stale
    if not changes.has_changes and not plan.deferred and not stale:
        lines += ["", "No changes. " + _unchanged_note(result), summary_line(result)]
        return "\n".join(lines) + "\n"
    lines += [LEGEND + (MOVE_LEGEND if changes.count(Action.MOVE) else ""), ""]
    stages = list(dict.fromkeys([*plan.stages, *(c.stage for c in changes.changes)]))
    for stage in stages:
        members = [c for c in changes.changes if c.stage == stage]
        shown = [c for c in members if show_unchanged or c.action != Action.NOOP or c.stale]
        hidden = len(members) - len(shown)
        if not shown:
            continue
        backend = plan.stages.get(stage, "gone from the manifest")
        lines.append(f"Stage {stage} ({backend}): {len(members)} run{'s' * (len(members) != 1)}"
                     + (f", {hidden} unchanged hidden" if hidden else ""))
        lines += _stage_lines(shown, plan.name)
        lines.append("")
    for stage, why in plan.deferred.items():
        lines.append(f"Stage {stage}: planned later — it {why}")
    launch_lines = _launch_lines(result) + _adaptive_lines(result)
    lines += launch_lines + ([""] if launch_lines else [])
    if result.estimate is not None:
        lines += describe_estimate(result.estimate) + [""]
    if stale:
        lines.append(f"{_runs(len(stale))} kept on older code (recipe.on_code_change = "
                     '"keep"); `--replace GLOB` runs them on the current code.')
    lines.append(summary_line(result))
    return "\n".join(lines) + "\n"


def _launch_lines(result: PlanResult) -> list[str]:
    """How apply will start the runs of each stage."""
    lines = []
    by_stage: dict[str, list] = {}
    for launch in result.launches:
        by_stage.setdefault(launch.stage, []).append(launch)
    for stage, launches in by_stage.items():
        after = result.plan.needs.get(stage) or []
        waits = f", after {', '.join(after)} succeeds" if after else ""
        how = backend_for(launches[0].backend).describe_launches(launches)
        lines.append(f"Stage {stage}: {how}{waits}")
    return lines


def _adaptive_lines(result: PlanResult) -> list[str]:
    """For each stage with campaign.until: the cycles planned now, and what it may add."""
    lines = []
    for stage, adaptive in result.plan.adaptive.items():
        counts = sorted({p.planned for p in adaptive.points})
        now = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        target = (f"until {adaptive.metric}'s 95% CI is within ±{adaptive.rel_ci:.3g} of its "
                  "mean")
        if adaptive.done:
            lines.append(f"Stage {stage}: {target}: done, {adaptive.stop_reason()}")
            continue
        lines.append(f"Stage {stage}: cycles {target}: {now} per point planned now "
                     f"(at least {adaptive.minimum}), up to {adaptive.max_cycles}: at most "
                     f"{_runs(adaptive.possible_extra)} more, added by apply as results come in")
    return lines


def _runs(count: int) -> str:
    return f"{count} run{'s' * (count != 1)}"


def _stage_lines(shown: list[Change], manifest: str) -> list[str]:
    """A stage's changes: runs with the same action and reasons as ONE entry (a count, the
    keys in short, the reasons, one diff), in the order of their first run; runs whose
    reasons fewer than ``MIN_GROUP`` runs share (and every create or unchanged run) on
    their own lines. Runs kept on older code are always one entry, however few."""
    # a run without reasons is an entry of its own (no list for each of 100,000 creates)
    groups: dict[Any, Change | list[Change]] = {}
    for change in shown:
        same = (change.action, change.stale, tuple(change.reasons)) if change.reasons else None
        if same is None:
            groups[id(change)] = change
        elif same in groups:
            cast(list, groups[same]).append(change)
        else:
            groups[same] = [change]
    lines = []
    for group in groups.values():
        if isinstance(group, Change):
            lines += _change_lines(group)
            continue
        if len(group) < MIN_GROUP and not group[0].stale:
            for change in group:
                lines += _change_lines(change)
            continue
        variants: dict[tuple[str, ...], list[Change]] = {}
        for change in group:
            variants.setdefault(tuple(change.diff), []).append(change)
        if len(variants) <= MAX_DIFF_VARIANTS:
            for runs in variants.values():
                if len(runs) < MIN_GROUP and not runs[0].stale:
                    for change in runs:
                        lines += _change_lines(change)
                else:
                    lines += _group_lines(runs, manifest, list(runs[0].diff))
        else:
            lines += _group_lines(group, manifest, list(group[0].diff), varied=True)
    return lines


def _group_lines(group: list[Change], manifest: str, diff: list[str],
                 varied: bool = False) -> list[str]:
    first = group[0]
    reasons = [r for r in first.reasons if r != KEPT]
    what = f"{_runs(len(group))} kept on older code (recipe.on_code_change = \"keep\")" \
        if first.stale else _runs(len(group))
    lines = [f"  {SYMBOLS[first.action]:>3} {what}: " + "; ".join(reasons)]
    lines += [f"        {line}" for line in key_summary(group, manifest)]
    if varied:
        lines.append(f"        # the runs' diffs differ; this is {first.key}'s")
    lines += [f"        {line}" for line in diff]
    return lines


def key_summary(group: list[Change], manifest: str) -> list[str]:
    """The keys of a group of runs in short: one brace pattern when they are every
    combination of some parameter values and slots
    (``m/train/lr={0.1,0.3},wd=0.0/{c1,c2}``), else the first few and how many more."""
    keys = [c.key for c in group]
    pattern = _brace_pattern(group, manifest)
    if pattern is not None and len(pattern) <= MAX_SUMMARY:
        return [pattern]
    if len(keys) <= LISTED_KEYS + 1:
        return keys
    return [*keys[:LISTED_KEYS], f"…and {len(keys) - LISTED_KEYS} more"]


def _brace_pattern(group: list[Change], manifest: str) -> str | None:
    stages = {c.stage for c in group}
    if len(stages) != 1:
        return None
    stage = stages.pop()
    values: dict[str, dict[str, None]] = {}
    slots: dict[str, None] = {}
    names = None
    for change in group:
        source = change.run if change.run is not None else change.member
        if source is None or change.key != f"{manifest}/{stage}/{point_label(source.point)}/{source.slot}":
            return None  # a key this cannot rebuild (an old state's): list the keys
        if names is None:
            names = sorted(source.point)
        elif sorted(source.point) != names:
            return None
        for name in names:
            values.setdefault(name, {})[format_value(source.point[name])] = None
        slots[source.slot] = None
    combinations = len(slots)
    for found in values.values():
        combinations *= len(found)
    if combinations != len(set(c.key for c in group)):
        return None

    def braced(items: dict[str, None]) -> str:
        return next(iter(items)) if len(items) == 1 else "{" + ",".join(items) + "}"

    label = ",".join(f"{name}={braced(values[name])}" for name in names or []) or SINGLE_POINT
    return f"{manifest}/{stage}/{label}/{braced(slots)}"


def _change_lines(change: Change) -> list[str]:
    symbol = SYMBOLS[change.action]
    warmup = "   (warmup)" if change.run is not None and change.run.warmup else ""
    lines = [f"  {symbol:>3} {change.key}{warmup}"]
    lines += [f"        # {reason}" for reason in change.reasons]
    lines += [f"        {line}" for line in change.diff]
    return lines


def _unchanged_note(result: PlanResult) -> str:
    count = result.changes.count(Action.NOOP)
    return (f"The {count} planned run{'s' * (count != 1)} "
            f"match{'es' * (count == 1)} what was applied."
            if count else "Nothing is planned.")


def plan_json(result: PlanResult, include_requests: bool = True) -> dict[str, Any]:
    """The versioned machine format (also what ``--out`` saves and ``apply`` reads: by
    digests, so requests show secret-looking variables masked, as the text does)."""
    document = _document(result, include_requests)
    document["changes"] = list(document["changes"])
    return document


def write_plan_json(results: list[PlanResult], stream: TextIO) -> None:
    """What ``plan --json`` prints: ``dumps`` of each plan's ``plan_json`` (a list of them for
    several manifests), byte for byte, but each change encoded and written as it is made,
    so a 100,000-run plan never holds its whole document (1.2 GB of dicts) in memory."""
    documents = [_document(result) for result in results]
    jsontext.write(documents[0] if len(documents) == 1 else jsontext.Streamed(documents),
                   stream)
    stream.write("\n")


def write_saved_plan(result: PlanResult, apply: dict[str, Any], stream: TextIO) -> None:
    """What ``plan --out`` saves: ``dumps`` of ``plan_json`` with ``apply`` (how to re-make
    the plan) as its last key, byte for byte, each change written as it is made."""
    jsontext.write({**_document(result), "apply": apply}, stream)
    stream.write("\n")


def _document(result: PlanResult, include_requests: bool = True) -> dict[str, Any]:
    """``plan_json`` with its changes produced lazily, one at a time."""
    plan, state = result.plan, result.state
    return {
        "format": JSON_FORMAT,
        "runspec_version": __version__,
        "manifest": {"name": plan.name, "path": plan.manifest_path, "digest": plan.manifest_digest},
        "state": {"location": result.store.location, "lineage": state.lineage,
                  "serial": state.serial},
        "summary": result.changes.counts(),
        "notes": [d.to_json() for d in dict.fromkeys(plan.notes)],
        "changes": jsontext.Streamed(_change_json(c, include_requests)
                                     for c in result.changes.changes),
        "launches": [
            {"backend": launch.backend, "stage": launch.stage, "keys": launch.keys,
             "request": masked(launch.request), "files": launch.files}
            for launch in result.launches
        ],
        **({"estimate": result.estimate.to_json()} if result.estimate is not None else {}),
    }


def _change_json(c: Change, include_requests: bool) -> dict[str, Any]:
    return {"key": c.key, "stage": c.stage, "action": c.action, "reasons": c.reasons,
            "digest": c.run.digest if c.run else None,
            "run_dir": c.run.run_dir if c.run else None,
            **({"from": c.member.key} if c.action == Action.MOVE and c.member else {}),
            **({"request": masked(c.run.request)} if include_requests and c.run else {})}


def check_unique_names(results: list[PlanResult]) -> None:
    """Two manifests with one name would share state and run directories: refuse."""
    from runspec.manifest.errors import Diagnostic, ManifestError

    seen: dict[str, str] = {}
    problems = []
    for result in results:
        name, path = result.plan.name, result.plan.manifest_path
        if name in seen:
            position = result.resolved.document.value_position(("name",))
            problems.append(Diagnostic.at(position, "name", f'"{name}" is also the name of '
                                          f"{seen[name]}", "a name identifies a manifest's state "
                                          "and run directories: give each manifest its own",
                                          result.resolved.document))
        seen.setdefault(name, path)
    if problems:
        raise ManifestError(problems)


def dumps(data: Any) -> str:
    """``json.dumps(data, indent=2, ensure_ascii=False)`` and a newline, in half the time."""
    return jsontext.dumps(data) + "\n"
