"""The local backend: one subprocess per run on this machine (the embedded default)."""

from __future__ import annotations

import json
from pathlib import Path

from runspec.plan.ir import Launch, LaunchContext, Run, RunSpec


class LocalBackend:
    name = "local"

    def request(self, spec: RunSpec) -> dict:
        """Exactly what the local runner executes: argv, env (secrets by reference), cwd."""
        return {"argv": spec.argv, "env": spec.env,
                "secrets": {k: {"from_env": v} for k, v in spec.secrets.items()}, "cwd": spec.cwd}

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"local.json": json.dumps(self.request(spec), indent=2) + "\n"}

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        return [Launch("local", context.stage, [run.key], self.request(specs[run.key]),
                       directory=run.run_dir) for run in runs]
