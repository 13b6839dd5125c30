"""W&B logging of a run, live and hermetic: every W&B file lives under the run directory.

The wrapper starts a ``LiveRun`` beside the command: a thread starts the W&B run (so the
command does not wait for W&B) and then follows ``metrics.jsonl``, logging each complete
rank-0 line as one history row as soon as it is appended, so curves grow while the run
runs; a line still being written is left until its newline arrives. When the command
ends, what is left is logged and the run is finished with the summary (aggregated
metrics, wall time, exit code, energy) and the outputs, as before.

W&B writes outside its run directory by default (``~/.cache/wandb``, ``~/.local/share``,
``~/.config``); ``WANDB_DIR``, ``WANDB_CACHE_DIR``, ``WANDB_DATA_DIR`` and
``WANDB_CONFIG_DIR`` are pointed under ``<run dir>/wandb`` before wandb is imported. The
API key arrives only as a secret reference (exported into the job's environment). A W&B
failure is recorded in result.json and never fails the run.

Artifacts: runspec's own registry resolves every input at plan time (offline W&B cannot
resolve artifacts at all). Offline, the W&B run therefore only *records* the pinned
versions (config ``runspec_inputs``) and logs each output as a W&B artifact (a
``file://`` reference, nothing copied) that ``wandb sync`` uploads later. Online, inputs
that were logged to W&B by an earlier online run are also ``use_artifact``-ed, so W&B's
lineage graph links producer and consumer; outputs are ``log_artifact``-ed and the
registry keeps the W&B name:version they got (metadata ``wandb``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

POLL_S = 0.5
"""How often the metrics file is looked at for new lines."""
FLUSH_S = 1.0
"""How often W&B writes its run file (``run-*.wandb``; W&B's default is 15 s), so an
offline run's file shows the run's progress as it goes."""
START_TIMEOUT_S = 180.0
"""How long the end of a run waits for W&B to finish starting before giving up on it."""


def hermetic_env(run_dir: Path) -> dict[str, str]:
    base = run_dir / "wandb"
    return {"WANDB_DIR": str(run_dir), "WANDB_CACHE_DIR": str(base / "cache"),
            "WANDB_DATA_DIR": str(base / "data"), "WANDB_CONFIG_DIR": str(base / "config"),
            "WANDB_SILENT": "true"}


def _config(run_dir: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML

    loaded: dict[str, Any] = {}
    for name in ("config.yaml", "job.yaml"):
        path = run_dir / name
        if path.exists():
            try:
                loaded[name.removesuffix(".yaml")] = YAML(typ="safe").load(path.read_text())
            except Exception:
                continue
    job = loaded.get("job") or {}
    return {"config": loaded.get("config") or {}, "sweep": job.get("sweep") or {},
            "inputs": job.get("inputs") or {}, "run_key": (job.get("run") or {}).get("key")}


class MetricLines:
    """The complete lines appended to a metrics file since the last read.

    Bytes after the last newline are a line still being written: kept back until its
    newline arrives, or until ``final`` (the writer has exited). A file that shrank was
    replaced: it is read again from its start."""

    def __init__(self, path: Path):
        self.path, self.offset, self.pending = path, 0, b""

    def read(self, final: bool = False) -> list[bytes]:
        try:
            with self.path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < self.offset:
                    self.offset, self.pending = 0, b""
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:  # not created yet
            chunk = b""
        self.offset += len(chunk)
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        if final and self.pending:
            lines, self.pending = [*lines, self.pending], b""
        return [line for line in lines if line.strip()]


def history_row(line: bytes) -> dict[str, Any] | None:
    """What W&B's history gets from one metrics line: its numbers, with ``step`` (the
    charts' x axis) if given; None for another rank's line or one that is not a JSON
    object of numbers (the end-of-run warnings name those lines). A NaN loss is logged: a
    diverging run should show on its curve."""
    try:
        record = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    rank = record.get("rank", 0)
    if isinstance(rank, int) and not isinstance(rank, bool) and rank != 0:
        return None
    row = {k: v for k, v in record.items() if k != "rank" and isinstance(v, int | float)
           and not isinstance(v, bool)}
    if not isinstance(record.get("step"), int) or isinstance(record.get("step"), bool):
        row.pop("step", None)
    return row if set(row) - {"step"} else None


class LiveRun:
    """A W&B run beside the command: ``start()`` after it starts, ``finish()`` after it ends."""

    def __init__(self, run_dir: Path, settings: dict[str, Any], metrics: Path):
        self.run_dir, self.settings, self.metrics = run_dir, settings, metrics
        self.run: Any = None
        self.meta: dict[str, Any] = {}
        self.error: str | None = None
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="wandb", daemon=True)

    def start(self) -> LiveRun:
        for key, value in hermetic_env(self.run_dir).items():
            os.environ[key] = value
            if key != "WANDB_SILENT":
                Path(value).mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        try:
            self.run = self._init()
            lines = MetricLines(self.metrics)
            while not self._ended.is_set():
                self._log(lines.read())
                self._ended.wait(POLL_S)
            self._log(lines.read(final=True))
        except Exception as error:  # logging must never cost the run
            self.error = f"{type(error).__name__}: {error}"

    def _init(self) -> Any:
        import wandb

        settings = self.settings
        self.meta = meta = _config(self.run_dir)
        options = ({"x_transaction_log_flush_interval": FLUSH_S}
                   if "x_transaction_log_flush_interval" in wandb.Settings.model_fields else {})
        run = wandb.init(project=settings["project"], entity=settings.get("entity"),
                         mode=settings.get("mode", "offline"), group=settings.get("group"),
                         job_type=settings.get("job_type"), tags=settings.get("tags") or None,
                         name=meta["run_key"], dir=str(self.run_dir),
                         settings=wandb.Settings(**options),
                         config={**meta["config"], "sweep": meta["sweep"],
                                 # Offline W&B cannot resolve artifacts: record the versions
                                 # runspec's registry resolved instead.
                                 "runspec_inputs": meta["inputs"],
                                 "runspec_key": meta["run_key"]}, reinit=True)
        # One history row per line, written at once; the recipe's step is the x axis. (W&B's
        # own step= would hold each row back until a later step arrives.)
        run.define_metric("step")
        run.define_metric("*", step_metric="step")
        return run

    def _log(self, lines: list[bytes]) -> None:
        for line in lines:
            row = history_row(line)
            if row is not None:
                self.run.log(row)

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Log what is left, the summary and the outputs; returns what result.json records."""
        settings = self.settings
        self._ended.set()
        self._thread.join(START_TIMEOUT_S)
        if self._thread.is_alive():
            self.error = f"W&B did not start within {START_TIMEOUT_S:g} s"
        failed = {"mode": settings.get("mode", "offline"), "project": settings.get("project")}
        if self.run is None or self._thread.is_alive():
            return {**failed, "error": self.error or "W&B did not start"}
        try:
            run = self.run
            energy = result.get("energy") or {}
            run.summary.update({**result.get("metrics", {}), "wall_s": result["wall_s"],
                                "exit_code": result["exit_code"],
                                "peak_rss_mb": result.get("peak_rss_mb"),
                                "energy_kwh": energy.get("energy_kwh"),
                                "emissions_kg": energy.get("emissions_kg"),
                                "energy_method_cpu": (energy.get("method") or {}).get("cpu")})
            recorded = {"mode": settings.get("mode", "offline"), "project": settings["project"],
                        "run_id": run.id, "dir": str(Path(run.dir).parent)}
            online = settings.get("mode") == "online"
            if online:
                used = _use_inputs(run, self.meta["inputs"])
                if used:
                    recorded["used"] = used
            if result["exit_code"] == 0 and settings.get("outputs"):
                recorded["artifacts"] = _log_outputs(run, settings["outputs"], self.meta, online)
            run.finish(exit_code=result["exit_code"])
            # A failure while following (the summary above still went out) is said too.
            return {**recorded, "error": self.error} if self.error else recorded
        except Exception as error:  # logging must never cost the run
            return {**failed, "error": f"{type(error).__name__}: {error}"}


def _use_inputs(run, inputs: dict[str, Any]) -> dict[str, str]:
    """Online only: link the inputs W&B knows (logged by an earlier online run)."""
    used = {}
    for name, pin in sorted(inputs.items()):
        reference = pin.get("wandb") if isinstance(pin, dict) else None
        if reference:
            run.use_artifact(reference)
            used[name] = reference
    return used


def _log_outputs(run, outputs: dict[str, str], meta: dict[str, Any], online: bool
                 ) -> dict[str, dict[str, Any]]:
    """Log each produced output as a W&B artifact referencing the files in place."""
    import wandb

    from runspec.artifacts.uri import output_variable

    logged: dict[str, dict[str, Any]] = {}
    for name, type_ in sorted(outputs.items()):
        path = os.environ.get(output_variable(name))
        if not path or not Path(path).exists():
            continue  # apply fails the run for the missing output; nothing to log
        artifact = wandb.Artifact(name, type=type_, metadata={
            "runspec_producer": meta["run_key"],
            "runspec_inputs": {k: v.get("version") for k, v in meta["inputs"].items()
                               if isinstance(v, dict)}})
        artifact.add_reference(Path(path).resolve().as_uri())
        artifact = run.log_artifact(artifact, aliases=["latest"])
        entry: dict[str, Any] = {"type": type_, "path": path}
        if online:
            artifact.wait()  # the version W&B assigned is known only once it is committed
            entry["ref"] = artifact.qualified_name
        logged[name] = entry
    return logged
