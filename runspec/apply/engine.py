"""``runspec apply``: lock the state, refresh it, plan, confirm, then launch what changed.

Every submission is written to the state: an intent (with the tag that finds its job)
before anything is sent, the handle after (a Slurm array's with the next write, at the
latest when the apply ends), so a crash mid-apply neither submits twice nor forgets a
job. Local runs are started here with bounded parallelism in campaign order; Slurm and Ray launches are
handed to their backends. Nothing in the plan stages is repeated here: the requests that
``plan`` showed are the requests that are sent.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runspec import run_table
from runspec.apply.outcome import ApplyOptions, ApplyReport, Reporter
from runspec.apply.pacer import Pace, Running, pace
from runspec.apply.refresh import refresh_state
from runspec.backends import backend_for, by_backend
from runspec.backends.base import Backend, BackendError, PacedBackend, is_paced
from runspec.ir import Launch, Run
from runspec.measure.attempts import keep_previous
from runspec.measure.files import disk_full, os_reason
from runspec.measure.metrics import unreported
from runspec.plan.adaptive import Progress
from runspec.plan.diff import Action
from runspec.plan.inputs import Inputs
from runspec.plan.launches import gaps_before, one_at_a_time
from runspec.plan.pipeline import (
    PlanResult,
    Selection,
    add_estimate,
    against_state,
    store_for,
)
from runspec.plan.render import build_plan
from runspec.plan.resolve import Resolved
from runspec.plan.source import SOURCE_FIELDS
from runspec.state.control import Answer, Inbox
from runspec.state.history import History, Retired, history_location
from runspec.state.lock import state_lock
from runspec.state.status import ACTIVE, ENDED, RERUN, RunStatus, read_result
from runspec.state.store import Member, State, StateError


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Applier:
    """One apply of one manifest, holding the state lock for its whole duration."""

    def __init__(self, result: PlanResult, options: ApplyOptions, reporter: Reporter,
                 inputs: Inputs | None = None, selection: Selection | None = None):
        self.inputs = inputs
        self.selection = selection or Selection()
        self.result = result
        self.options = options
        self.reporter = reporter
        self.root = result.plan.root
        self.state: State = result.state
        self.report = ApplyReport()
        self.stopping = False
        self.sessions = contextlib.ExitStack()
        self.opened: dict[str, Any] = {}      # backend name → its open session
        self.out_of_space = False  # a run directory could not be written: launch no more
        self.contexts: set[Path] = set()  # stage directories given artifacts.context.json
        self.unsaved = False  # handles recorded since the last write (see submit_launches)
        self.inbox = Inbox(result.store.local_path) if result.store.is_local else None
        self.history = History(history_location(result.store.location))

    # -- state -------------------------------------------------------------------------------
    def save(self) -> None:
        self.result.store.write(self.state)
        self.unsaved = False

    def record(self, run: Run, status: RunStatus, handle: dict | None, backend: str,
               attempts: int | None = None) -> Member:
        previous = self.state.members.get(run.key)
        member = Member(
            key=run.key, stage=run.stage, digest=run.digest, status=status,
            handle={k: v for k, v in (handle or {}).items() if not k.startswith("_")} or None,
            request=run.request, submitted_at=_now(), point=run.point, slot=run.slot,
            run_dir=run.run_dir, backend=backend,
            attempts=attempts if attempts is not None else (previous.attempts if previous else 0) + 1,
            outputs={name: list(value) for name, value in run.outputs.items()},
            registry=self.result.resolved.artifacts_root,
        )
        self.state.members[run.key] = member
        return member

    def retire(self, leaving: list[tuple[Member, str]]) -> None:
        """Record runs about to leave the state (replaced, rerun, destroyed) in its history,
        before they leave: ``results --all`` reads them there."""
        at = _now()
        self.history.append([Retired.of(member, why, at, self.root) for member, why in leaving])

    # -- files -------------------------------------------------------------------------------
    def materialize(self, run: Run) -> Path:
        """Write the run's rendered files; keep a previous attempt's records beside them."""
        run_dir = self.root / run.run_dir
        with self.writing(f"the run directory {run_dir}", run_dir.parent):
            run_dir.mkdir(parents=True, exist_ok=True)
            keep_previous(run_dir)  # every attempt is kept (see measure.attempts)
            for name, text in self.run_files(run).items():
                (run_dir / name).write_text(text, encoding="utf-8")
            self.write_artifacts_context(run, run_dir)
        return run_dir

    def pack(self, launch: Launch, runs: list[Run]) -> None:
        """The launch's run table, from which each task writes its own run directory when
        it starts (run_table.py). A run directory that an earlier attempt left has that
        attempt's records kept aside now, so a refresh before the task starts never reads
        the old attempt's end as this one's."""
        assert launch.table is not None
        with self.writing(f"the run table {self.root / launch.table}",
                          (self.root / launch.table).parent):
            for run in runs:
                run_dir = self.root / run.run_dir
                if run_dir.is_dir():
                    keep_previous(run_dir)
                self.write_artifacts_context(run, run_dir)
            run_table.write(self.root / launch.table,
                            [(run.run_dir, self.run_files(run)) for run in runs])

    def run_files(self, run: Run) -> dict[str, str]:
        """The run's files as the plan rendered them, job.yaml with its provenance."""
        return {name: text + self.provenance_yaml() if name == "job.yaml" else text
                for name, text in run.files.items()}

    @contextlib.contextmanager
    def writing(self, what: str, directory: Path):
        """A run's files that cannot be written: a BackendError that says why and what to
        do; a full disk also stops further launches."""
        try:
            yield
        except OSError as error:
            self.out_of_space = self.out_of_space or disk_full(error)
            raise BackendError(f"cannot write {what}: {os_reason(error)}",
                               f"free space on the file system that holds {directory}, "
                               "then apply again" if disk_full(error) else
                               "check the permissions of outputs.root") from None

    def write_artifacts_context(self, run: Run, run_dir: Path) -> None:
        """What ``runspec.artifacts`` reads in the run (the registry, the declared outputs),
        once per stage directory: a file per run would cost 0.2 s per 1,000 runs."""
        stage_dir = run_dir.parent.parent  # {outputs}/{name}/{stage}/{point}/{slot}
        if stage_dir in self.contexts or not self.result.resolved.artifacts_root:
            return
        from runspec.artifacts.ledger import write_context

        write_context(stage_dir, self.result.resolved.artifacts_root,
                      {name: type_ for name, (_, type_) in run.outputs.items()})
        self.contexts.add(stage_dir)

    def provenance_yaml(self) -> str:
        """job.yaml's provenance, added when the run is launched (plans stay pure): the git
        state and software of the machine that launched it."""
        if not hasattr(self, "_provenance"):
            from runspec.measure.provenance import collect
            from runspec.plan import yamltext

            launched = collect(self.root)
            self._provenance = yamltext.dump({"provenance": {
                "git": launched["git"], "python": launched["python"],
                "runspec": launched["runspec"], "torch": launched["torch"],
                "launched_at": _now()}})
        return self._provenance

    def write_launch_files(self, launch: Launch) -> None:
        directory = self.root / launch.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name, text in launch.files.items():
                (directory / name).write_text(text, encoding="utf-8")
        except OSError as error:
            raise BackendError(f"cannot write {directory}: {os_reason(error)}") from None

    # -- the apply ---------------------------------------------------------------------------
    def run(self) -> ApplyReport:
        """Apply, inside each backend's session (a managed Ray head lives exactly as long as
        this apply needs it, and is stopped also when the apply fails)."""
        with contextlib.ExitStack() as sessions:
            self.sessions = sessions
            try:
                return self._run()
            finally:
                if self.unsaved:
                    self.save()

    def session(self, backend: Backend, launches: list[Launch]):
        """The backend's session for this apply, opened on first use."""
        if backend.name not in self.opened:
            self.opened[backend.name] = self.sessions.enter_context(
                backend.session(launches, self.reporter.event, keep=self.options.detach))
        return self.opened[backend.name]

    def _run(self) -> ApplyReport:
        changes = self.result.changes
        by_key = self.result.plan.by_key()
        to_submit = [by_key[c.key] for c in changes.to_submit()]
        launches = self.result.launches
        self.move([c for c in changes.changes if c.moved])
        failed_stages: set[str] = set()
        for stage in self.result.plan.stages:
            runs = [r for r in to_submit if r.stage == stage]
            if not runs or self.stopping:
                continue
            blocked = [n for n in self.result.plan.needs.get(stage, []) if n in failed_stages
                       or self._stage_failed_before(n)]
            if blocked:
                self.reporter.event(f"skipped stage {stage}: {', '.join(blocked)} did not succeed")
                failed_stages.add(stage)
                continue
            backend = backend_for(self.result.plan.stages[stage])
            stage_launches = [launch for launch in launches if launch.stage == stage]
            self.supersede([c for c in changes.to_submit() if c.stage == stage])
            session = self.session(backend, stage_launches)
            # Follow the runs when asked, when the backend's session must outlive them (a
            # managed Ray head), or when a later stage needs them and its scheduler cannot
            # hold it in the queue itself (a Slurm stage after a Slurm stage: --dependency).
            follow = (self.options.wait or session.must_follow
                      or self._later_stage_must_wait_for(stage)
                      or stage in self.result.plan.adaptive)  # its results decide what's next
            if is_paced(backend):
                self.run_paced(backend, stage, runs, stage_launches, follow)
            else:
                self.submit_launches(backend, stage, runs, stage_launches)
                if follow:
                    self.wait_remote(runs)
            if any(self.report.statuses.get(r.key) in RERUN
                   for r in runs):
                failed_stages.add(stage)
        if self.options.wait and not self.stopping:
            self.wait_for_active()
        self.destroy([c for c in changes.changes if c.action == Action.DESTROY])
        plan = self.result.plan
        if (plan.deferred or not all(a.done for a in plan.adaptive.values())) \
                and not self.report.errors and not self.stopping:
            return self.plan_again()
        self.say_why_adaptive_stopped()
        self.remember_inputs()
        return self.report

    def plan_again(self) -> ApplyReport:
        """Plan again now that a round has run: stages that waited for upstream results
        (``select``, or a stage still adding adaptive cycles) are planned, and adaptive
        stages get the cycles their results call for; run what that adds. A run this apply
        already launched is never launched again here (a run that keeps failing ends it)."""
        waiting = dict(self.result.plan.deferred)
        plan = build_plan(self.result.resolved, state=self.state)
        result = against_state(self.result.resolved, plan, self.result.store, self.state,
                               self.selection)
        new = result.changes.to_submit()
        if not new or any(c.key in self.report.submitted for c in new):
            self.result = result
            for stage, why in plan.deferred.items():
                self.report.errors.append(f"stage {stage} was not run: it {why}")
            self.say_why_adaptive_stopped()
            self.remember_inputs()
            return self.report
        if set(plan.deferred) != set(waiting):
            self.reporter.event("planning " + ", ".join(sorted(set(waiting) - set(plan.deferred)))
                                + " now that its inputs exist")
        for stage, adaptive in plan.adaptive.items():
            more = [c for c in new if c.stage == stage]
            if more:
                self.reporter.event(f"stage {stage}: adding {len(more)} run(s) — "
                                    f"{adaptive.metric}'s 95% CI is still wider than "
                                    f"±{adaptive.rel_ci:.3g} of its mean")
        self.result = result
        return self._run()

    def say_why_adaptive_stopped(self) -> None:
        """For each adaptive stage: how many cycles its points got, and why."""
        for stage, adaptive in self.result.plan.adaptive.items():
            if adaptive.done:
                self.reporter.event(f"stage {stage}: {adaptive.stop_reason()}")
            else:
                open_points = sum(p.progress in (Progress.MEASURING, Progress.MORE)
                                  for p in adaptive.points)
                self.reporter.event(f"stage {stage}: adaptive cycles stopped short of the "
                                    f"target with {open_points} point(s) still open, because "
                                    "a run did not succeed; apply again to go on")

    def remember_inputs(self) -> None:
        """When everything planned was submitted and none of it failed (it succeeded, or is
        still queued or running), and nothing waits to be planned, record what the plan
        read: the next apply of unchanged inputs then stops before resolving anything, after
        one refresh of the runs still active (see ``apply.noop``)."""
        plan = self.result.plan
        settled = (self.inputs is not None and not self.report.errors and self.state.members
                   and set(self.state.members) == {r.key for r in plan.runs}
                   and not plan.deferred and all(a.done for a in plan.adaptive.values())
                   and not any(m.status in RERUN for m in self.state.members.values()))
        fingerprint, inputs = ((self.inputs.digest, self.inputs.to_json()) if settled
                               and self.inputs is not None else (None, None))
        if fingerprint != self.state.fingerprint or inputs != self.state.inputs:
            self.state.fingerprint, self.state.inputs = fingerprint, inputs
            self.save()

    def _stage_failed_before(self, stage: str) -> bool:
        """Did a needed stage fail (a run still queued or running is not a failure)?"""
        return any(m.status in RERUN
                   for m in self.state.members.values() if m.stage == stage)

    def _later_stage_must_wait_for(self, stage: str) -> bool:
        """Only a scheduler that holds dependent jobs itself lets apply move on."""
        stages = self.result.plan.stages
        return any(stage in needs and not (
            stages[stage] == stages[later]
            and backend_for(stages[stage]).capabilities.stage_dependencies)
            for later, needs in self.result.plan.needs.items())

    def supersede(self, changes) -> None:
        """Before a replace or rerun is submitted: cancel the run it supersedes if that one
        is still queued or running (it would keep the GPUs busy and write into the same run
        directory), and drop a moved sweep point's old key from the state."""
        superseded = [c.member for c in changes if c.member is not None]
        self.retire([(c.member, str(c.action)) for c in changes if c.member is not None])
        for change in changes:
            if change.member is not None and change.member.key != change.key:
                self.state.members.pop(change.member.key, None)
        for backend, members in by_backend(m for m in superseded if m.status in ACTIVE).items():
            self.reporter.event(f"cancelling {len(members)} superseded run(s) on {backend}")
            backend_for(backend).cancel_many(members, self.root)
            self.report.backend_calls += 1
            for member in members:
                member.status = RunStatus.CANCELLED
        if superseded:  # new runs alone change nothing here: their intents are saved next
            self.save()

    # -- backends that apply paces (local processes, Ray jobs) ---------------------------------
    def run_paced(self, backend: PacedBackend, stage: str, runs: list[Run], launches: list[Launch],
                  follow: bool) -> None:
        """Start the stage's runs by the campaign's rules (see ``pacer``) and follow them:
        always for an attached backend (local processes), else when ``follow`` or when the
        rules need it (gaps, a limit, retries); otherwise return once every run started."""
        campaign = self.stage_of(stage).campaign
        caps = backend.capabilities
        limit = campaign.max_parallel or (1 if one_at_a_time(campaign) else caps.default_parallel)
        rules = Pace(limit=limit, gaps=gaps_before(runs, campaign), retries=campaign.retries,
                     follow=caps.attached or follow or bool(
                         limit or campaign.retries or any(gaps_before(runs, campaign))))
        recorder = _PacedRecorder(self, backend, stage, len(runs))
        previous_handlers = self._trap_signals()
        left = None
        try:
            left = pace(backend, runs, {launch.keys[0]: launch for launch in launches},
                        self.root, rules, recorder, lambda: self.stopping)
        except KeyboardInterrupt:
            self.stopping = True
        finally:
            if self.stopping:
                self._cancel_running(backend, recorder.running)
            self._restore_signals(previous_handlers)
        if left is not None and not self.stopping:
            for current in left.running:  # not followed: status and --wait follow them later
                self.report.statuses.pop(current.run.key, None)

    def start_paced(self, backend: PacedBackend, run: Run, launch: Launch) -> dict | None:
        """Intent first (a crash from here on can neither lose nor repeat the run), then the
        start, then its handle. A run that cannot be started is recorded failed."""
        previous = self.state.members.get(run.key)
        try:
            run_dir = self.materialize(run)
            self.record(run, RunStatus.SUBMITTED,
                        backend.intent(launch, uuid.uuid4().hex[:12], 0),
                        backend.name)
            self.save()
            handle = backend.start(launch, self.root, run_dir)
        except (BackendError, OSError) as error:
            if isinstance(error, OSError):
                self.out_of_space = self.out_of_space or disk_full(error)
                error = BackendError(f"cannot start the run: {error.filename or run.run_dir}: "
                                     f"{os_reason(error)}")
            message = getattr(error, "message", None) or str(error)
            self.report.errors.append(f"{run.key}: {message}")
            self.reporter.event(f"error {run.key}: {error}")
            if getattr(error, "ambiguous", False):
                self.report.errors.append("the submission may have arrived; it is kept as "
                                          "an intent that `runspec status` reconciles")
                self.stopping = True
                return None
            if isinstance(error, BackendError) and not backend.capabilities.attached:
                # refused by the scheduler (the next ones would be too): as it was before
                if previous is None:
                    self.state.members.pop(run.key, None)
                else:
                    self.state.members[run.key] = previous
                self.save()
                self.stopping = True
                return None
            self.record(run, RunStatus.FAILED, None, backend.name)
            self.report.statuses[run.key] = RunStatus.FAILED
            self.save()
            return None
        self.record(run, RunStatus.RUNNING if backend.capabilities.attached
                    else RunStatus.SUBMITTED, handle,
                    backend.name, attempts=self.state.members[run.key].attempts)
        self.save()
        if run.key not in self.report.submitted:
            self.report.submitted.append(run.key)
        return handle

    def _cancel_running(self, backend: Backend, running: dict) -> None:
        """Stop every running run at once (one grace period), deaf to repeated signals."""
        ignored = {}
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):
                ignored[signum] = signal.signal(signum, signal.SIG_IGN)
        try:
            backend.cancel_many([self.state.members[key] for key in running], self.root)
            for current in running.values():
                self._finish(current.run, RunStatus.CANCELLED, time.monotonic() - current.began)
        finally:
            for signum, handler in ignored.items():
                signal.signal(signum, handler)

    def serve_cancels(self, running: dict[str, Running], queued: list[Run]) -> set[str]:
        """Do what ``runspec cancel`` asked of this apply (see ``state.control``): stop the
        matching runs, the paced ones held in ``running``, ones launched earlier that are
        still active, and record ``queued`` ones as cancelled before they start. Returns
        the keys of ``running`` and ``queued`` it took (the pacer forgets them)."""
        inbox = self.inbox
        requests = inbox.take() if inbox is not None else []
        if inbox is None or not requests:
            return set()
        held = set(running) | {run.key for run in queued}
        taken: set[str] = set()
        for request in requests:
            def chosen(key: str, glob=request.glob) -> bool:
                return glob is None or fnmatch.fnmatchcase(key, glob)

            active = [m for m in self.state.members.values()
                      if m.status in ACTIVE and chosen(m.key)]
            waiting = [run for run in queued if chosen(run.key) and run.key not in taken]
            error = None
            try:
                self._cancel_members(active, running, request.pid)
            except BackendError as failure:
                error = str(failure)
            for run in waiting:
                previous = self.state.members.get(run.key)
                self.record(run, RunStatus.CANCELLED, None, backend_for(
                    self.result.plan.stages[run.stage]).name,
                    attempts=previous.attempts if previous else 0)
                self.report.statuses[run.key] = RunStatus.CANCELLED
                self.reporter.event(f"cancelled {run.key} before it started "
                                    f"(`runspec cancel`, pid {request.pid})")
            self.save()
            keys = sorted({m.key for m in active} | {run.key for run in waiting})
            taken |= {key for key in keys if key in held}
            inbox.answer(request, Answer(keys, error))
        return taken

    def _cancel_members(self, members: list[Member], running: dict[str, Running],
                        asker: int) -> None:
        for backend, chosen in by_backend(members).items():
            backend_for(backend).cancel_many(chosen, self.root)
            self.report.backend_calls += 1
            for member in chosen:
                current = running.get(member.key)
                if current is not None:
                    self._finish(current.run, RunStatus.CANCELLED,
                                 time.monotonic() - current.began,
                                 f" by `runspec cancel` (pid {asker})")
                else:
                    member.status = RunStatus.CANCELLED
                    member.finished_at = _now()
                    self.reporter.event(f"cancelled {member.key} by `runspec cancel` "
                                        f"(pid {asker})")

    def register_outputs(self, run: Run) -> str | None:
        """A run that succeeded publishes its outputs.artifacts, with lineage (its key and
        the input versions it used). Returns why it must count as failed, if it must."""
        from runspec.artifacts.publish import declared, register_outputs

        member = self.state.members[run.key]
        known = declared(self.stage_of(run.stage), self.result.resolved)
        notes: list[str] = []  # what else moved: the best alias
        published, problem = register_outputs(member, self.root, known, notes)
        for label in published:
            self.reporter.event(f"registered {label} from {run.key}")
        for note in notes:
            self.reporter.event(note)
        if problem:
            member.error = problem
        return problem

    def _finish(self, run: Run, status: RunStatus, seconds: float, why: str = "") -> None:
        member = self.state.members[run.key]
        if status == RunStatus.SUCCEEDED:
            problem = self.register_outputs(run)
            if problem:
                self.report.errors.append(f"{run.key}: {problem}")
                status = RunStatus.FAILED
        member.status = status
        member.finished_at = _now()
        self.save()
        if status == RunStatus.SUCCEEDED:
            self.warn_unreported(member)
        self.report.statuses[run.key] = status
        self.reporter.event(f"{status} {run.key} ({seconds:.1f} s){why}"
                            + (self.failure(member) if status == RunStatus.FAILED else ""))

    def warn_unreported(self, member: Member) -> None:
        """Say at once when a run never reported a metric its stage declares (`results`
        counts it as incomplete, and `--strict` fails on it)."""
        declared = self.stage_of(member.stage).measure.metrics
        result = read_result(self.root / member.run_dir)[0] if declared else None
        lacking = unreported(declared, result) if result else []
        if result and lacking:
            seen = ", ".join(sorted(result.get("metrics") or {})) or "none"
            self.report.warnings.append(f"{member.key} never reported {', '.join(lacking)}")
            self.reporter.event(f"warning: {member.key} never reported the declared metric"
                                f"{'s' * (len(lacking) > 1)} {', '.join(lacking)} (it reported: "
                                f"{seen}); `runspec results` counts it as incomplete")

    def stage_of(self, stage: str):
        """The resolved stage named ``stage``."""
        return self.result.resolved.stages[list(self.result.plan.stages).index(stage)]

    def failure(self, member) -> str:
        """``: exit code 1; stderr: … — see `runspec logs PATH 'KEY'```, for an event line."""
        import shlex

        from runspec.apply.failure import why_failed

        manifest = self.result.resolved.document.display or "PATH"
        return (f": {why_failed(self.root / member.run_dir, member.error)} — see "
                f"`runspec logs {shlex.quote(manifest)} {shlex.quote(member.key)}`")

    def _trap_signals(self):
        def on_term(signum, frame):
            raise KeyboardInterrupt

        previous = {}
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[signum] = signal.signal(signum, on_term)
        return previous

    def _restore_signals(self, previous) -> None:
        for signum, handler in (previous or {}).items():
            signal.signal(signum, handler)

    # -- backends whose scheduler paces a whole launch (Slurm arrays) ------------------------
    def submit_launches(self, backend: Backend, stage: str, runs: list[Run], launches: list[Launch]
                        ) -> None:
        by_key = {run.key: run for run in runs}
        for launch in launches:
            members = [by_key[k] for k in launch.keys]
            previous = {run.key: self.state.members.get(run.key) for run in members}
            tag = uuid.uuid4().hex[:12]
            try:
                if launch.table:
                    self.pack(launch, members)
                else:
                    for run in members:
                        self.materialize(run)
                self.write_launch_files(launch)
                for index, run in enumerate(members):
                    self.record(run, RunStatus.SUBMITTED, backend.intent(launch, tag, index),
                                backend.name)
                self.save()  # intent, before the scheduler hears of it
                after = {n: self._job_of(n) for n in self.result.plan.needs.get(stage, [])}
                handles = backend.submit(launch, self.root, {k: v for k, v in after.items() if v},
                                         tag)
                self.report.backend_calls += 1
            except BackendError as error:
                self.report.errors.append(str(error))
                if error.ambiguous:
                    self.report.errors.append("the submission may have arrived; it is kept as "
                                              "an intent that `runspec status` reconciles")
                else:  # refused: put back what the state held before
                    for key, old in previous.items():
                        if old is None:
                            self.state.members.pop(key, None)
                        else:
                            self.state.members[key] = old
                self.save()
                self.stopping = True
                return
            for run in members:
                self.record(run, RunStatus.SUBMITTED, handles[run.key], backend.name,
                            attempts=self.state.members[run.key].attempts)
                self.report.submitted.append(run.key)
            # Written with the apply's next write (the next intent, a refresh while
            # following, the inputs it records) or when it ends: until then each run's
            # intent is on disk with its tag, which finds its job (``reconcile``).
            self.unsaved = True
            self.reporter.event(f"submitted {len(members)} run{'s' * (len(members) != 1)} of "
                                f"stage {stage} to {backend.name}: "
                                + backend.describe(handles[members[0].key]))

    def _job_of(self, stage: str) -> str | None:
        """What a later stage on the same scheduler waits for: every active job of ``stage``
        (several arrays when its runs have different resource shapes), ``:``-joined."""
        ids = []
        for member in self.state.members.values():
            if member.stage == stage and member.status in ACTIVE:
                job = backend_for(member.backend).dependency_id(member.handle)
                if job and job not in ids:
                    ids.append(job)
        return ":".join(ids) or None

    def active_runs(self) -> list[Run]:
        """Planned runs still queued or running that this apply did not follow (launched by
        an earlier apply, or a submission whose answer timed out)."""
        by_key = self.result.plan.by_key()
        return [by_key[key] for key, member in self.state.members.items()
                if member.status in ACTIVE and key in by_key and key not in self.report.statuses]

    def wait_for_active(self) -> None:
        """``--wait`` follows every active run of the manifest, not only those it launched."""
        runs = self.active_runs()
        if runs:
            self.reporter.event(f"waiting for {len(runs)} run{'s' * (len(runs) != 1)} "
                                "launched before this apply")
            self.wait_remote(runs)

    def wait_remote(self, runs: list[Run], poll_s: float = 1.0) -> None:
        keys = {run.key for run in runs}
        while not self.stopping:
            changed = refresh_state(self.state, self.root, self.reporter.event)
            self.report.backend_calls += 1
            self.serve_cancels({}, [])
            pending = [k for k in keys if k in self.state.members
                       and self.state.members[k].status not in ENDED]
            if changed or self.unsaved:
                self.save()
            if not pending:
                break
            time.sleep(poll_s)
        by_key = {run.key: run for run in runs}
        for key in keys:
            member = self.state.members.get(key)
            if member is None:  # a launch that failed to submit left no member
                continue
            if member.status == RunStatus.SUCCEEDED:
                problem = self.register_outputs(by_key[key])
                if problem:
                    self.report.errors.append(f"{key}: {problem}")
                    member.status = RunStatus.FAILED
                    self.save()
            if member.status == RunStatus.FAILED:
                self.reporter.event(f"failed {key}{self.failure(member)}")
            if member.status == RunStatus.SUCCEEDED:
                self.warn_unreported(member)
            self.report.statuses[key] = member.status

    # -- renames -----------------------------------------------------------------------------
    def move(self, changes) -> None:
        """Runs stored under the name an older runspec gave them take their new key, and the
        new run directory links to the old one, which stays where it is (a job may still
        write there, registered artifacts point into it). Runs whose stored request differed
        only by such renamed paths record the planned one. Nothing is submitted."""
        for change in changes:
            member, run = change.member, change.run
            if member.key != run.key:
                old, new = self.root / member.run_dir, self.root / run.run_dir
                try:
                    # A queued task writes its directory when it starts (run_table.py).
                    if ((old.exists() or member.status in ACTIVE) and member.run_dir != run.run_dir
                            and not new.exists() and not new.is_symlink()):
                        new.parent.mkdir(parents=True, exist_ok=True)
                        new.symlink_to(os.path.relpath(old, new.parent))
                except OSError as error:
                    self.report.errors.append(f"cannot rename {member.key} to {run.key}: "
                                              f"linking {new} to {old}: {os_reason(error)}")
                    continue
                self.state.members.pop(member.key, None)
                self.state.members[run.key] = member
                self.reporter.event(f"renamed {member.key} → {run.key}")
                self.report.renamed.append(run.key)
            kept = {k: v for k, v in member.request.items() if k in SOURCE_FIELDS}
            member.key, member.run_dir, member.point = run.key, run.run_dir, run.point
            member.request, member.digest = {**run.request, **kept}, run.digest
        if changes:
            self.save()

    # -- destroy -----------------------------------------------------------------------------
    def destroy(self, changes) -> None:
        self.retire([(c.member, str(c.action)) for c in changes
                     if c.member.status not in ACTIVE or self.options.prune])
        for change in changes:
            member = change.member
            if member.status in ACTIVE and not self.options.prune:
                continue
            if member.status in ACTIVE:
                backend_for(member.backend).cancel_many([member], self.root)
                self.report.backend_calls += 1
            self.state.members.pop(change.key, None)
            self.report.destroyed.append(change.key)
        if changes:
            self.save()


class _PacedRecorder:
    """What the pacer's starts, retries and ends mean for the apply's state and output."""

    def __init__(self, applier: Applier, backend: PacedBackend, stage: str, total: int):
        self.applier, self.backend, self.stage = applier, backend, stage
        self.running: dict[str, Running] = {}
        self.unstarted = total

    def start(self, run: Run, launch: Launch, attempt: int) -> dict | None:
        applier = self.applier
        if attempt == 1:
            self.unstarted -= 1
        handle = applier.start_paced(self.backend, run, launch)
        if handle is None:
            if applier.out_of_space:  # the rest stay unlaunched for the next apply
                applier.reporter.event(f"disk full: {self.unstarted} run(s) not launched")
                applier.stopping = True
            return None
        self.running[run.key] = Running(run, handle, time.monotonic())
        where = self.backend.describe(handle)
        applier.reporter.event(f"started {run.key}" + (f" ({where})" if where and
                                                         not self.backend.capabilities.attached
                                                         else ""))
        return handle

    def retry(self, run: Run, attempt: int, retries: int) -> None:
        self.running.pop(run.key, None)
        self.applier.reporter.event(f"failed {run.key}; retrying ({attempt}/{retries})")

    def finish(self, run: Run, status: RunStatus, seconds: float) -> None:
        self.running.pop(run.key, None)
        self.applier._finish(run, status, seconds)

    def progress(self, done: int, total: int) -> None:
        self.applier.reporter.progress(done, total, f"stage {self.stage}")

    def cancels(self, running: dict[str, Running], queued: list[Run]) -> set[str]:
        taken = self.applier.serve_cancels(running, queued)
        for key in taken:
            self.running.pop(key, None)
        return taken


def prepare(resolved: Resolved, selection: Selection) -> tuple[PlanResult, Any]:
    """Build the plan, then take the lock, refresh active runs and diff under the lock."""
    plan = build_plan(resolved)
    store = store_for(resolved)
    if not store.is_local:
        raise StateError("apply needs a local state file to lock",
                         f"{store.location} is remote; remote locking is not supported yet")
    manifest = os.path.relpath(resolved.root / resolved.manifest_file)
    lock = state_lock(store.local_path, "apply", manifest)
    lock.__enter__()
    try:
        state = store.read()
        if refresh_state(state, plan.root):
            store.write(state)
        if plan.adaptive or plan.deferred:  # how many cycles, what waits: the state says
            plan = build_plan(resolved, state=state)
        result = against_state(resolved, plan, store, state, selection)
        add_estimate(result)
    except BaseException:
        lock.__exit__(None, None, None)
        raise
    return result, lock
