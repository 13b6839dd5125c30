"""The Ray backend: one Ray Jobs API submission per run.

Secret values never go into the submission: Ray keeps a job's ``runtime_env`` and shows it
to anyone who can reach the dashboard (``GET /api/jobs/<id>``). Each run with secrets gets
a ``secrets.env`` (0600) in its run directory at submission instead, which the entrypoint
reads and removes before it starts the recipe (runs share the file system with the head).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from runspec.backends.base import (
    ENDED,
    SECRETS_FILE,
    Capabilities,
    Handle,
    RunHandle,
    no_setting_problems,
    remove_secrets,
    sweep_secrets,
)
from runspec.backends.ray_client import RayClient
from runspec.ir import Launch, LaunchContext, Run, RunSpec
from runspec.state.status import RunStatus


@cache
def options_model() -> type:
    """The Ray keys of a profile and of `[env]`, built on first use (validate checks the
    schema generated from it and never builds it)."""
    from typing import Any

    from pydantic import Field

    from runspec.manifest.fields import Strict

    class RayFields(Strict):
        """Keys of the Ray executor (Ray Jobs API)."""

        address: str | None = Field(
            None,
            description="Ray dashboard address; unset starts a local head on 127.0.0.1.",
            examples=["http://127.0.0.1:8265"],
        )
        runtime_env: dict[str, Any] = Field(
            default_factory=dict,
            description="Extra Ray runtime_env entries (pip, py_modules, …).",
        )
        timeout: float | None = Field(
            None, gt=0, le=86_400, description="Seconds to wait for the Ray address to answer."
        )

    return RayFields


@dataclass(frozen=True)
class RayJob(RunHandle):
    """A Ray Jobs API submission: its id (chosen by runspec, from the run digest) and the
    dashboard that has it."""

    submission_id: str | None = None
    address: str | None = None
    launch: str | None = None
    tag: str | None = None
    adopted: bool | None = None       # an identical job was already queued or running


class RayBackend:
    name = "ray"
    title = "Ray"
    summary = "submits Ray jobs"
    options_model = staticmethod(options_model)
    handle_type = RayJob
    setting_problems = staticmethod(no_setting_problems)
    capabilities = Capabilities(
        launch_modes=frozenset({"direct", "ray", "torchrun"}), containers=False,
        multi_node=False, paced_by_runspec=True, attached=False, default_parallel=None,
        stage_dependencies=False, startup_commands=False, poll_s=1.0)

    def request(self, spec: RunSpec, root: Path, digest: str) -> dict:
        """``body`` is the Jobs API request as sent; ``secrets`` (by reference) are written to
        the run's ``secrets.env`` at submission, which the entrypoint reads and removes.
        ``submission_id`` comes from the run digest, so Ray itself detects the same run
        submitted twice."""
        from runspec.backends.base import env_name

        command = " ".join(shlex.quote(a) for a in spec.argv)
        cwd = (root / spec.cwd).as_posix() if spec.cwd != "." else root.as_posix()
        load = ""
        if spec.secrets:
            for name in spec.secrets:
                env_name(name, "secret")
            secrets_file = shlex.quote((root / spec.run_dir / SECRETS_FILE).as_posix())
            load = f". {secrets_file} && rm -f {secrets_file} && "
        runtime_env = dict(spec.settings.get("runtime_env", {}))
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **spec.env}
        resources = spec.resources
        body = {
            "entrypoint": f"cd {shlex.quote(cwd)} && {load}exec {command}",
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
        request = {"address": spec.settings.get("address"), "timeout": spec.settings.get("timeout"),
                   "body": body, "secrets": {k: {"from_env": v} for k, v in spec.secrets.items()}}
        if spec.secrets:
            request["secret_file"] = f"{spec.run_dir}/{SECRETS_FILE}"
        return request

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"ray.json": json.dumps(self.request(spec, root, digest), indent=2) + "\n"}

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        return [Launch("ray", context.stage, [run.key],
                       self.request(specs[run.key], context.root, run.digest),
                       directory=run.run_dir) for run in runs]

    @staticmethod
    def describe_launches(launches: list[Launch]) -> str:
        return f"{len(launches)} Ray job{'s' * (len(launches) != 1)}"

    @staticmethod
    def describe(handle: Handle | None) -> str:
        job = RayJob.of(handle)
        return f"Ray job {job.submission_id}" if job.submission_id else ""

    @staticmethod
    def dependency_id(handle: Handle | None) -> str | None:
        return None

    @staticmethod
    def intent(launch: Launch, tag: str, index: int) -> Handle:
        """The submission id is chosen by us, so the job can be asked about directly."""
        return RayJob(launch.request["body"]["submission_id"], launch.request.get("address"),
                      launch.directory, tag).record()

    @contextlib.contextmanager
    def session(self, launches: list[Launch], say: Callable[[str], None], keep: bool = False
                ) -> Iterator:
        """With no ``address``, a local head on 127.0.0.1 for this apply: started if none
        runs, and stopped at the end (also when the apply fails) once its runs ended, unless
        ``keep`` (a detached apply leaves it to the runs)."""
        from runspec.backends.ray_head import running_head, start_head, stop_head

        class Head:
            must_follow = False

        head = Head()
        if any(not launch.request.get("address") for launch in launches) \
                and running_head() is None:
            say("starting a local Ray head on 127.0.0.1 …")
            say(f"Ray head up at {start_head()['address']}")
            head.must_follow = not keep
        try:
            yield head
        finally:
            if head.must_follow:
                say("stopping the local Ray head")
                stop_head()

    def start(self, launch: Launch, root: Path, run_dir: Path) -> Handle:
        return self.submit(launch, root, {}, uuid.uuid4().hex[:12])[launch.keys[0]]

    def poll(self, handle: Handle, root: Path, run_dir: Path) -> RunStatus | None:
        from runspec.state.store import Member

        member = Member(key="", stage="", digest="", handle=handle,
                        run_dir=str(run_dir.relative_to(root)))
        status = self.refresh_many([member], root)[""]
        return status if status in ENDED else None

    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, dict]:
        from runspec.backends.base import BackendError, resolve_secrets, write_secrets

        client = _client(launch.request)
        body = json.loads(json.dumps(launch.request["body"]))
        secrets = resolve_secrets({k: v["from_env"] for k, v in launch.request["secrets"].items()})
        secrets_file = root / launch.request["secret_file"] if secrets else None
        if secrets_file is not None:
            try:
                write_secrets(secrets_file, secrets)
            except OSError as error:
                raise BackendError(f"cannot write the secrets file {secrets_file}: "
                                   f"{error.strerror or error}") from None
        try:
            return self._post(client, body, launch)
        except BackendError as error:
            if secrets_file is not None and not error.ambiguous:
                secrets_file.unlink(missing_ok=True)
            raise

    @staticmethod
    def _post(client, body: dict, launch: Launch) -> dict[str, dict]:
        from runspec.backends.base import BackendError

        base_id = body["submission_id"]
        for attempt in range(1, 50):
            body["submission_id"] = base_id if attempt == 1 else f"{base_id}-r{attempt}"
            status, answer = client.call("POST", "/api/jobs/", body)
            if status < 300:
                return {launch.keys[0]: RayJob(body["submission_id"], client.address).record()}
            message = str(answer.get("message") or answer)
            if "already exists" not in message:
                raise BackendError(f"Ray refused the job: {message[:500]}")
            _, existing = client.call("GET", f"/api/jobs/{body['submission_id']}")
            if existing.get("status") in ("PENDING", "RUNNING"):
                # The same request is already queued or running (a crashed apply): adopt it.
                return {launch.keys[0]: RayJob(body["submission_id"], client.address,
                                               adopted=True).record()}
        raise BackendError(f"Ray keeps refusing {base_id}: too many earlier attempts")

    def refresh_many(self, members, root: Path) -> dict[str, RunStatus]:
        """Each run's status; a run that has ended loses a secrets file it did not read."""
        return sweep_secrets(self._statuses(members, root), members, root)

    def _statuses(self, members, root: Path) -> dict[str, RunStatus]:
        from runspec.state import status as run_status

        statuses = {}
        for member in members:
            final = run_status.from_result(root / member.run_dir)
            if final is not None:
                statuses[member.key] = final
                continue
            job = RayJob.of(member.handle)
            if not job.submission_id:
                statuses[member.key] = RunStatus.LOST
                continue
            code, answer = _client_for(job).call("GET", f"/api/jobs/{job.submission_id}")
            statuses[member.key] = (_STATES.get(answer.get("status") or "", RunStatus.LOST) if code < 300
                                    else RunStatus.LOST)
        return statuses

    def cancel_many(self, members, root: Path) -> None:
        for member in members:
            job = RayJob.of(member.handle)
            if job.submission_id:
                _client_for(job).call("POST", f"/api/jobs/{job.submission_id}/stop")
            remove_secrets(root, member.run_dir)

    def log_text(self, member, root: Path) -> str:
        job = RayJob.of(member.handle)
        if not job.submission_id:
            return ""
        _, answer = _client_for(job).call("GET", f"/api/jobs/{job.submission_id}/logs")
        return answer.get("logs", "")


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def memory_bytes(text: str) -> int:
    """``"32G"`` → bytes (Slurm's units: K, M, G, T are powers of 1024; bare is megabytes)."""
    number = text.rstrip("B").rstrip("KMGT")
    unit = text.rstrip("B")[len(number):]
    return int(float(number) * (_UNITS[unit] if unit else _UNITS["M"]))


# -- execution: the Ray Jobs REST API (no `import ray` needed) ---------------------------------

_STATES: dict[str, RunStatus] = {
    "PENDING": RunStatus.SUBMITTED, "RUNNING": RunStatus.RUNNING,
    "SUCCEEDED": RunStatus.SUCCEEDED, "FAILED": RunStatus.FAILED, "STOPPED": RunStatus.CANCELLED}


def _client_for(job: RayJob) -> RayClient:
    """A client for a recorded job (an intent may not know the managed head's address)."""
    return _client({"address": job.address})


def _client(request: dict) -> RayClient:
    """The profile's address, or the head runspec started (see ``ray_head``)."""
    address = request.get("address")
    if not address:
        from runspec.backends.ray_head import running_head

        head = running_head()
        if head is None:
            from runspec.backends.base import BackendError

            raise BackendError("no Ray address and no runspec-managed Ray head is running")
        address = head["address"]
    return RayClient(address, request.get("timeout"))
