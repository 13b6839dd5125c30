"""The NeMo-Run adapter: for users who already build NeMo-Run executors.

Planning renders the same per-run ``launch.sh`` as Slurm (the command NeMo-Run's executor
will wrap) and the executor options; submission through NeMo-Run arrives with apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from runspec.backends.base import (
    Capabilities,
    RunHandle,
    no_scheduler_logs,
    no_session,
    run_script,
)
from runspec.ir import Launch, LaunchContext, Run, RunSpec
from runspec.state.status import RunStatus


@cache
def options_model() -> type:
    """The NeMo-Run keys of a profile and of `[env]`, built on first use (validate checks
    the schema generated from it and never builds it)."""
    from typing import Any, Literal

    from pydantic import Field

    from runspec.manifest.fields import Strict

    class NemoRunFields(Strict):
        """Keys of the NeMo-Run adapter, for users who already have NeMo-Run executors."""

        nemo_executor: Literal["local", "slurm", "docker"] | None = Field(
            None, description="Which NeMo-Run executor class to build."
        )
        options: dict[str, Any] = Field(
            default_factory=dict,
            description="Keyword arguments passed to the NeMo-Run executor.",
        )

    return NemoRunFields


@dataclass(frozen=True)
class NemoRunIntent(RunHandle):
    """What is recorded before a NeMo-Run submission (which runspec cannot send yet)."""

    launch: str | None = None
    tag: str | None = None


class NemoRunBackend:
    name = "nemo-run"
    title = "NemoRun"
    summary = "launches through NeMo-Run"
    options_model = staticmethod(options_model)
    handle_type = NemoRunIntent
    capabilities = Capabilities(
        launch_modes=frozenset({"direct", "torchrun"}), containers=True, multi_node=True,
        paced_by_runspec=False, attached=False, default_parallel=None, stage_dependencies=False,
        submits=False)
    session = staticmethod(no_session)
    log_text = staticmethod(no_scheduler_logs)

    @staticmethod
    def describe_launches(launches: list[Launch]) -> str:
        return f"{len(launches)} NeMo-Run launch{'es' * (len(launches) != 1)}"

    @staticmethod
    def describe(handle: dict | None) -> str:
        return ""

    @staticmethod
    def dependency_id(handle: dict | None) -> str | None:
        return None

    @staticmethod
    def intent(launch: Launch, tag: str, index: int) -> dict:
        return NemoRunIntent(launch.directory, tag).record()

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

    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, dict]:
        from runspec.backends.base import BackendError

        raise BackendError("submitting through NeMo-Run is not implemented yet",
                           'plan and render work; to launch, use executor = "slurm" (the same '
                           "launch.sh) or a local profile")

    def refresh_many(self, members, root: Path) -> dict[str, RunStatus]:
        from runspec.state import status as run_status

        return {m.key: run_status.from_result(root / m.run_dir) or m.status for m in members}

    def cancel_many(self, members, root: Path) -> None:
        from runspec.backends.base import BackendError

        raise BackendError("cancelling NeMo-Run launches is not implemented yet")
