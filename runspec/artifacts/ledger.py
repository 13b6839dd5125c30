"""A run's own account of its artifacts, in its run directory, for registration to read.

Recipe code (``runspec.artifacts.load``/``save``) appends one JSON line per call to
``artifacts.jsonl``: what it loaded (a version, or a plain path) and what it saved (a name,
a path, a type, metadata). A non-Python recipe writes its metadata beside an output
instead: ``<output path>.metadata.json``. When the run succeeds, registration reads both
(``artifacts.publish``): the loads join the version's lineage, the saves become versions.

Lines carry the attempt that wrote them (``$RUNSPEC_ATTEMPT``, set by the in-job wrapper),
so a retried run registers what its last attempt saved, not what a failed one did. Each
line is one ``write`` to a file opened for appending, as the metrics protocol does: ranks
of one run can share the file. Standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEDGER_FILE = "artifacts.jsonl"
CONTEXT_FILE = "artifacts.context.json"
"""Written by apply into a stage's directory: see ``Context``."""
ATTEMPT_VARIABLE = "RUNSPEC_ATTEMPT"
METADATA_SUFFIX = ".metadata.json"


@dataclass(frozen=True)
class Saved:
    """One ``runspec.artifacts.save`` call."""

    name: str
    path: str                        # absolute, as the run saw it
    type: str | None
    metadata: dict[str, Any]


@dataclass
class Ledger:
    """What one attempt of a run recorded."""

    loaded: list[str] = field(default_factory=list)      # version labels, NAME:vN
    read: list[str] = field(default_factory=list)        # plain paths, absolute
    saved: dict[str, Saved] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def current_attempt() -> int | None:
    text = os.environ.get(ATTEMPT_VARIABLE, "")
    return int(text) if text.isdigit() else None


def append(run_dir: Path, entry: dict[str, Any]) -> None:
    """One line, in one write (``entry`` must be JSON: the caller checked it)."""
    line = json.dumps({"attempt": current_attempt(), **entry}, sort_keys=True) + "\n"
    with open(run_dir / LEDGER_FILE, "a", encoding="utf-8") as handle:
        handle.write(line)


def read(run_dir: Path, attempt: int | None) -> Ledger:
    """The lines of ``attempt`` (lines without one are a run started by hand: kept)."""
    ledger = Ledger()
    try:
        text = (run_dir / LEDGER_FILE).read_text(encoding="utf-8")
    except OSError:
        return ledger
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            ledger.problems.append(f"line {number} of {LEDGER_FILE} is not JSON")
            continue
        if not isinstance(entry, dict):
            ledger.problems.append(f"line {number} of {LEDGER_FILE} is not an object")
            continue
        if entry.get("attempt") is not None and attempt is not None \
                and entry["attempt"] != attempt:
            continue  # an earlier attempt's
        _add(ledger, entry, number)
    return ledger


def _add(ledger: Ledger, entry: dict[str, Any], number: int) -> None:
    if isinstance(entry.get("loaded"), str):
        if entry["loaded"] not in ledger.loaded:
            ledger.loaded.append(entry["loaded"])
    elif isinstance(entry.get("read"), str):
        if entry["read"] not in ledger.read:
            ledger.read.append(entry["read"])
    elif isinstance(entry.get("saved"), str) and isinstance(entry.get("path"), str):
        given = entry.get("metadata")
        metadata: dict[str, Any] = given if isinstance(given, dict) else {}
        type_ = entry.get("type") if isinstance(entry.get("type"), str) else None
        saved = Saved(entry["saved"], entry["path"], type_, metadata)
        before = ledger.saved.get(saved.name)
        if before is not None and before != saved:  # two ranks saving the same is fine
            ledger.problems.append(f"{saved.name} was saved twice with different paths, "
                                   f"types or metadata (line {number} of {LEDGER_FILE})")
        ledger.saved[saved.name] = saved
    else:
        ledger.problems.append(f"line {number} of {LEDGER_FILE} records nothing runspec "
                               "knows (loaded, read or saved)")


def sidecar(path: Path | str) -> tuple[dict[str, Any], str | None]:
    """The metadata written beside an output (``<path>.metadata.json``), and why it cannot
    be used (not JSON, not an object); ``({}, None)`` when there is none."""
    target = Path(f"{os.fspath(path).rstrip('/')}{METADATA_SUFFIX}")
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except OSError as error:
        return {}, f"cannot read {target}: {error.strerror or error}"
    try:
        data = json.loads(text)
    except ValueError as error:
        return {}, f"{target} is not JSON: {error}"
    if not isinstance(data, dict):
        return {}, f"{target} must hold a JSON object (field: value), not {type(data).__name__}"
    return data, None


def write_sidecar(path: Path | str, fields: dict[str, Any]) -> Path:
    """``fields`` merged into the metadata beside ``path`` (``<path>.metadata.json``; theirs
    win over the file's), written at once: a reader sees the old file or the new one. A run
    on a copy of its run directory hands ``save``'s metadata back this way (registration
    reads it on the cluster, as it reads any sidecar). A file there that cannot be used is an
    error (``ValueError``, saying why), not silently replaced."""
    from runspec.measure.files import write_streamed_atomic  # standard library only too

    before, problem = sidecar(path)
    if problem:
        raise ValueError(problem)
    target = Path(f"{os.fspath(path).rstrip('/')}{METADATA_SUFFIX}")
    text = json.dumps({**before, **fields}, indent=1, sort_keys=True) + "\n"
    try:
        mode = target.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    write_streamed_atomic(target, lambda handle: handle.write(text), mode)
    return target


def remote_sidecar(entry: Any) -> tuple[dict[str, Any], str | None]:
    """``sidecar``'s answer as the cluster gave it for an output left there (its entry in a
    run directory's ``outputs.remote.json``: ``metadata``, or ``metadata_problem``); an
    entry written before runspec read sidecars there has neither: ``({}, None)``."""
    if not isinstance(entry, dict):
        return {}, None
    if isinstance(entry.get("metadata_problem"), str):
        return {}, entry["metadata_problem"]
    metadata = entry.get("metadata")
    if metadata is None:
        return {}, None
    if not isinstance(metadata, dict):
        return {}, f"the metadata recorded for {entry.get('path')} is not an object"
    return metadata, None


@dataclass(frozen=True)
class Context:
    """What apply tells the code of a stage's runs (``CONTEXT_FILE``, in the stage's
    directory, above every run directory of the stage): the registry its apply uses, and
    the outputs its manifest declares (name → type; each run sees their paths in
    ``$RUNSPEC_OUTPUT_NAME``)."""

    root: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    copied_from: str | None = None  # where apply wrote it, when the run reads a copy of it
    #                                 (a run directory uploaded to a cluster over SSH)


def write_context(stage_dir: Path, root: str, outputs: dict[str, str]) -> None:
    from runspec.measure.files import write_text_atomic  # runs of the stage may be reading it

    stage_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(stage_dir / CONTEXT_FILE,
                      json.dumps({"root": root, "outputs": dict(sorted(outputs.items())),
                                  "stage_dir": str(stage_dir.resolve())}, indent=1) + "\n")


def read_context(run_dir: Path) -> Context:
    """The context of the stage ``run_dir`` belongs to (none: an empty one)."""
    for directory in (run_dir, run_dir.parent, run_dir.parent.parent):
        try:
            data = json.loads((directory / CONTEXT_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return Context()
        if not isinstance(data, dict):
            return Context()
        root = data.get("root") if isinstance(data.get("root"), str) and data["root"] else None
        listed = data.get("outputs")
        given: dict[str, Any] = listed if isinstance(listed, dict) else {}
        written = data.get("stage_dir")
        copied = isinstance(written, str) and written != str(directory.resolve())
        return Context(root, {str(n): str(t) for n, t in given.items()},
                       written if copied else None)
    return Context()
