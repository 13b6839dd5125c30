"""The quick no-op: re-applying a manifest whose inputs have not changed since the last
settled apply stops here, before the manifest is resolved or planned.

The state records what the last settled apply's plan read (``plan.inputs``). When those
files and variables still read the same, the plan would be the same, so only the runs'
fates can differ: every run succeeded → no backend call at all; some are still queued or
running → one refresh per backend (one ``squeue`` for a Slurm stage), recorded; one of them
failed or was lost → the full apply, which reruns it. Anything this path cannot vouch for
(no record, another runspec, a lock held, a saved plan, --target/--exclude/--replace,
--wait) returns None and the full apply decides.
"""

from __future__ import annotations

import json
from pathlib import Path

from runspec.apply.outcome import ApplyOptions, ApplyReport
from runspec.plan.inputs import Inputs
from runspec.plan.selection import Selection
from runspec.state.status import ACTIVE, RERUN, RunStatus
from runspec.state.store import StateError, StateStore, verify


def quick_no_op(manifest: Path, selection: Selection, options: ApplyOptions,
                say=None) -> ApplyReport | None:
    """No changes (a report saying so), or None: plan and apply in full. ``say`` receives
    the refresh's warnings."""
    from runspec.manifest.errors import ManifestError
    from runspec.state.lock import lock_path
    from runspec.state.where import state_file_for

    if (options.wait or not selection.unfiltered or manifest.suffix == ".json"
            or manifest.is_dir()):
        return None
    try:
        location = state_file_for(manifest)
        data = location.read_bytes()
    except (ManifestError, StateError, OSError):
        return None
    if lock_path(location).exists() or verify(data) is not True:
        return None
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    inputs = Inputs.of_json(raw.get("inputs"))
    if inputs is None or inputs.digest != raw.get("fingerprint") or not inputs.unchanged(selection.sets):
        return None
    statuses = [m.get("status") for m in (raw.get("members") or {}).values()]
    if not statuses or any(s in RERUN for s in statuses):
        return None
    if all(s == RunStatus.SUCCEEDED for s in statuses):
        return ApplyReport(no_changes=True)
    return _refreshed(location, manifest, say)


def _refreshed(location: Path, manifest: Path, say) -> ApplyReport | None:
    """Refresh the active runs under the lock; None when one of them turned out failed."""
    from runspec.apply.refresh import refresh_state
    from runspec.state.lock import state_lock

    name = json.loads(location.read_bytes()).get("manifest") or manifest.stem
    store = StateStore(str(location), name)
    try:
        with state_lock(location, "apply", str(manifest)):
            state = store.read()
            if refresh_state(state, Path(manifest).resolve().parent, say):
                store.write(state)
    except StateError:
        return None  # locked meanwhile, or unreadable: the full apply says why
    if any(m.status in RERUN for m in state.members.values()):
        return None
    active = sum(m.status in ACTIVE for m in state.members.values())
    return ApplyReport(no_changes=True, still_active=active)
