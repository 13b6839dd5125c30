"""Plan × state → changes, with the reason for each.

Per run key: ``create`` (new), ``replace`` (digest changed), ``rerun`` (failed, cancelled
or lost last time), ``destroy`` (gone from the manifest), ``noop``. Reasons name what
changed (``config changed: optim.lr 0.001 → 0.0003``) and carry a unified diff: of the
request, and for an edited recipe script of the script itself (see ``plan.source``).

A stage with ``recipe.on_code_change = "keep"`` keeps its succeeded runs whose only change
is the script's code: they plan as ``noop`` marked ``stale`` (kept on older code), and a
downstream run whose only change is that its upstream runs were kept is kept with them.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from dataclasses import replace as replace_member
from enum import StrEnum
from itertools import chain
from typing import Any

from runspec.ir import Plan, Run
from runspec.manifest.checks import SECRET_NAME
from runspec.plan import yamltext
from runspec.plan.dotted import flatten
from runspec.plan.identity import (
    FORMER_SINGLE_POINT,
    SINGLE_POINT,
    canonical,
    digest,
    format_value,
    former_key,
)
from runspec.plan.source import CODE_FIELDS, SOURCE_FIELDS, Sources, retain, without
from runspec.state.status import RERUN, RunStatus
from runspec.state.store import Member, State


class Action(StrEnum):
    """What apply does with one run (Terraform's actions, plus rerun)."""

    CREATE = "create"     # a new run
    REPLACE = "replace"   # its request changed: run it again
    RERUN = "rerun"       # failed, cancelled or lost last time: run it again
    DESTROY = "destroy"   # it left the manifest
    MOVE = "move"         # renamed: its record takes the new key, nothing runs
    NOOP = "noop"         # unchanged


ACTIONS = tuple(Action)
SUBMITTING = frozenset({Action.CREATE, Action.REPLACE, Action.RERUN})
MAX_DIFF_LINES = 40
MASK = "***"
NOT_SECRET = {"RUNSPEC_RUN_KEY"}  # the run's key, which runspec sets itself
KEPT = 'kept on older code (recipe.on_code_change = "keep")'
RENAMED = (f'renamed: a point without sweep parameters is now "{SINGLE_POINT}", not '
           f'"{FORMER_SINGLE_POINT}"; nothing runs, and the new run directory links to the old')


@dataclass
class Change:
    key: str
    stage: str
    action: Action
    reasons: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    run: Run | None = None
    member: Member | None = None
    stale: bool = False   # a noop kept on older code (recipe.on_code_change = "keep")
    # Unchanged but for text that moved with renamed runs (see Changes.moves): apply then
    # records the planned request, so the next plan compares like with like.
    moved: bool = False


@dataclass
class Changes:
    changes: list[Change]
    unmatched: list[str] = field(default_factory=list)   # --target / --exclude globs that matched nothing

    def count(self, action: Action) -> int:
        return sum(c.action == action for c in self.changes)

    def counts(self) -> dict[Action, int]:
        """Runs per action, in ``ACTIONS`` order: one pass over the changes, not one each."""
        found = Counter(c.action for c in self.changes)
        return {action: found[action] for action in ACTIONS}

    @property
    def has_changes(self) -> bool:
        return any(c.action != Action.NOOP for c in self.changes)

    def to_submit(self) -> list[Change]:
        return [c for c in self.changes if c.action in SUBMITTING]

    @property
    def stale(self) -> list[Change]:
        """Runs kept on older code (``recipe.on_code_change = "keep"``)."""
        return [c for c in self.changes if c.stale]


def _selected(key: str, targets: list[str], excludes: list[str]) -> bool:
    if targets and not any(fnmatch.fnmatchcase(key, g) for g in targets):
        return False
    return not any(fnmatch.fnmatchcase(key, g) for g in excludes)


def diff_plan(plan: Plan, state: State, targets: list[str] | None = None,
              excludes: list[str] | None = None, replace: list[str] | None = None,
              keep_code: Collection[str] = ()) -> Changes:
    """``keep_code``: the stages whose ``recipe.on_code_change`` is ``"keep"``."""
    targets, excludes, replace = targets or [], excludes or [], replace or []
    sources = Sources.of(chain((r.request for r in plan.runs),
                               (m.request for m in state.members.values())))
    changes: list[Change] = []
    planned = set()
    kept: set[str] = set()              # stages with runs kept at their stored digest
    after: dict[str, list[str]] = {}    # stage → its runs' digests once applied
    upstream: dict[str, str] = {}       # stage with kept runs → the digest downstream sees
    renamed = _renamed(plan, state, targets, excludes)
    moves = _moves(plan, state, renamed)
    for run in plan.runs:
        planned.add(run.key)
        member = state.members.get(run.key)
        if member is None and run.key in renamed:
            member = state.members[renamed[run.key]]
        applied = run.digest
        if _selected(run.key, targets, excludes):
            change = _change(run, member, _as_applied(run, kept, after, upstream), sources,
                             run.stage in keep_code and not _forced(run.key, replace), replace,
                             moves)
            changes.append(change)
            if member is not None and change.action in (Action.NOOP, Action.MOVE):
                applied = member.digest
                if member.digest != run.digest:
                    kept.add(run.stage)
        after.setdefault(run.stage, []).append(applied)
    claimed = set(renamed.values())
    gone = [m for k, m in state.members.items()
            if k not in planned and k not in claimed and _selected(k, targets, excludes)]
    changes = _pair_moved_points(changes, gone, sources)
    for member in gone:
        reasons = ["no longer in the manifest"]
        if member.status in (RunStatus.SUBMITTED, RunStatus.RUNNING):
            reasons.append(f"{member.status}: cancelled only with --prune")
        changes.append(Change(member.key, member.stage, Action.DESTROY, reasons, member=member))
    order = {name: index for index, name in enumerate(plan.stages)}
    changes.sort(key=lambda c: (order.get(c.stage, len(order)), c.action == Action.DESTROY))
    submitted = [c for c in changes if c.action in SUBMITTING]
    replaced = {c.key for c in changes if c.action in SUBMITTING or c.action == Action.DESTROY}
    replaced |= {c.member.key for c in submitted if c.member is not None}
    retain([m.request for k, m in state.members.items() if k not in replaced],
           [c.run.request for c in submitted if c.run is not None], sources)
    known = planned | set(state.members)
    unmatched = [f"--target {g}" for g in targets if not fnmatch.filter(known, g)]
    unmatched += [f"--exclude {g}" for g in excludes if not fnmatch.filter(known, g)]
    return Changes(changes, unmatched)


def _renamed(plan: Plan, state: State, targets: list[str],
             excludes: list[str]) -> dict[str, str]:
    """Planned key → the key its run is stored under, for runs stored under the name an
    older runspec gave them (see ``identity.former_key``) and not under their own."""
    renamed: dict[str, str] = {}
    if not state.members:
        return renamed
    for run in plan.runs:
        if run.key in state.members:
            continue
        former = former_key(run.key)
        if former and former in state.members and _selected(run.key, targets, excludes):
            renamed[run.key] = former
    return renamed


def _moves(plan: Plan, state: State, renamed: dict[str, str]) -> list[tuple[str, str]]:
    """``(old text, new text)`` for each renamed run: its run directory, then its key (a
    directory contains its key, so it goes first). A stored request that differs from its
    planned one only by these is unchanged: its runs, and those reading their directories."""
    if not renamed:
        return []
    by_key = plan.by_key()
    dirs = [(state.members[old].run_dir, by_key[new].run_dir)
            for new, old in renamed.items() if state.members[old].run_dir]
    return dirs + [(old, new) for new, old in renamed.items()]


def moved(data: Any, moves: list[tuple[str, str]]) -> Any:
    """``data`` (a stored request) with the moves' old text replaced by the new."""
    text = canonical(data)
    for was, now in moves:
        text = text.replace(canonical(was)[1:-1], canonical(now)[1:-1])
    return json.loads(text)


def _forced(key: str, replace: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, g) for g in replace)


def _as_applied(run: Run, kept: set[str], after: dict[str, list[str]],
                upstream: dict[str, str]) -> dict[str, Any]:
    """The run's request with its ``upstream`` digests as they will be once applied: an
    upstream run kept on older code keeps its digest, so a downstream run whose only change
    is that digest is unchanged (it consumes what the kept run produced). ``upstream``
    caches the digest per stage (plans list a stage's runs after those of its needs)."""
    needs = run.request.get("upstream")
    if not kept or not isinstance(needs, dict) or not kept.intersection(needs):
        return run.request
    for name in kept.intersection(needs):
        if name not in upstream:
            upstream[name] = digest(after.get(name, []))
    return {**run.request, "upstream": {name: upstream.get(name, value) if name in kept
                                        else value for name, value in needs.items()}}


def _change(run: Run, member: Member | None, request: dict[str, Any], sources: Sources,
            keep_code: bool, replace: list[str], moves: list[tuple[str, str]]) -> Change:
    """One planned run against its stored self: under its own key, or under the name an
    older runspec gave it (then an unchanged run is a ``move``). ``request``: the run's
    request as applied (see ``_as_applied``); ``keep_code``: its stage keeps runs on older
    code; ``moves``: text that moves with renamed runs, which alone is no change."""
    if member is None:
        return Change(run.key, run.stage, Action.CREATE, run=run)
    stored = member
    if moves and member.digest != run.digest:
        request_moved = moved(member.request, moves)
        if request_moved != member.request:
            member = replace_member(member, request=request_moved,
                                    digest=digest(without(request_moved, SOURCE_FIELDS)))
    change = _compared(run, member, request, sources, keep_code, replace)
    change.member = stored
    change.moved = member is not stored and change.action == Action.NOOP and not change.stale
    if stored.key == run.key:
        return change
    if change.moved:
        return Change(run.key, run.stage, Action.MOVE, [RENAMED], run=run, member=stored,
                      moved=True)
    change.reasons = [f"renamed from {stored.key}", *change.reasons]
    return change


def _compared(run: Run, member: Member, request: dict[str, Any], sources: Sources,
              keep_code: bool, replace: list[str]) -> Change:
    unchanged = member.digest == run.digest or (
        request is not run.request
        and digest(without(member.request, SOURCE_FIELDS)) == digest(without(request, SOURCE_FIELDS)))
    if not unchanged:
        code_only = digest(without(member.request, CODE_FIELDS)) == digest(without(request, CODE_FIELDS))
        if code_only and keep_code and member.status == RunStatus.SUCCEEDED:
            reason, diff = sources.change(member.request, request)
            return Change(run.key, run.stage, Action.NOOP, [reason, KEPT], diff, run, member,
                          stale=True)
        return Change(run.key, run.stage, Action.REPLACE,
                      describe_change(member.request, request, sources),
                      request_diff(member.request, request, sources=sources), run, member)
    if _forced(run.key, replace):
        return Change(run.key, run.stage, Action.REPLACE, ["forced by --replace"],
                      run=run, member=member)
    if member.status in RERUN:
        return Change(run.key, run.stage, Action.RERUN, [f"{member.status} last time"],
                      run=run, member=member)
    return Change(run.key, run.stage, Action.NOOP, run=run, member=member)


def _pair_moved_points(changes: list[Change], gone: list[Member],
                       sources: Sources | None = None) -> list[Change]:
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
        reasons += [r for r in describe_change(match.request, run.request, sources)
                    if r.startswith(("resources", "settings", "secrets", "working", "container",
                                     "mounts", "startup", "executor", "recipe"))]
        moves = ((match.run_dir, run.run_dir), (match.key, run.key))
        result.append(Change(run.key, run.stage, Action.REPLACE, reasons,
                             request_diff(match.request, run.request, moves, sources), run,
                             match))
    return result


def describe_change(old: dict[str, Any], new: dict[str, Any],
                    sources: Sources | None = None) -> list[str]:
    """Human reasons: which config keys, env variables, resources or command changed.
    ``sources``: the script versions known (by default those the two requests carry)."""
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
    for part, label in (("argv", "command"), ("code_digest", ""),
                        ("secrets", "secrets"), ("cwd", "working directory"),
                        ("container_image", "container image"), ("mounts", "mounts"),
                        ("startup_commands", "startup commands"), ("executor", "executor")):
        if old.get(part) != new.get(part):
            if part == "code_digest":
                reasons.append((sources or Sources.of([old, new])).change(old, new)[0])
            else:
                reasons.append(f"{label} changed")
    before_upstream, after_upstream = old.get("upstream") or {}, new.get("upstream") or {}
    moved = sorted(n for n in before_upstream.keys() | after_upstream.keys()
                   if before_upstream.get(n) != after_upstream.get(n))
    if moved:
        reasons.append("upstream runs changed: " + ", ".join(moved))
    return reasons or ["request changed"]


_MISSING = object()


def _show(value: Any) -> str:
    return "(unset)" if value is None else format_value(value)


def masked(request: Any) -> Any:
    """``request`` as plan prints it: the values of secret-looking variables (``HF_TOKEN``,
    which validate warns about) written ``***``. The rendered files, which are what is
    submitted, keep them. What has nothing to mask is shared, not copied (100,000 requests
    in a plan): read the result, never change it."""
    if isinstance(request, list):
        items: list[Any] | None = None
        for index, item in enumerate(request):
            if isinstance(item, dict | list):
                new = masked(item)
                if new is not item:
                    items = items or list(request)
                    items[index] = new
        return request if items is None else items
    if not isinstance(request, dict):
        return request
    out: dict[Any, Any] | None = None
    for key, value in request.items():
        if not isinstance(value, dict | list):
            continue
        new = masked(_masked_variables(value) if key in ("env", "env_vars")
                     and isinstance(value, dict) else value)
        if new is not value:
            out = out or dict(request)
            out[key] = new
    return request if out is None else out


def _masked_variables(variables: dict[Any, Any]) -> dict[Any, Any]:
    secret = [name for name, value in variables.items()
              if isinstance(name, str) and SECRET_NAME.search(name) and name not in NOT_SECRET
              and value not in ("", None)]
    return {**variables, **dict.fromkeys(secret, MASK)} if secret else variables


def request_diff(old: dict[str, Any], new: dict[str, Any],
                 moves: tuple[tuple[str, str], ...] = (),
                 sources: Sources | None = None) -> list[str]:
    """A unified diff (no context) of the rendered request, shortened for the terminal.
    ``moves`` (old → new text, e.g. the run directory of a run whose key moved) are applied
    to the old side first, so the diff shows what changed beyond them. An edited recipe
    script is shown as a diff of the script (when both versions' text is known: see
    ``plan.source``), not of its digests."""
    text = yamltext.dump(masked(without(old, CODE_FIELDS))) if old else ""
    for was, now in moves:
        if was:
            text = text.replace(was, now)
    before = text.splitlines()
    after = yamltext.dump(masked(without(new, CODE_FIELDS))).splitlines()
    lines = [line for line in difflib.unified_diff(before, after, "applied", "planned", n=0,
                                                   lineterm="")]
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"… {len(lines) - MAX_DIFF_LINES} more lines"]
    if old.get("code_digest") != new.get("code_digest"):
        lines += (sources or Sources.of([old, new])).change(old, new)[1]
    return lines
