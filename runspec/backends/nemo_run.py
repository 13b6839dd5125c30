"""The NeMo-Run adapter: for users who already build NeMo-Run executors.

Planning renders the same per-run ``launch.sh`` as Slurm (the command NeMo-Run's executor
will wrap) and the executor options; submission through NeMo-Run arrives with apply.
"""

from __future__ import annotations

import json
from pathlib import Path

from runspec.backends.base import run_script
from runspec.plan.ir import Launch, LaunchContext, Run, RunSpec


class NemoRunBackend:
    name = "nemo-run"

    def request(self, spec: RunSpec) -> dict:
        return {"executor": spec.settings.get("nemo_executor", "local"),
                "options": spec.settings.get("options", {}), "resources": spec.resources,
                "container_image": spec.container_image, "mounts": spec.mounts,
                "script": f"{spec.run_dir}/launch.sh"}

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"launch.sh": run_script(spec),
                "nemo_run.json": json.dumps(self.request(spec), indent=2) + "\n"}

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        return [Launch("nemo-run", context.stage, [run.key], self.request(specs[run.key]),
                       directory=run.run_dir) for run in runs]
