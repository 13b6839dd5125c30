"""Plan × state → changes, with the reason for each (DESIGN §4).

Per run key: ``create`` (new), ``replace`` (digest changed), ``rerun`` (failed, cancelled
or lost last time), ``destroy`` (gone from the manifest), ``noop``. Reasons name what
changed (``config changed: optim.lr 0.001 → 0.0003``) and carry a unified diff.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runspec.ir import Plan, Run
from runspec.manifest.checks import SECRET_NAME
from runspec.plan import yamltext
from runspec.plan.dotted import flatten
from runspec.plan.identity import format_value
from runspec.state.status import RERUN, RunStatus
from runspec.state.store import Member, State


class Action(StrEnum):
    """What apply does with one run (Terraform's actions, plus rerun)."""

    CREATE = "create"     # a new run
    REPLACE = "replace"   # its request changed: run it again
    RERUN = "rerun"       # failed, cancelled or lost last time: run it again
    DESTROY = "destroy"   # it left the manifest
    NOOP = "noop"         # unchanged


ACTIONS = tuple(Action)
SUBMITTING = frozenset({Action.CREATE, Action.REPLACE, Action.RERUN})
MAX_DIFF_LINES = 40
MASK = "***"
NOT_SECRET = {"RUNSPEC_RUN_KEY"}  # the run's key, which runspec sets itself


@dataclass
class Change:
    key: str
    stage: str
    action: Action
    reasons: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    run: Run | None = None
    member: Member | None = None


@dataclass
class Changes:
    changes: list[Change]
    unmatched: list[str] = field(default_factory=list)   # --target / --exclude globs that matched nothing

    def count(self, action: Action) -> int:
        return sum(c.action == action for c in self.changes)

    @property
    def has_changes(self) -> bool:
        return any(c.action != Action.NOOP for c in self.changes)

    def to_submit(self) -> list[Change]:
        return [c for c in self.changes if c.action in SUBMITTING]


def _selected(key: str, targets: list[str], excludes: list[str]) -> bool:
    if targets and not any(fnmatch.fnmatchcase(key, g) for g in targets):
        return False
    return not any(fnmatch.fnmatchcase(key, g) for g in excludes)


def diff_plan(plan: Plan, state: State, targets: list[str] | None = None,
              excludes: list[str] | None = None, replace: list[str] | None = None) -> Changes:
    targets, excludes, replace = targets or [], excludes or [], replace or []
    changes: list[Change] = []
    planned = set()
    for run in plan.runs:
        planned.add(run.key)
        if not _selected(run.key, targets, excludes):
            continue
        member = state.members.get(run.key)
        if member is None:
            changes.append(Change(run.key, run.stage, Action.CREATE, run=run))
        elif member.digest != run.digest:
            reasons = describe_change(member.request, run.request)
            changes.append(Change(run.key, run.stage, Action.REPLACE, reasons,
                                  request_diff(member.request, run.request), run, member))
        elif any(fnmatch.fnmatchcase(run.key, g) for g in replace):
            changes.append(Change(run.key, run.stage, Action.REPLACE, ["forced by --replace"],
                                  run=run, member=member))
        elif member.status in RERUN:
            changes.append(Change(run.key, run.stage, Action.RERUN, [f"{member.status} last time"],
                                  run=run, member=member))
        else:
            changes.append(Change(run.key, run.stage, Action.NOOP, run=run, member=member))
    gone = [m for k, m in state.members.items()
            if k not in planned and _selected(k, targets, excludes)]
    changes = _pair_moved_points(changes, gone)
    for member in gone:
        reasons = ["no longer in the manifest"]
        if member.status in (RunStatus.SUBMITTED, RunStatus.RUNNING):
            reasons.append(f"{member.status}: cancelled only with --prune")
        changes.append(Change(member.key, member.stage, Action.DESTROY, reasons, member=member))
    order = {name: index for index, name in enumerate(plan.stages)}
    changes.sort(key=lambda c: (order.get(c.stage, len(order)), c.action == Action.DESTROY))
    known = planned | set(state.members)
    unmatched = [f"--target {g}" for g in targets if not fnmatch.filter(known, g)]
    unmatched += [f"--exclude {g}" for g in excludes if not fnmatch.filter(known, g)]
    return Changes(changes, unmatched)


def _pair_moved_points(changes: list[Change], gone: list[Member]) -> list[Change]:
    """A sweep value edited in place (lr 3e-4 → 1e-4) changes the run key; show the old run
    and its successor as one replace, not a destroy plus a create. Pairs runs of the same
    stage and slot whose points differ in exactly one parameter; ``gone`` keeps the rest."""
    result = []
    for change in changes:
        if change.action != Action.CREATE or change.run is None:
            result.append(change)
            continue
        run = change.run
        match = next((m for m in gone if m.stage == run.stage and m.slot == run.slot
                      and m.point.keys() == run.point.keys()
                      and sum(m.point[k] != run.point[k] for k in run.point) == 1), None)
        if match is None:
            result.append(change)
            continue
        gone.remove(match)
        moved = next(k for k in run.point if match.point[k] != run.point[k])
        reasons = [f"sweep changed: {moved} {_show(match.point[moved])} → "
                   f"{_show(run.point[moved])} (was {match.key})"]
        # The key, and so the run directory, config path and RUNSPEC_RUN_* variables, moved
        # with the point: only report what changed beyond that.
        reasons += [r for r in describe_change(match.request, run.request)
                    if r.startswith(("resources", "settings", "secrets", "working", "container",
                                     "mounts", "startup", "executor"))]
        moves = ((match.run_dir, run.run_dir), (match.key, run.key))
        result.append(Change(run.key, run.stage, Action.REPLACE, reasons,
                             request_diff(match.request, run.request, moves), run, match))
    return result


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human reasons: which config keys, env variables, resources or command changed."""
    reasons = []
    old_config, new_config = flatten(old.get("config") or {}), flatten(new.get("config") or {})
    edits = [f"{k} {_show(old_config.get(k))} → {_show(new_config.get(k))}"
             for k in sorted(old_config.keys() | new_config.keys())
             if old_config.get(k, _MISSING) != new_config.get(k, _MISSING)]
    if edits:
        reasons.append("config changed: " + ", ".join(edits))
    for section in ("resources", "settings"):
        before, after = flatten(old.get(section) or {}), flatten(new.get(section) or {})
        edits = [f"{k} {_show(before.get(k))} → {_show(after.get(k))}"
                 for k in sorted(before.keys() | after.keys())
                 if before.get(k, _MISSING) != after.get(k, _MISSING)]
        if edits:
            reasons.append(f"{section} changed: " + ", ".join(edits))
    before_inputs, after_inputs = old.get("inputs") or {}, new.get("inputs") or {}
    for name in sorted(before_inputs.keys() | after_inputs.keys()):
        was, now = before_inputs.get(name, {}), after_inputs.get(name, {})
        if was != now:
            old_label = (was.get("version") or "(none)").rsplit(":", 1)[-1]
            new_label = (now.get("version") or "(none)").rsplit(":", 1)[-1]
            detail = f"{old_label} → {new_label}" if old_label != new_label else "content changed"
            reasons.append(f"input {name}: {detail}")
    names = sorted(k for k in (old.get("env") or {}).keys() | (new.get("env") or {}).keys()
                   if (old.get("env") or {}).get(k) != (new.get("env") or {}).get(k))
    if names:
        reasons.append("env changed: " + ", ".join(names))
    for part, label in (("argv", "command"), ("code_digest", "recipe script edited"),
                        ("secrets", "secrets"), ("cwd", "working directory"),
                        ("container_image", "container image"), ("mounts", "mounts"),
                        ("startup_commands", "startup commands"), ("executor", "executor")):
        if old.get(part) != new.get(part):
            reasons.append(label if part == "code_digest" else f"{label} changed")
    return reasons or ["request changed"]


_MISSING = object()


def _show(value: Any) -> str:
    return "(unset)" if value is None else format_value(value)


def masked(request: Any) -> Any:
    """``request`` as plan prints it: the values of secret-looking variables (``HF_TOKEN``,
    which validate warns about) written ``***``. The rendered files, which are what is
    submitted, keep them."""
    if isinstance(request, list):
        return [masked(item) for item in request]
    if not isinstance(request, dict):
        return request
    out = {}
    for key, value in request.items():
        if key in ("env", "env_vars") and isinstance(value, dict):
            value = {name: MASK if isinstance(name, str) and SECRET_NAME.search(name)
                     and name not in NOT_SECRET and value[name] not in ("", None) else value[name]
                     for name in value}
        out[key] = masked(value)
    return out


def request_diff(old: dict[str, Any], new: dict[str, Any],
                 moves: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """A unified diff (no context) of the rendered request, shortened for the terminal.
    ``moves`` (old → new text, e.g. the run directory of a run whose key moved) are applied
    to the old side first, so the diff shows what changed beyond them."""
    text = yamltext.dump(masked(old)) if old else ""
    for was, now in moves:
        if was:
            text = text.replace(was, now)
    before = text.splitlines()
    after = yamltext.dump(masked(new)).splitlines()
    lines = [line for line in difflib.unified_diff(before, after, "applied", "planned", n=0,
                                                   lineterm="")]
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"… {len(lines) - MAX_DIFF_LINES} more lines"]
    return lines
