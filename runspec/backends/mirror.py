"""A run directory on the cluster, mirrored into the local one: what the job writes
(``started.json``, ``result.json``, ``metrics.jsonl``, its logs) comes back on each
refresh, and only what is new.

One command per refresh for all runs: a small Python program on the login node reads,
for each file, the bytes beyond what was fetched before (a log, a metrics file: they only
grow) or the whole file when it changed (a JSON file, replaced atomically by the
wrapper), and frames them with their exact lengths, so a file growing while it is read
never misaligns the stream. What was fetched is remembered per run in ``.remote.json``
(the remote directory and, per file, the size and time seen). A run started again in
another remote directory (new code) appends its logs to the local ones, so the local
logs keep every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runspec.measure import RESULT_FILE, STARTED_FILE
from runspec.measure.files import read_json, write_bytes_atomic, write_json
from runspec.measure.metrics import METRICS_FILE

GROWING = ("stdout.log", "stderr.log", METRICS_FILE)
"""Files the job only appends to: fetched from where the last fetch stopped."""
REPLACED = (STARTED_FILE, RESULT_FILE)
"""Files the wrapper writes whole (temp file + rename): fetched whole when they change."""
MIRRORED = GROWING + REPLACED
SIDECAR = ".remote.json"
MAX_CHUNK = 16 * 1024 * 1024
"""At most this much of one file per refresh: a huge log comes back over several."""

# Runs on the login node with its `python` (which the jobs need anyway). Input on stdin:
# [[remote_dir, {name: [size, mtime_ns]}], ...]; output: per file, a JSON header line,
# then exactly header["n"] bytes.
AGENT = r"""
import json, os, sys
GROWING = set(sys.argv[1].split(","))
NAMES = sys.argv[2].split(",")
LIMIT = int(sys.argv[3])
out = sys.stdout.buffer
for index, (directory, seen) in enumerate(json.load(sys.stdin)):
    for name in NAMES:
        try:
            handle = open(os.path.join(directory, name), "rb")
        except OSError:
            continue
        with handle:
            info = os.fstat(handle.fileno())
            size, mtime = info.st_size, info.st_mtime_ns
            known = seen.get(name)
            if known == [size, mtime]:
                continue
            offset = 0
            if name in GROWING and known and known[0] <= size:
                offset = known[0]
            handle.seek(offset)
            data = handle.read(min(size - offset, LIMIT))
        header = {"i": index, "f": name, "size": size, "mtime": mtime, "off": offset,
                  "n": len(data)}
        out.write(json.dumps(header).encode() + b"\n")
        out.write(data)
out.flush()
"""


def agent_argv() -> list[str]:
    """The command that mirrors (its input: ``request``)."""
    return ["python", "-c", AGENT, ",".join(GROWING), ",".join(MIRRORED), str(MAX_CHUNK)]


@dataclass(frozen=True)
class Chunk:
    """Bytes of one remote file: ``data`` starts at ``offset``; the file had ``size`` bytes."""

    index: int
    name: str
    size: int
    mtime: int
    offset: int
    data: bytes


def request(pairs: list[tuple[str, Path]]) -> bytes:
    """The agent's input for ``(remote_dir, local_dir)`` pairs: what each has fetched."""
    return json.dumps([[remote, _seen(local, remote)] for remote, local in pairs]).encode()


def _seen(local: Path, remote: str) -> dict[str, list[int]]:
    record = read_json(local / SIDECAR) or {}
    if record.get("source") != remote:  # another remote directory: nothing fetched from it
        return {}
    files = record.get("files")
    return files if isinstance(files, dict) else {}


def parse(stream: bytes) -> Iterator[Chunk]:
    """The agent's output as chunks; a truncated stream (a dropped connection) ends early
    with what is whole, so nothing half-read is ever written."""
    position = 0
    while position < len(stream):
        end = stream.find(b"\n", position)
        if end < 0:
            return
        try:
            header = json.loads(stream[position:end])
            count = int(header["n"])
        except (ValueError, KeyError, TypeError):
            return
        data = stream[end + 1:end + 1 + count]
        if len(data) < count:
            return
        yield Chunk(int(header["i"]), str(header["f"]), int(header["size"]),
                    int(header["mtime"]), int(header["off"]), data)
        position = end + 1 + count


def store(pairs: list[tuple[str, Path]], chunks: Iterator[Chunk]) -> int:
    """Write the chunks into the local run directories; returns how many bytes came."""
    received = 0
    updated: dict[int, dict[str, list[int]]] = {}
    for chunk in chunks:
        if chunk.name not in MIRRORED or not 0 <= chunk.index < len(pairs):
            continue
        remote, local = pairs[chunk.index]
        local.mkdir(parents=True, exist_ok=True)
        files = updated.setdefault(chunk.index, dict(_seen(local, remote)))
        target = local / chunk.name
        if chunk.name in GROWING:
            known = files.get(chunk.name)
            if chunk.offset == 0 and known:  # the remote file was cut short: start over
                target.unlink(missing_ok=True)
            with target.open("ab") as out:
                out.write(chunk.data)
        else:
            write_bytes_atomic(target, chunk.data)
        received += len(chunk.data)
        # A chunk cut at MAX_CHUNK records how far it got: the next refresh goes on from there.
        files[chunk.name] = [chunk.offset + len(chunk.data), chunk.mtime] \
            if chunk.offset + len(chunk.data) < chunk.size else [chunk.size, chunk.mtime]
    for index, files in updated.items():
        remote, local = pairs[index]
        write_json(local / SIDECAR, {"source": remote, "files": files})
    return received
