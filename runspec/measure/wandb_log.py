"""W&B logging of a finished run, hermetic: every W&B file lives under the run directory.

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
from pathlib import Path
from typing import Any


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


def log_run(run_dir: Path, settings: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Log config, sweep point, metric history, summary and energy; returns what to record."""
    for key, value in hermetic_env(run_dir).items():
        os.environ[key] = value
        if key != "WANDB_SILENT":
            Path(value).mkdir(parents=True, exist_ok=True)
    try:
        import wandb

        meta = _config(run_dir)
        run = wandb.init(project=settings["project"], entity=settings.get("entity"),
                         mode=settings.get("mode", "offline"), group=settings.get("group"),
                         job_type=settings.get("job_type"), tags=settings.get("tags") or None,
                         name=meta["run_key"], dir=str(run_dir),
                         config={**meta["config"], "sweep": meta["sweep"],
                                 # Offline W&B cannot resolve artifacts: record the versions
                                 # runspec's registry resolved instead.
                                 "runspec_inputs": meta["inputs"],
                                 "runspec_key": meta["run_key"]}, reinit=True)
        metrics_file = run_dir / "metrics.jsonl"
        if metrics_file.exists():
            for line in metrics_file.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("rank", 0) == 0:
                    values = {k: v for k, v in record.items()
                              if k not in ("rank", "step") and isinstance(v, int | float)}
                    if values:
                        run.log(values, step=record.get("step"))
        energy = result.get("energy") or {}
        run.summary.update({**result.get("metrics", {}), "wall_s": result["wall_s"],
                            "exit_code": result["exit_code"],
                            "energy_kwh": energy.get("energy_kwh"),
                            "energy_method_cpu": (energy.get("method") or {}).get("cpu")})
        recorded = {"mode": settings.get("mode", "offline"), "project": settings["project"],
                    "run_id": run.id, "dir": str(Path(run.dir).parent)}
        online = settings.get("mode") == "online"
        if online:
            used = _use_inputs(run, meta["inputs"])
            if used:
                recorded["used"] = used
        if result["exit_code"] == 0 and settings.get("outputs"):
            recorded["artifacts"] = _log_outputs(run, settings["outputs"], meta, online)
        run.finish(exit_code=result["exit_code"])
        return recorded
    except Exception as error:  # logging must never cost the run
        return {"mode": settings.get("mode", "offline"), "project": settings.get("project"),
                "error": f"{type(error).__name__}: {error}"}


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
