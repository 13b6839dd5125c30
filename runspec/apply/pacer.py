"""Campaign pacing for backends whose runs apply starts one by one (local processes, Ray jobs).

The rules are the campaign's, the same on every backend (the Slurm template applies them
inside its job array): runs start in plan order; at most ``limit`` at once; before each run
the idle time ``gaps[i]`` passes after the previous run ENDED (lem's cool-down, so a gap
means one run at a time); a failed run starts again up to ``retries`` times, right away and
after its own gap. A run cancelled while the stage goes on (``runspec cancel`` from another
shell) leaves the loop for good: it is neither retried nor started. What a start, an end, a
retry or a cancel means for the state is the recorder's business, so this loop needs
nothing from the apply engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runspec.backends.base import Handle, PacedBackend
from runspec.ir import Launch, Run
from runspec.state.status import RunStatus


@dataclass(frozen=True)
class Pace:
    limit: int | None                  # runs at once; None: all of them
    gaps: list[float]                  # idle seconds before each run (aligned with the runs)
    retries: int = 0
    follow: bool = True                # wait for the runs to end (else return once all started)


class Recorder(Protocol):
    def start(self, run: Run, launch: Launch, attempt: int) -> Handle | None:
        """Record the intent, start the run through the backend, record its handle; None if
        it could not be started (already recorded as such)."""

    def retry(self, run: Run, attempt: int, retries: int) -> None: ...

    def finish(self, run: Run, status: RunStatus, seconds: float) -> None: ...

    def progress(self, done: int, total: int) -> None: ...

    def cancels(self, running: dict[str, Running], queued: list[Run]) -> set[str]:
        """Keys cancelled from outside since the last call (among ``running``, stopped and
        recorded, and ``queued``, recorded as never started): the loop forgets them."""


@dataclass
class Running:
    run: Run
    handle: Handle
    began: float


@dataclass
class Paced:
    """What is still running when pacing stopped (asked to stop, or not following)."""

    running: list[Running] = field(default_factory=list)
    unstarted: list[Run] = field(default_factory=list)


def pace(backend: PacedBackend, runs: list[Run], launches: dict[str, Launch], root: Path,
         rules: Pace, recorder: Recorder, stopping: Callable[[], bool]) -> Paced:
    """Start ``runs`` by ``rules`` and follow them; returns what was left when it stopped."""
    queue = list(range(len(runs)))
    position = {run.key: index for index, run in enumerate(runs)}
    running: dict[str, Running] = {}
    attempts: dict[str, int] = {}
    last_end: float | None = None
    limit = rules.limit or len(runs)
    if any(rules.gaps):
        limit = 1
    total, done = len(runs), 0
    poll_s = backend.capabilities.poll_s
    idle, watched = 0, (-1, -1, -1)  # polls since a run last started or ended; counts then
    recorder.progress(0, total)

    def serve_cancels() -> bool:
        """Forget the runs cancelled from outside; False always (it never asks to stop)."""
        nonlocal done, queue
        chosen = recorder.cancels(running, [runs[i] for i in queue])
        if chosen:
            for key in chosen:
                running.pop(key, None)
            queue = [i for i in queue if runs[i].key not in chosen]
            done = total - len(queue) - len(running)
            recorder.progress(done, total)
        return False

    while (queue or running) and not stopping():
        serve_cancels()
        while queue and len(running) < limit and not stopping():
            index = queue[0]
            run = runs[index]
            if last_end is not None and rules.gaps[index] > 0:
                _sleep_until(last_end + rules.gaps[index],
                             lambda: serve_cancels() or stopping())
                if stopping():
                    break
                if not queue or queue[0] != index:  # cancelled while waiting for its gap
                    continue
            queue.pop(0)
            attempts[run.key] = attempts.get(run.key, 0) + 1
            handle = recorder.start(run, launches[run.key], attempts[run.key])
            if handle is None:
                done += 1
                recorder.progress(done, total)
                continue
            running[run.key] = Running(run, handle, time.monotonic())
        if not rules.follow and not queue:
            break
        for key, current in list(running.items()):
            status = backend.poll(current.handle, root, root / current.run.run_dir)
            if status is None:
                continue
            del running[key]
            last_end = time.monotonic()
            if status == RunStatus.FAILED and attempts[key] <= rules.retries:
                recorder.retry(current.run, attempts[key], rules.retries)
                queue.insert(0, position[key])
                continue
            recorder.finish(current.run, status, last_end - current.began)
            done += 1
            recorder.progress(done, total)
        if running or queue:
            # Poll soon after a start or an end, then back off to the backend's interval: a
            # short run is noticed within milliseconds, a long one costs no busy loop.
            seen = (done, len(queue), len(running))
            idle, watched = (0 if seen != watched else idle + 1), seen
            time.sleep(min(poll_s, 0.005 * 2 ** idle) if running else 0.01)
    return Paced(list(running.values()), [runs[i] for i in queue])


def _sleep_until(deadline: float, stopping: Callable[[], bool]) -> None:
    """Sleep until ``deadline`` (monotonic), waking up often enough to notice a stop."""
    while not stopping():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))
