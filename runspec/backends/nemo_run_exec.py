"""The half of the NeMo-Run backend that imports ``nemo_run``: submitting an experiment,
reconstructing it from its directory for status, cancel and logs.

Loaded only when a NeMo-Run stage is applied, refreshed or cancelled. What is built here is
exactly the configuration the plan showed (``class`` and keyword arguments), with two
additions NeMo-Run does not make itself:

* Host keys. NeMo-Run's ``SSHTunnel`` connects through fabric, whose ``Connection`` sets
  paramiko's ``AutoAddPolicy`` and loads no known_hosts file: any host key is accepted. Here
  the tunnel's session is opened before NeMo-Run uses it, with paramiko's ``RejectPolicy``
  and the profile's ``known_hosts`` (default ``~/.ssh/known_hosts``) loaded, so an unknown or
  changed host key is an error; and the ``ssh`` NeMo-Run starts for its rsync is given the
  same file with ``StrictHostKeyChecking=yes`` and ``BatchMode=yes``.
* Quiet. NeMo-Run prints rich progress to the console; it is captured, and shown only in
  an error.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shlex
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runspec.backends.base import BackendError, executable_env
from runspec.backends.nemo_run import INSTALL_HINT, NemoRunTask
from runspec.ir import Launch
from runspec.state.status import ENDED, RunStatus

SSH_SESSIONS = 4
"""Tasks NeMo-Run submits at once (its thread pool): each opens a channel on the one SSH
connection, and OpenSSH allows 10 per connection (MaxSessions); NeMo-Run's default of 16
fails with "ChannelException(2, 'Connect failed')"."""
MIRRORED = ("result.json", "started.json", "stdout.log", "stderr.log")
"""tunnel = "ssh": the run files copied back from the cluster on each refresh."""


def load() -> Any:
    """``nemo_run``, or a BackendError that says how to install it (state is untouched)."""
    try:
        with _quiet():
            import nemo_run
    except Exception as error:  # an ImportError, or whatever a broken dependency raises
        raise BackendError(f"cannot import nemo_run ({type(error).__name__}: {error})",
                           INSTALL_HINT) from None
    return nemo_run


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """NeMo-Run's console output (rich, print, logging to stderr), captured."""
    import logging

    out = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(out)
    saved = root.handlers[:]
    root.handlers = [handler]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield out
    finally:
        root.handlers = saved


def _tail(out: io.StringIO, lines: int = 8) -> str:
    text = [line for line in out.getvalue().splitlines() if line.strip()]
    return " | ".join(text[-lines:])


@contextlib.contextmanager
def _submitting_from(root: Path) -> Iterator[None]:
    """NeMo-Run reads the environment and the working directory of this process: PATH with
    runspec's Python first (what sbatch --export=PATH,… passes on, so the job's ``python``
    is this one), the project's directory as the working directory (its packagers)."""
    saved_env, saved_cwd = os.environ.get("PATH"), os.getcwd()
    os.environ["PATH"] = executable_env({})["PATH"]
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        if saved_env is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved_env


# -- building what the plan shows ----------------------------------------------------------

def build_executor(run: Any, config: dict[str, Any]) -> tuple[Any, str | None]:
    """The executor a task's configuration describes, and the known_hosts file its SSH
    tunnel must be checked against (None without one)."""
    from nemo_run.core.execution.dgxcloud import DGXCloudExecutor
    from nemo_run.core.execution.lepton import LeptonExecutor
    from nemo_run.core.execution.skypilot import SkypilotExecutor

    classes = {"LocalExecutor": run.LocalExecutor, "SlurmExecutor": run.SlurmExecutor,
               "DockerExecutor": run.DockerExecutor, "DGXCloudExecutor": DGXCloudExecutor,
               "LeptonExecutor": LeptonExecutor, "SkypilotExecutor": SkypilotExecutor,
               "LocalTunnel": run.LocalTunnel, "SSHTunnel": run.SSHTunnel,
               "Packager": run.Packager, "PatternPackager": run.PatternPackager,
               "GitArchivePackager": run.GitArchivePackager}
    kwargs = {k: v for k, v in config.items() if k != "class"}
    known_hosts = None
    if isinstance(kwargs.get("tunnel"), dict):
        tunnel = dict(kwargs["tunnel"])
        known_hosts = tunnel.pop("known_hosts", None)
        if tunnel.get("identity"):
            tunnel["identity"] = os.path.expanduser(tunnel["identity"])
        kwargs["tunnel"] = classes[tunnel.pop("class")](**tunnel)
    if isinstance(kwargs.get("packager"), dict):
        packager = dict(kwargs["packager"])
        kwargs["packager"] = classes[packager.pop("class")](**packager)
    return classes[config["class"]](**kwargs), known_hosts


def _connect_checked(tunnel: Any, known_hosts: str | None) -> Any:
    """Open ``tunnel``'s session with the host key checked against ``known_hosts``
    (never added), and make NeMo-Run's rsync ``ssh`` check the same file."""
    import paramiko  # type: ignore[import-untyped]
    from fabric import Config, Connection  # type: ignore[import-untyped]

    if tunnel.session is not None and tunnel.session.is_connected:
        return tunnel.session
    hosts = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
    address = f"{tunnel.user}@{tunnel.host}" + (f":{tunnel.port}" if tunnel.port else "")
    identity = os.path.expanduser(tunnel.identity) if tunnel.identity else None
    connection = Connection(
        tunnel.host, user=tunnel.user or None, port=tunnel.port, forward_agent=False,
        connect_kwargs={"key_filename": [identity]} if identity else {},
        config=Config(overrides={"run": {"in_stream": False}, "load_ssh_configs": False}),
        connect_timeout=20)
    try:
        connection.client.load_host_keys(hosts)
    except OSError as error:
        raise BackendError(f"cannot read the known_hosts file {hosts}: "
                           f"{error.strerror or error}", "set known_hosts in the profile to "
                           "a file that holds the login node's host key") from None
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        connection.open()
    except paramiko.ssh_exception.SSHException as error:
        unknown = "not found in known_hosts" in str(error)
        raise BackendError(
            f"ssh {address}: " + (f"its host key is not in {hosts}" if unknown else str(error)),
            (f"add the host's key to {hosts} (ssh-keyscan, checked against what the cluster's "
             "admins publish); runspec never accepts an unknown key") if unknown else
            "check host, port, user and identity in the profile") from None
    except OSError as error:
        raise BackendError(f"ssh {address}: {error.strerror or error}",
                           "is the login node reachable? check host and port") from None
    # NeMo-Run's rsync runs `ssh -i <key_filename…> -p <port>`: the same host key check.
    checks = f"-o UserKnownHostsFile={hosts} -o StrictHostKeyChecking=yes -o BatchMode=yes"
    connection.connect_kwargs["key_filename"] = [f"{identity or '/dev/null'} {checks}"]
    tunnel.session = connection
    return connection


def _check_tunnels(experiment: Any, known_hosts: str | None) -> None:
    """Every SSH tunnel the experiment and its tasks hold: one checked session."""
    import nemo_run as run

    sessions: dict[str, Any] = {}
    tunnels = list(experiment.tunnels.values())
    tunnels += [job.executor.tunnel for job in experiment.jobs
                if isinstance(getattr(job.executor, "tunnel", None), run.SSHTunnel)]
    for tunnel in tunnels:
        if not isinstance(tunnel, run.SSHTunnel):
            continue
        if tunnel.key not in sessions:
            sessions[tunnel.key] = _connect_checked(tunnel, known_hosts)
            experiment.tunnels.setdefault(tunnel.key, tunnel)
        tunnel.session = sessions[tunnel.key]


# -- submit -------------------------------------------------------------------------------

def submit(launch: Launch, root: Path, tag: str) -> dict[str, dict]:
    """One NeMo-Run experiment for the launch, one task per run (the run's launch.sh,
    inline), run detached; handles per run key."""
    run = load()
    request = launch.request
    title = request["title"]
    experiment_id = f"{title}_{tag}"
    base = root / request["base_dir"]
    known_hosts = None
    with _quiet() as out, _submitting_from(root):
        try:
            experiment = run.Experiment(
                title, id=experiment_id, base_dir=str(base), log_level="WARN",
                clean_mode=True, enable_goodbye_message=False, skip_status_at_exit=True,
                threadpool_workers=SSH_SESSIONS)
            with experiment:
                for task in request["tasks"]:
                    script = (root / task["script"]).read_text(encoding="utf-8")
                    executor, known_hosts = build_executor(run, task["executor"])
                    experiment.add(run.Script(inline=script), executor=executor,
                                   name=task["name"])
                _check_tunnels(experiment, known_hosts)
                experiment.run(detach=True, sequential=request["sequential"])
        except BackendError:
            raise
        except Exception as error:
            launched = [job for job in getattr(experiment, "jobs", []) if job.handle]
            for job in launched:  # a half-submitted experiment is taken back
                with contextlib.suppress(Exception):
                    job.cancel(runner=experiment._runner)
            raise BackendError(f"NeMo-Run could not submit the experiment {experiment_id}: "
                               f"{type(error).__name__}: {error}",
                               _tail(out) or None) from None
    handles = {}
    jobs = {job.id: job for job in experiment.jobs}
    for index, task in enumerate(request["tasks"]):
        job = jobs[task["name"]]
        if not job.handle:
            raise BackendError(f"NeMo-Run did not launch task {task['name']} of "
                               f"{experiment_id}", _tail(out) or None, ambiguous=True)
        intent = NemoRunTask.of(launch_intent(launch, tag, index))
        handles[task["key"]] = NemoRunTask(
            experiment=intent.experiment, experiment_dir=intent.experiment_dir,
            task=intent.task, app=job.handle, job_id=_app_id(job.handle),
            executor=request["nemo_executor"], remote_dir=_remote_dir(job),
            launch=launch.directory).record()
    return handles


def launch_intent(launch: Launch, tag: str, index: int) -> dict:
    from runspec.backends.nemo_run import NemoRunBackend

    return NemoRunBackend.intent(launch, tag, index)


def _app_id(handle: str) -> str | None:
    """``slurm_tunnel://nemo_run/12`` → ``12``."""
    parts = handle.partition("://")[2].split("/")
    return parts[1] if len(parts) > 1 and parts[1] else None


def _remote_dir(job: Any) -> str | None:
    """tunnel = "ssh": the task's code directory on the cluster (the run directories are
    inside it, at the same relative paths)."""
    import nemo_run as run

    tunnel = getattr(job.executor, "tunnel", None)
    if not isinstance(tunnel, run.SSHTunnel):
        return None
    return os.path.join(tunnel.job_dir, Path(job.executor.job_dir).name, "code")


# -- reconstructing experiments -----------------------------------------------------------

def _experiments(members: list, root: Path) -> dict[str, tuple[Any, list]]:
    """experiment dir → (the experiment reconstructed from it, or None when it was never
    written, its members)."""
    run = load()
    grouped: dict[str, list] = {}
    for member in members:
        grouped.setdefault(NemoRunTask.of(member.handle).directory, []).append(member)
    out: dict[str, tuple[Any, list]] = {}
    for directory, group in grouped.items():
        path = root / directory
        experiment = None
        if directory and (path / "_CONFIG").is_file() and (path / "_TASKS").is_file():
            with _quiet() as log:
                try:
                    experiment = _reconstruct(run, path)
                except Exception as error:
                    raise BackendError(f"cannot read the NeMo-Run experiment {directory}: "
                                       f"{type(error).__name__}: {error}",
                                       _tail(log) or None) from None
            _check_tunnels(experiment, _known_hosts(group[0]))
        out[directory] = (experiment, group)
    return out


def _reconstruct(run: Any, path: Path) -> Any:
    """The experiment saved in ``path`` (``<base>/experiments/<title>/<id>``), as NeMo-Run's
    ``Experiment.from_id`` rebuilds one, but from its own base directory rather than
    NeMo-Run's home."""
    import fiddle as fdl  # type: ignore[import-untyped]
    from nemo_run.core.serialization.zlib_json import ZlibJSONSerializer

    config = fdl.cast(run.Config, ZlibJSONSerializer().deserialize(
        (path / "_CONFIG").read_text(encoding="utf-8")))
    config.id = path.name
    config._reconstruct = True
    config.base_dir = str(path.parent.parent.parent)
    experiment = fdl.build(config)
    experiment._jobs = experiment._load_jobs()
    if (path / "_TUNNELS").is_file():
        experiment.tunnels = experiment._load_tunnels()
    return experiment


def _known_hosts(member: Any) -> str | None:
    settings = (member.request or {}).get("settings") or {}
    value = settings.get("known_hosts")
    return value if isinstance(value, str) else None


def _job(experiment: Any, member: Any) -> Any:
    task = NemoRunTask.of(member.handle).task
    for job in experiment.jobs:
        if job.id == task:
            return job
    return None


STATES = {"SUBMITTED": RunStatus.SUBMITTED, "PENDING": RunStatus.SUBMITTED,
          "RUNNING": RunStatus.RUNNING, "SUCCEEDED": RunStatus.SUCCEEDED,
          "FAILED": RunStatus.FAILED, "CANCELLED": RunStatus.CANCELLED}


def refresh(members: list, root: Path) -> dict[str, RunStatus]:
    """result.json first (mirrored from the cluster over SSH); then NeMo-Run's status of
    the task; when NeMo-Run cannot tell (its Slurm status needs sacct, which a cluster
    without accounting lacks), the job as the scheduler's own tools see it, through
    NeMo-Run's tunnel."""
    from runspec.state import status as run_status

    statuses: dict[str, RunStatus] = {}
    for experiment, group in _experiments(members, root).values():
        if experiment is None:  # the intent was recorded, the experiment never written
            for member in group:
                statuses[member.key] = (run_status.from_result(root / member.run_dir)
                                        or RunStatus.LOST)
            continue
        _mirror(experiment, group, root)
        asking = []
        for member in group:
            final = run_status.from_result(root / member.run_dir)
            if final is not None:
                statuses[member.key] = final
            else:
                asking.append(member)
        unknown = []
        with _quiet():
            for member in asking:
                job = _job(experiment, member)
                state = None
                if job is not None and job.handle:
                    with contextlib.suppress(Exception):
                        described = experiment._runner.status(job.handle)
                        state = described.state.name if described else None
                if state in STATES:
                    statuses[member.key] = STATES[state]
                else:
                    unknown.append(member)
        statuses.update(_scheduler_states(experiment, unknown, root))
        # A task that ended between the mirror above and NeMo-Run's answer wrote its
        # result after the copy: copy again, so it is never taken for lost.
        late = [m for m in asking if statuses.get(m.key) in ENDED]
        if late:
            _mirror(experiment, late, root)
            for member in late:
                statuses[member.key] = (run_status.from_result(root / member.run_dir)
                                        or statuses[member.key])
    return statuses


def _tunnel(experiment: Any, job: Any) -> Any:
    tunnel = getattr(job.executor, "tunnel", None)
    if tunnel is None:
        return None
    return experiment.tunnels.get(tunnel.key, tunnel)


def _scheduler_states(experiment: Any, members: list, root: Path) -> dict[str, RunStatus]:
    """What NeMo-Run could not tell: Slurm jobs by ``scontrol show job`` through the task's
    tunnel; anything else (a LocalExecutor task whose apply has ended) is lost when it left
    no result."""
    from runspec.backends.slurm import _STATES as SLURM_STATES

    out: dict[str, RunStatus] = {}
    for member in members:
        handle = NemoRunTask.of(member.handle)
        job = _job(experiment, member)
        if handle.executor != "slurm" or job is None or not handle.job_id:
            out[member.key] = RunStatus.LOST
            continue
        tunnel = _tunnel(experiment, job)
        try:
            with _quiet():
                shown = tunnel.run(f"scontrol show job -o {shlex.quote(handle.job_id)}",
                                   hide=True, warn=True)
        except Exception as error:
            raise BackendError(f"cannot ask Slurm about job {handle.job_id}: {error}") from None
        fields = dict(item.split("=", 1) for item in (shown.stdout or "").split() if "=" in item)
        state = fields.get("JobState")
        if state:
            out[member.key] = SLURM_STATES.get(state, RunStatus.RUNNING)
        elif shown.return_code == 0 or "Invalid job id" in (shown.stderr or ""):
            out[member.key] = RunStatus.LOST  # purged, and no result: nothing says how it went
        else:
            raise BackendError(f"scontrol failed for job {handle.job_id}: "
                               f"{(shown.stderr or '').strip()}")
    return out


def _mirror(experiment: Any, members: list, root: Path) -> None:
    """tunnel = "ssh": each run's result.json, started.json and logs, copied back from the
    task's code directory on the cluster (one command for the whole experiment)."""
    remote: list[tuple[Any, str]] = []
    for member in members:
        directory = NemoRunTask.of(member.handle).remote_dir
        if directory:
            remote.append((member, directory))
    if not remote:
        return
    job = _job(experiment, remote[0][0])
    tunnel = _tunnel(experiment, job) if job is not None else None
    if tunnel is None:
        return
    script = []
    for member, directory in remote:
        files = " ".join(shlex.quote(f"{member.run_dir}/{name}") for name in MIRRORED)
        script.append(f"tar -C {shlex.quote(directory)} --ignore-failed-read -czf - {files} "
                      "2>/dev/null | base64 -w0; echo")
    try:
        with _quiet():
            answer = tunnel.run("\n".join(script), hide=True, warn=True)
    except Exception as error:
        raise BackendError(f"cannot read the runs' results from the cluster: {error}") from None
    for (member, _), line in zip(remote, (answer.stdout or "").splitlines(), strict=False):
        if not line.strip():
            continue
        with contextlib.suppress(tarfile.TarError, ValueError, OSError), \
                tarfile.open(fileobj=io.BytesIO(base64.b64decode(line)), mode="r:gz") as tar:
            for entry in tar.getmembers():
                name = Path(entry.name)
                if not entry.isfile() or name.parent.as_posix() != member.run_dir \
                        or name.name not in MIRRORED:
                    continue  # only the run's own files, never a path out of it
                data = tar.extractfile(entry)
                if data is None:
                    continue
                target = root / member.run_dir / name.name
                target.parent.mkdir(parents=True, exist_ok=True)
                temporary = target.with_name(f".{name.name}.mirror")
                temporary.write_bytes(data.read())
                temporary.replace(target)


# -- cancel and logs --------------------------------------------------------------------------

def cancel(members: list, root: Path) -> None:
    """Each task's job, cancelled through NeMo-Run (``scancel`` through its tunnel)."""
    for experiment, group in _experiments(members, root).values():
        if experiment is None:
            continue
        for member in group:
            handle = NemoRunTask.of(member.handle)
            if handle.executor == "local":
                from runspec.state import status as run_status

                if run_status.from_result(root / member.run_dir) is None:
                    raise BackendError(
                        f"{member.key}: a NeMo-Run LocalExecutor task belongs to the apply "
                        "that started it (NeMo-Run cannot detach it)",
                        "stop that apply (Ctrl-C)")
                continue
            job = _job(experiment, member)
            if job is None or not job.handle:
                continue
            with _quiet() as out:
                try:
                    job.cancel(runner=experiment._runner)
                except Exception as error:
                    raise BackendError(f"NeMo-Run could not cancel {member.key}: {error}",
                                       _tail(out) or None) from None


def logs(member: Any, root: Path) -> str | None:
    """The task's log as NeMo-Run keeps it (for Slurm, the job's output file, fetched
    through its tunnel)."""
    load()
    from nemo_run.run.logs import get_logs

    for experiment, _group in _experiments([member], root).values():
        if experiment is None:
            return None
        job = _job(experiment, member)
        if job is None or not job.handle:
            return None
        text = io.StringIO()
        with _quiet():
            try:
                get_logs(text, identifier=job.handle, regex=None, should_tail=False,
                         runner=experiment._runner)
            except Exception as error:
                raise BackendError(f"NeMo-Run could not read the logs of {member.key}: "
                                   f"{error}") from None
        return text.getvalue()
    return None
