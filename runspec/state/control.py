"""The control channel of a running apply: how `runspec cancel` reaches the lock holder.

An apply holds the state lock until its runs end, so a second command cannot write the
state. Instead it leaves a request in a directory beside the lock (``<state>.control/``);
the apply looks there whenever it polls its runs, does what is asked (it owns the runs and
the state), and answers. Requests and answers are files written atomically, and a request
is claimed by renaming it, so a request is served exactly once: either the apply claims it,
or the asker withdraws it (when the apply ended first) and acts itself under the lock.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from runspec.measure.files import write_bytes_atomic

REQUEST, CLAIMED, ANSWER = ".request.json", ".claimed.json", ".answer.json"


def control_dir(state_file: Path) -> Path:
    return state_file.with_suffix(".control")


@dataclass(frozen=True)
class CancelRequest:
    """Cancel the runs whose key matches ``glob`` (every run of the apply when None)."""

    id: str
    glob: str | None
    pid: int                                # who asks (named in the apply's output)


@dataclass(frozen=True)
class Answer:
    cancelled: list[str]                     # keys recorded cancelled by the apply
    error: str | None = None


class Inbox:
    """The apply's side: requests waiting, taken one by one, each answered once."""

    def __init__(self, state_file: Path):
        self.directory = control_dir(state_file)

    def take(self) -> list[CancelRequest]:
        """The requests waiting now, claimed (so the asker can no longer withdraw them).
        Costs one directory listing when there are none."""
        try:
            names = [entry.name for entry in os.scandir(self.directory)
                     if entry.name.endswith(REQUEST)]
        except FileNotFoundError:
            return []
        taken = []
        for name in sorted(names):
            request_id = name.removesuffix(REQUEST)
            claimed = self.directory / (request_id + CLAIMED)
            try:
                os.rename(self.directory / name, claimed)
                data = json.loads(claimed.read_text(encoding="utf-8"))
                taken.append(CancelRequest(request_id, data.get("glob"), int(data.get("pid", 0))))
            except (OSError, ValueError, TypeError):
                continue  # withdrawn in between, or not a request: nothing to answer
        return taken

    def answer(self, request: CancelRequest, answer: Answer) -> None:
        data = json.dumps({"cancelled": answer.cancelled, "error": answer.error})
        with suppress(OSError):  # the asker then says it got no answer; the runs are cancelled
            write_bytes_atomic(self.directory / (request.id + ANSWER), data.encode("utf-8"))
        (self.directory / (request.id + CLAIMED)).unlink(missing_ok=True)


class Outbox:
    """The asker's side: one request, then its answer, or its withdrawal."""

    def __init__(self, state_file: Path, glob: str | None):
        self.directory = control_dir(state_file)
        self.id = uuid.uuid4().hex[:12]
        self.directory.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.directory / (self.id + REQUEST),
                           json.dumps({"glob": glob, "pid": os.getpid()}).encode("utf-8"))

    def wait(self, still_held: Callable[[], bool], timeout_s: float,
             poll_s: float = 0.05) -> Answer | None:
        """The apply's answer; None if the request came back unclaimed (the lock holder
        ended, or did not claim it within ``timeout_s``): then the asker acts itself."""
        deadline = time.monotonic() + timeout_s
        answer = self.directory / (self.id + ANSWER)
        while True:
            if answer.exists():
                return self._read(answer)
            claimed = (self.directory / (self.id + CLAIMED)).exists()
            if not claimed and (not still_held() or time.monotonic() > deadline):
                if self.withdraw():
                    return None
                continue  # claimed just now: its answer follows
            if claimed and not still_held() and not answer.exists():
                # claimed by an apply that ended without answering (it died): act ourselves
                (self.directory / (self.id + CLAIMED)).unlink(missing_ok=True)
                return None
            time.sleep(poll_s)

    def withdraw(self) -> bool:
        """Take the request back; False if the apply claimed it first."""
        try:
            (self.directory / (self.id + REQUEST)).unlink()
        except FileNotFoundError:
            return False
        return True

    def _read(self, path: Path) -> Answer:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        finally:
            path.unlink(missing_ok=True)
        return Answer(list(data.get("cancelled") or []), data.get("error"))
