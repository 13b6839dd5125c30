"""One ``runspec apply`` from start to end, callable from Python as well as the CLI.

Accepts a manifest or a saved plan (``plan --out plan.json``); a saved plan is applied only
if it still matches the manifest and the state it was made from.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runspec.apply.engine import Applier, prepare
from runspec.apply.noop import quick_no_op
from runspec.apply.outcome import ApplyAborted, ApplyOptions, ApplyReport, Reporter
from runspec.backends import backend_for
from runspec.measure.files import disk_full, os_reason, write_streamed_atomic
from runspec.plan import report
from runspec.plan.diff import Action
from runspec.plan.inputs import recorded
from runspec.plan.pipeline import PlanResult, Selection, store_for
from runspec.plan.resolve import resolve
from runspec.state.lock import HANDOFF_ENV, lock_path, read_info
from runspec.state.status import ACTIVE
from runspec.state.store import StateError

SAVED_FORMAT = report.JSON_FORMAT


def is_saved_plan(path: Path) -> bool:
    return path.suffix == ".json"


def load_saved(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ApplyAborted(f"cannot read the saved plan {path}: {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != SAVED_FORMAT or "apply" not in saved:
        raise ApplyAborted(f"{path} is not a saved runspec plan (make one with "
                           "`runspec plan MANIFEST --out plan.json`)")
    return saved


def stale_reasons(saved: dict[str, Any], result: PlanResult) -> list[str]:
    """Why a saved plan no longer describes what apply would do (empty when it still does)."""
    reasons = []
    if saved["manifest"]["digest"] != result.plan.manifest_digest:
        reasons.append("the manifest changed since the plan was saved")
    if saved["state"]["lineage"] not in (None, result.state.lineage):
        reasons.append("the state belongs to another lineage")
    now = [(c.key, c.action, c.run.digest if c.run else None) for c in result.changes.changes
           if c.action != Action.NOOP]
    then = [(c["key"], c["action"], c["digest"]) for c in saved["changes"] if c["action"] != Action.NOOP]
    if now != then:
        reasons.append(f"the state moved on (serial {saved['state']['serial']} → "
                       f"{result.state.serial}): the changes are no longer the same")
    return reasons


def run_apply(target: Path, selection: Selection, options: ApplyOptions,
              confirm: Callable[[str], bool], reporter: Reporter,
              quick: bool = True) -> ApplyReport:
    """Plan under the state lock, show and confirm, launch, record. Raises ApplyAborted,
    ManifestError, StateError (also for a full disk wherever it strikes: the state file is
    written atomically, so it is intact either way). ``quick``: first try the quick no-op
    (``apply.noop``), which the CLI tries itself before importing all this."""
    try:
        if quick:
            outcome = quick_no_op(target, selection, options, reporter.event)
            if outcome is not None:
                return outcome
        return _run_apply(target, selection, options, confirm, reporter)
    except OSError as error:
        raise _stopped(error, Path(error.filename) if error.filename else None) from None


def _stopped(error: OSError, where: Path | None) -> StateError:
    """An OSError no step turned into its own message (a full disk, mostly), as one."""
    fix = (f"free space on the file system that holds {where.parent if where else 'it'}"
           if disk_full(error) else "fix that")
    return StateError(f"apply stopped{f' at {where}' if where else ''}: {os_reason(error)}",
                      f"{fix}, then apply again; the state is intact (it is written "
                      "atomically) and `runspec status` shows what was launched")


def _run_apply(target: Path, selection: Selection, options: ApplyOptions,
               confirm: Callable[[str], bool], reporter: Reporter) -> ApplyReport:
    if target.is_dir():
        raise ApplyAborted(f"{target} is a directory: apply takes one manifest (or a saved "
                           "plan.json) — e.g. `for m in specs/*.run.toml; do runspec apply "
                           '"$m" --yes; done`')
    saved = None
    if is_saved_plan(target):
        saved = load_saved(target)
        selection = Selection(**saved["apply"]["selection"])
        target = Path(saved["apply"]["manifest_file"])
    resolved = resolve(target, selection.sets)
    inputs = recorded(resolved, selection.sets) if selection.unfiltered else None
    if saved is None and inputs is not None and _unchanged_since_last_apply(resolved,
                                                                             inputs.digest):
        return ApplyReport(no_changes=True)
    result, lock = prepare(resolved, selection)
    try:
        if saved is not None:
            reasons = stale_reasons(saved, result)
            if reasons:
                raise ApplyAborted("refusing a stale plan: " + "; ".join(reasons)
                                   + " — run `runspec plan` again")
        destroys_to_do = [c for c in result.changes.changes if c.action == Action.DESTROY
                          and c.member is not None  # a destroy is always of a member
                          and (options.prune or c.member.status not in ACTIVE)]
        require_clean(result)
        applier = Applier(result, options, reporter, inputs, selection)
        renames = [c for c in result.changes.changes if c.moved]
        if not result.changes.to_submit() and not destroys_to_do and not renames:
            if options.wait and applier.active_runs():
                applier.wait_for_active()  # nothing to launch, but runs to follow
                applier.remember_inputs()
                return applier.report
            applier.remember_inputs()
            return ApplyReport(no_changes=True)
        if saved is None and not confirm(report.plan_text(result)):
            raise ApplyAborted("apply cancelled; nothing was launched")
        if options.detach and any(
                backend_for(result.plan.stages[c.stage]).capabilities.attached
                for c in result.changes.to_submit()):
            return detach_local(selection, result, options)
        return applier.run()
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def require_clean(result: PlanResult) -> None:
    """``measure.require_clean``: refuse to launch anything from a dirty git tree."""
    if not any(stage.measure.require_clean for stage in result.resolved.stages):
        return
    if not result.changes.to_submit():
        return
    from runspec.measure.provenance import git_state

    git = git_state(result.plan.root)
    if git is None:
        raise ApplyAborted("measure.require_clean is set but the manifest is not in a git "
                           "repository, so cleanliness cannot be checked")
    if git["dirty"]:
        raise ApplyAborted("measure.require_clean: the git tree has uncommitted changes; "
                           "commit or stash them, then apply (nothing was launched)")


HANDOFF_TIMEOUT_S = 60.0  # the background apply re-reads and re-plans before it starts


def detach_local(selection: Selection, result: PlanResult, options: ApplyOptions
                 ) -> ApplyReport:
    """Local runs without waiting: the confirmed plan is saved and applied by a background
    process (its own session, so closing the terminal does not stop it). Being a saved plan,
    it is refused there if anything moved on in between: what runs is what was confirmed.
    The state lock is handed over, never released in between, and this returns once the
    background apply holds it and has recorded its first runs, so ``status`` shows them."""
    import shlex
    import subprocess
    import sys
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = result.plan.root / ".runspec"
    plan_file = base / "plans" / f"{result.plan.name}-{stamp}.json"
    log = base / "logs" / f"apply-{result.plan.name}-{stamp}.log"
    try:
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        write_saved_plan(result, selection, plan_file)
    except OSError as error:  # written atomically: nothing of it is left
        raise _stopped(error, plan_file) from None
    state_file = result.store.local_path
    ours = read_info(state_file)
    before = _signature(state_file)
    argv = [sys.executable, "-m", "runspec", "apply", str(plan_file)]
    argv += ["--prune"] if options.prune else []
    argv += ["--wait"] if options.wait else []
    env = {**os.environ, HANDOFF_ENV: ours.id} if ours else None
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + HANDOFF_TIMEOUT_S
    while time.monotonic() < deadline:
        holder = read_info(state_file)
        taken = holder is None or holder.pid == process.pid
        if taken and (_signature(state_file) != before or holder is None):
            break
        if process.poll() is not None:
            if holder is not None and holder.pid == process.pid:
                break  # it ended already, successfully or not: its log says
            tail = "".join(log.read_text(encoding="utf-8", errors="replace")
                           .splitlines(keepends=True)[-5:])
            raise ApplyAborted(f"the background apply ended before it started any run "
                               f"(exit code {process.returncode}); its log {log}:\n{tail}")
        time.sleep(0.05)
    detached = ApplyReport(detached_log=str(log), detached_pid=process.pid,
                           detached_manifest=shlex.quote(result.resolved.document.display
                                                       or str(result.resolved.document.path)))
    detached.submitted = [c.key for c in result.changes.to_submit()]
    return detached


def _signature(path: Path) -> tuple[int, int] | None:
    """Changes whenever the state is written (atomically: a new inode each time)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _unchanged_since_last_apply(resolved, inputs: str) -> bool:
    """The fast path: same inputs as the last complete apply, every run succeeded, and no
    apply holding the lock. Reads the state only (one read and one hash when it carries a
    checksum; a damaged state raises StateError); no backend is asked anything."""
    store = store_for(resolved)
    if store.is_local and lock_path(store.local_path).exists():
        return False
    recorded, complete = store.read_summary()
    return complete and recorded == inputs


def saved_plan_json(result: PlanResult, selection: Selection) -> dict[str, Any]:
    """What ``plan --out`` writes (``write_saved_plan``), as one document: the plan plus how
    to re-make it for the staleness check."""
    return {**report.plan_json(result), "apply": _apply_json(result, selection)}


def write_saved_plan(result: PlanResult, selection: Selection, path: Path) -> None:
    """``report.dumps(saved_plan_json(...))`` written to ``path`` change by change (a
    100,000-run plan never holds its document in memory), atomically: on any failure the
    file that was at ``path`` is intact and nothing of the new one is left. Raises OSError
    (``save_error`` says it in words)."""
    apply = _apply_json(result, selection)
    write_streamed_atomic(path, lambda stream: report.write_saved_plan(result, apply, stream),
                          mode=_default_mode())


def save_error(error: OSError, path: Path) -> StateError:
    """Why ``plan --out`` could not save to ``path``, and what to do, as one line."""
    where = path.parent
    if disk_full(error):
        fix = f"free space on the file system that holds {where}, then plan again"
    elif error.errno == errno.ENOENT:
        fix = f"{where} does not exist: create it, or give --out a path in a directory"
    elif error.errno == errno.ENOTDIR:
        fix = f"{where} is not a directory (a file is in its way): give --out another path"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"{where} cannot be written: give --out a path in a directory you can write"
    else:
        fix = "give --out another path"
    return StateError(f"cannot save the plan to {path}: {os_reason(error)}",
                      f"{fix}; a file that was there is unchanged")


def _apply_json(result: PlanResult, selection: Selection) -> dict[str, Any]:
    return {"manifest_file": str(Path(result.resolved.document.path).resolve()),
            "selection": {"targets": selection.targets, "excludes": selection.excludes,
                          "replace": selection.replace, "sets": selection.sets}}


def _default_mode() -> int:
    """The permissions a new file gets (as ``write_text`` made the saved plan): 0666 less
    the umask, which can only be read by setting it."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask
