"""Peak resident memory of a run: the kernel's own account of the command, and a sample of
its whole process tree.

The kernel keeps each process's high-water mark and hands it to whoever reaps it
(``wait4``; it covers the descendants the command itself waited for), so a run of any
length gets its true peak, the figure ``/usr/bin/time -v`` prints. A tree of processes alive
at once (torchrun's workers) can hold more together than any one of them did: the sampler
sums the tree every ``interval_s`` for that. The peak is the larger of the two.

One catch: the command is started from the wrapper's own address space, and the kernel
counts that footprint (``floor``: ~15 MB, ~80 MB with codecarbon loaded) in the command's
mark. A mark above the floor is the command's own; one at or below it says only "no more
than this", so the samples are reported then, unless there are none: without a readable
``/proc`` the sampler stops quietly and the kernel's mark is what is known.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
RU_MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024
"""``ru_maxrss`` is in kilobytes on Linux, in bytes on macOS."""

FLOOR_SLACK = 2**20
"""What starting the command may add to the wrapper's footprint after ``floor()`` read it."""

PROC = Path("/proc")
"""Where the sampler reads the process table (a parameter of ``PeakRss``, for systems
without ``/proc`` and the tests that play one)."""


def _tree_rss(root: int, proc: Path) -> int:
    """Resident bytes of ``root`` and its descendants now; OSError if ``proc`` is unreadable."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * PAGE
        except (OSError, ValueError, IndexError):
            continue  # a process that ended while being read
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def floor() -> int:
    """The wrapper's own peak RSS in bytes, read just before it starts the command."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_BYTES


def reap(child: subprocess.Popen) -> tuple[int, int]:
    """Wait for ``child``: (its return code as Popen reports it, its peak RSS in bytes).

    ``wait4`` gives the peak of this child alone; ``RUSAGE_CHILDREN`` would also count
    whatever else the wrapper ran and reaped (codecarbon's probes, W&B's helpers)."""
    if not hasattr(os, "wait4"):
        returncode = child.wait()
        return returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * RU_MAXRSS_BYTES
    _, status, usage = os.wait4(child.pid, 0)  # retried by Python across signal handlers
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss * RU_MAXRSS_BYTES


class PeakRss:
    """Samples the tree under ``pid`` every ``interval_s`` until stopped; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.2, proc: Path | None = None):
        self.pid, self.interval_s, self.sampled = pid, interval_s, 0
        self.proc = PROC if proc is None else proc
        self.readable = True  # False once the process table could not be read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sampled = max(self.sampled, _tree_rss(self.pid, self.proc))
            except OSError:  # no /proc here: the kernel's figure at the end is the peak
                self.readable = False
                return
            self._stop.wait(self.interval_s)

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self, reaped_bytes: int = 0, floor_bytes: int = 0) -> int:
        """The peak in bytes: the larger of the largest sample and ``reap``'s mark when the
        mark is above ``floor_bytes`` (``floor()``), else the samples, else the mark."""
        self._stop.set()
        self._thread.join(timeout=2)
        if reaped_bytes > floor_bytes + FLOOR_SLACK or not self.sampled:
            return max(self.sampled, reaped_bytes)
        return self.sampled
