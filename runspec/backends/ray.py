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
        return {"address": spec.settings.get("address"), "timeout": spec.settings.get("timeout"),
                "body": body, "secrets": {k: {"from_env": v} for k, v in spec.secrets.items()}}

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"ray.json": json.dumps(self.request(spec, root, digest), indent=2) + "\n"}

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        return [Launch("ray", context.stage, [run.key],
                       self.request(specs[run.key], context.root, run.digest),
                       directory=run.run_dir) for run in runs]

    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, dict]:
        from runspec.backends.base import BackendError, resolve_secrets

        client = _client(launch.request)
        body = json.loads(json.dumps(launch.request["body"]))
        secrets = resolve_secrets({k: v["from_env"] for k, v in launch.request["secrets"].items()})
        body["runtime_env"]["env_vars"].update(secrets)
        base_id = body["submission_id"]
        for attempt in range(1, 50):
            body["submission_id"] = base_id if attempt == 1 else f"{base_id}-r{attempt}"
            status, answer = client.call("POST", "/api/jobs/", body)
            if status < 300:
                return {launch.keys[0]: {"submission_id": body["submission_id"],
                                         "address": client.address}}
            message = str(answer.get("message") or answer)
            if "already exists" not in message:
                raise BackendError(f"Ray refused the job: {message[:500]}")
            _, existing = client.call("GET", f"/api/jobs/{body['submission_id']}")
            if existing.get("status") in ("PENDING", "RUNNING"):
                # The same request is already queued or running (a crashed apply): adopt it.
                return {launch.keys[0]: {"submission_id": body["submission_id"],
                                         "address": client.address, "adopted": True}}
        raise BackendError(f"Ray keeps refusing {base_id}: too many earlier attempts")

    def refresh_many(self, members, root: Path) -> dict[str, str]:
        from runspec.state import status as run_status

        statuses = {}
        for member in members:
            final = run_status.from_result(root / member.run_dir)
            if final is not None:
                statuses[member.key] = final
                continue
            handle = member.handle or {}
            if "submission_id" not in handle:
                statuses[member.key] = "lost"
                continue
            code, answer = _client_for(handle).call(
                "GET", f"/api/jobs/{handle['submission_id']}")
            statuses[member.key] = _STATES.get(answer.get("status"), "lost") if code < 300 else "lost"
        return statuses

    def cancel_many(self, members, root: Path) -> None:
        for member in members:
            handle = member.handle or {}
            if "submission_id" in handle:
                _client_for(handle).call("POST", f"/api/jobs/{handle['submission_id']}/stop")

    def log_text(self, member, root: Path) -> str:
        handle = member.handle or {}
        if "submission_id" not in handle:
            return ""
        _, answer = _client_for(handle).call("GET", f"/api/jobs/{handle['submission_id']}/logs")
        return answer.get("logs", "")


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def memory_bytes(text: str) -> int:
    """``"32G"`` → bytes (Slurm's units: K, M, G, T are powers of 1024; bare is megabytes)."""
    number = text.rstrip("B").rstrip("KMGT")
    unit = text.rstrip("B")[len(number):]
    return int(float(number) * (_UNITS[unit] if unit else _UNITS["M"]))


# -- execution: the Ray Jobs REST API (no `import ray` needed) ---------------------------------

DEFAULT_TIMEOUT_S = 10.0
_STATES = {"PENDING": "submitted", "RUNNING": "running", "SUCCEEDED": "succeeded",
           "FAILED": "failed", "STOPPED": "cancelled"}


class RayClient:
    """A few Ray Jobs REST calls with timeouts: a silent address is an error, never a hang."""

    def __init__(self, address: str, timeout: float | None = None):
        self.address = address.rstrip("/")
        self.timeout = timeout or DEFAULT_TIMEOUT_S

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        from runspec.backends.base import BackendError

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
                return response.status, (json.loads(text) if text.strip() else {})
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, {"message": text}
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            # A POST that timed out may have arrived: the caller keeps it as an intent.
            sent = method == "POST" and isinstance(reason, TimeoutError | OSError) and not \
                isinstance(reason, ConnectionRefusedError)
            raise BackendError(f"Ray at {self.address} did not answer within {self.timeout:g} s "
                               f"({reason})", "is the Ray head running? (set env.address or "
                               "leave it unset to let runspec start one)",
                               ambiguous=sent) from None


def _client_for(handle: dict) -> RayClient:
    """A client for a recorded job (an intent may not know the managed head's address)."""
    return _client({"address": handle.get("address")})


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
