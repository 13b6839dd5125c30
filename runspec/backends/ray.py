"""The Ray backend: one Ray Jobs API submission per run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from runspec.plan.ir import Launch, LaunchContext, Run, RunSpec


class RayBackend:
    name = "ray"

    def request(self, spec: RunSpec, root: Path, digest: str) -> dict:
        """``body`` is the Jobs API request as sent; ``secrets`` are added to its
        ``runtime_env.env_vars`` at submission, from the launching environment, and never
        written anywhere. ``submission_id`` comes from the run digest, so Ray itself detects
        the same run submitted twice."""
        command = " ".join(shlex.quote(a) for a in spec.argv)
        cwd = (root / spec.cwd).as_posix() if spec.cwd != "." else root.as_posix()
        runtime_env = dict(spec.settings.get("runtime_env", {}))
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **spec.env}
        resources = spec.resources
        body = {
            "entrypoint": f"cd {shlex.quote(cwd)} && exec {command}",
            "submission_id": f"runspec-{digest[:20]}",
            "runtime_env": runtime_env,
            "entrypoint_num_cpus": resources["procs_per_node"] * (resources.get("cpus_per_task") or 1),
            "metadata": {"runspec_key": spec.key, "runspec_stage": spec.stage},
        }
        if resources.get("gpus_per_node"):
            body["entrypoint_num_gpus"] = resources["gpus_per_node"]
        if resources.get("mem"):
            body["entrypoint_memory"] = memory_bytes(resources["mem"])
        if resources.get("extra"):
            body["entrypoint_resources"] = {k: float(v) for k, v in resources["extra"].items()}
        return {"body": body, "secrets": {k: {"from_env": v} for k, v in spec.secrets.items()}}

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"ray.json": json.dumps(self.request(spec, root, digest), indent=2) + "\n"}

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        return [Launch("ray", context.stage, [run.key],
                       self.request(specs[run.key], context.root, run.digest),
                       directory=run.run_dir) for run in runs]


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def memory_bytes(text: str) -> int:
    """``"32G"`` → bytes (Slurm's units: K, M, G, T are powers of 1024; bare is megabytes)."""
    number = text.rstrip("B").rstrip("KMGT")
    unit = text.rstrip("B")[len(number):]
    return int(float(number) * (_UNITS[unit] if unit else _UNITS["M"]))
