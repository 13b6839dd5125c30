"""A launch's run directories in one file, which each array task unpacks when it starts.

Writing 1,000 run directories (a mkdir and three files each) before sbatch took apply
1.5–5 s on this kind of machine, far more than planning them. So for a Slurm array,
apply writes one table per launch instead, and each task writes its own run directory
(``launch.sh``, ``job.yaml``, ``config.yaml``: exactly the files ``plan`` shows) when it
starts: ``python -m runspec.run_table TABLE INDEX``.

The table's name is derived from the runs it holds (their keys and digests, and the
manifest's digest), so a later apply that plans other runs writes another table, and a
pending task always finds the runs it was submitted with. Layout, all UTF-8:

* ``runspec-run-table 1``: the format line;
* a JSON line: ``{"index": [[offset, length], ...]}``, one per task, offsets counted from
  the end of this line;
* one JSON line per run: ``{"dir": RUN_DIR, "files": {NAME: TEXT, ...}}``.

A task reads the index (about 16 bytes a run) and then its own line only (a seek), not
every run's files. The file is written atomically (temp file, fsync, rename) before
sbatch. Apply writes run directories itself where the batch step may lack a Python with
runspec (a container, startup_commands) and through a login node (the upload carries
them)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

FORMAT = b"runspec-run-table 1\n"


def table_name(runs: Iterable[tuple[str, str]], manifest_digest: str) -> str:
    """``runs-<digest>.table`` for the ``(key, digest)`` pairs of a launch, in task order."""
    digest = hashlib.sha256(manifest_digest.encode())
    for key, run_digest in runs:
        digest.update(f"\n{key}\t{run_digest}".encode())
    return f"runs-{digest.hexdigest()[:16]}.table"


def encode(entries: Iterable[tuple[str, dict[str, str]]]) -> bytes:
    """The table of ``(run_dir, {name: text})`` entries, in task order."""
    lines = [json.dumps({"dir": run_dir, "files": files}, ensure_ascii=False,
                        separators=(",", ":")).encode() + b"\n" for run_dir, files in entries]
    index, offset = [], 0
    for line in lines:
        index.append([offset, len(line)])
        offset += len(line)
    header = json.dumps({"index": index}, separators=(",", ":")).encode() + b"\n"
    return b"".join([FORMAT, header, *lines])


def write(path: Path, entries: Iterable[tuple[str, dict[str, str]]]) -> None:
    """Write the table atomically: a task never reads half of one."""
    from runspec.measure.files import write_bytes_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, encode(entries))


class TableError(Exception):
    """A table this version cannot read, or an entry that would write outside its run."""


def entry(path: Path, index: int) -> tuple[str, dict[str, str]]:
    """Task ``index``'s run directory and files."""
    with open(path, "rb") as table:
        if table.readline() != FORMAT:
            raise TableError(f"{path} is not a run table of this runspec version")
        spans = json.loads(table.readline())["index"]
        if not 0 <= index < len(spans):
            raise TableError(f"{path} holds {len(spans)} runs, not task {index}")
        offset, length = spans[index]
        table.seek(table.tell() + offset)
        data = json.loads(table.read(length))
    run_dir, files = data["dir"], data["files"]
    parts = PurePosixPath(run_dir).parts
    if not parts or PurePosixPath(run_dir).is_absolute() or ".." in parts:
        raise TableError(f"task {index}'s run directory {run_dir!r} is not inside the job's "
                         "directory")
    for name in files:
        if not name or "/" in name or name in (".", ".."):
            raise TableError(f"task {index}'s file name {name!r} is not a plain name")
    return run_dir, files


def unpack(path: Path, index: int, root: Path = Path(".")) -> Path:
    """Write task ``index``'s run directory under ``root``; returns it. The records of an
    earlier attempt stay where they are: apply kept them aside before it resubmitted the
    run, and the wrapper does for a requeued job."""
    run_dir, files = entry(path, index)
    target = root / run_dir
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m runspec.run_table TABLE INDEX", file=sys.stderr)
        return 2
    from runspec.measure.files import os_reason

    try:
        unpack(Path(argv[0]), int(argv[1]))
    except (OSError, ValueError, KeyError, TableError) as error:
        reason = os_reason(error) if isinstance(error, OSError) else error
        print(f"runspec: cannot write this task's run directory from {argv[0]}: {reason}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
