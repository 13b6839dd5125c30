"""What every backend implements (TorchX's idea: the request you see is the request that runs).

A backend is one module behind this interface. It owns its options (``options_model``)
and declares what it honours in ``Capabilities``. ``render_run`` and ``render_launch`` are
pure and snapshot-tested; ``submit`` sends exactly the rendered request; ``refresh_many``,
``cancel_many`` and ``log_text`` follow and stop what it started; ``session`` owns what
lives only while apply runs (a managed Ray head). Only it reads its handles: the engine,
the plan report and the console ask ``describe`` and ``describe_launches`` instead of
branching on names or handle keys.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, Self, TypeGuard

from runspec.ir import Launch, LaunchContext, Run, RunSpec
from runspec.state.status import ENDED, RunStatus

Handle = dict[str, Any]
"""A backend's record of one submitted run, as stored in the state (JSON): the record of its
``RunHandle`` (below), which only that backend reads; keys starting with ``_`` are live
objects never stored."""


class HandleError(ValueError):
    """A stored handle record whose field has the wrong type: names the field."""

    def __init__(self, field_name: str, expected: str, value: Any):
        super().__init__(f"{field_name}: expected {expected}")
        self.field, self.expected, self.value = field_name, expected, value


_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false"}


@dataclass(frozen=True)
class RunHandle:
    """What a backend records of one started run. Each backend declares its own handle
    (``SlurmJob``, ``RayJob``, ``LocalProcess``) as a frozen dataclass of optional fields;
    the state stores its JSON record, and the backend reads a record back through
    ``of``, which checks every field's type, so a corrupt state names the field instead
    of failing later. Keys starting with ``_`` are live objects (a process) never stored."""

    @classmethod
    def of(cls, record: Mapping[str, Any] | None) -> Self:
        """The handle a stored record describes (fields it lacks are None); a field of the
        wrong type is a ``HandleError``; keys it does not know are ignored."""
        record = record or {}
        hints = _field_types(cls)
        values = {}
        for name, allowed in hints.items():
            value = record.get(name)
            if value is not None and not any(
                    isinstance(value, t) and not (t is int and isinstance(value, bool))
                    for t in allowed):
                raise HandleError(name, " or ".join(_TYPE_NAMES.get(t, t.__name__)
                                                   for t in allowed) + " or null", value)
            values[name] = value
        return cls(**values)

    def record(self) -> Handle:
        """The JSON record stored in the state (fields that are None left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


_FIELD_TYPES: dict[type, dict[str, tuple[type, ...]]] = {}


def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """Each field's allowed types (``int | None`` → ``(int,)``), read once per handle class."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {f.name: tuple(t for t in typing.get_args(hints[f.name])
                                           or (hints[f.name],) if t is not type(None))
                             for f in fields(cls)}
    return _FIELD_TYPES[cls]


@dataclass(frozen=True)
class Capabilities:
    """What a backend honours; validate refuses what it does not (nothing accepted is ignored)."""

    launch_modes: frozenset[str]        # recipe.launch values it can start
    containers: bool                    # container_image / mounts
    multi_node: bool                    # resources.nodes > 1
    paced_by_runspec: bool              # apply feeds runs one by one (order, gaps, max_parallel,
    #                                     retries); else the scheduler paces a whole launch
    attached: bool                      # apply follows its runs to the end (local processes)
    default_parallel: int | None        # runs at once when nothing asks for pacing (None: all)
    stage_dependencies: bool            # the scheduler itself holds a stage until its needs succeed
    submits: bool = True                # apply can launch it at all
    startup_commands: bool = True       # runs env.startup_commands before the recipe
    poll_s: float = 1.0                 # how often a paced run is polled
    sees_all_gpus: bool = False         # a run sees the machine's GPUs without a count
    #                                     (procs_per_node = "gpu" needs it)
    one_process_launches: frozenset[str] = frozenset()  # launches that start one process
    #                                     per node, so procs_per_node > 1 cannot be honoured


class Session(Protocol):
    """What a backend keeps alive for one apply (a managed Ray head): closed when apply ends."""

    must_follow: bool                   # apply must wait for the runs before closing it


def no_scheduler_logs(member: Any, root: Path) -> str | None:
    """``log_text`` of a backend whose runs write their logs into the run directory."""
    return None


class SettingProblem(typing.NamedTuple):
    """A setting a backend would refuse when rendering: validate says it at its own line."""

    key: str  # in the env table (a profile key), or "campaign.<key>"
    message: str
    hint: str


def no_setting_problems(*_args: Any, **_kwargs: Any) -> list[SettingProblem]:
    """The setting check of a backend whose every refusal is in its ``Capabilities``."""
    return []


@contextlib.contextmanager
def no_session(*_args: Any, **_kwargs: Any) -> Iterator[Any]:
    """The session of a backend that needs none."""

    class _Nothing:
        must_follow = False

    yield _Nothing()


class Backend(Protocol):
    name: str                           # the executor it implements ("slurm")
    title: str                          # names its models in the schemas ("SlurmProfile")
    summary: str                        # what it does, for the schemas ("submits to Slurm")
    capabilities: Capabilities

    @property
    def handle_type(self) -> type[RunHandle]:
        """What it records of a started run (``SlurmJob``): the state stores its record."""

    def options_model(self) -> type:
        """The keys it reads from a profile and from `[env]` (beside those every executor
        shares), as a pydantic model: the env.toml and manifest schemas are generated from
        it. Built on first use, so validate (which checks the generated schema) never
        imports pydantic."""

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        """Files for the run directory that describe this backend's request for one run."""

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        """The submissions that start ``runs`` (all of one stage, in execution order)."""

    def describe_launches(self, launches: list[Launch]) -> str:
        """How apply will start these launches of one stage, for the plan (``sbatch one job
        array of 12``, ``3 local processes``)."""

    # -- the half that touches the world -----------------------------------------------------
    def session(self, launches: list[Launch], say: Callable[[str], None], keep: bool = False
                ) -> contextlib.AbstractContextManager[Session]:
        """What must live while apply uses the backend (e.g. a Ray head when no address);
        ``keep``: a detached apply leaves it running for its runs."""

    def intent(self, launch: Launch, tag: str, index: int) -> Handle:
        """What is recorded before submitting: enough to find the job again if the answer
        is lost."""

    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, Handle]:
        """Send exactly ``launch.request``; handles per run key. ``after``: the dependency
        ids (from ``dependency_id``) of stages this one needs."""

    def refresh_many(self, members: list, root: Path) -> dict[str, RunStatus]:
        """Current status of active members: their result.json first, the scheduler after."""

    def cancel_many(self, members: list, root: Path) -> None:
        """Stop active members."""

    def log_text(self, member: Any, root: Path) -> str | None:
        """The run's output as the scheduler keeps it, or None when the run directory's
        stdout.log / stderr.log are the logs (local, Slurm)."""

    def describe(self, handle: Handle | None) -> str:
        """The handle for people: ``job 12_3``, ``Ray job runspec-…``, ``pid 4242``."""

    def dependency_id(self, handle: Handle | None) -> str | None:
        """What a later stage on the same scheduler waits for (a Slurm job id), if anything."""

    def setting_problems(self, settings: Mapping[str, Any], resources: Mapping[str, Any],
                         recipe: Mapping[str, Any], campaign: Mapping[str, Any],
                         outputs: Collection[str] = ()) -> list[SettingProblem]:
        """What render would refuse in a stage's merged env settings (profile and manifest),
        resources, recipe, campaign and declared output artifacts (their names), found
        without planning (validate's check)."""


class PacedBackend(Backend, Protocol):
    """A backend whose runs apply starts one by one (``paced_by_runspec``)."""

    def start(self, launch: Launch, root: Path, run_dir: Path) -> Handle:
        """Start one run now; its handle (may hold live objects under ``_`` keys)."""

    def poll(self, handle: Handle, root: Path, run_dir: Path) -> RunStatus | None:
        """The run's final status once it has ended, else None."""


def is_paced(backend: Backend) -> TypeGuard[PacedBackend]:
    """Does apply start this backend's runs one by one (``capabilities.paced_by_runspec``)?"""
    return backend.capabilities.paced_by_runspec


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shell_quote(value: object) -> str:
    """Every value rendered into a shell script goes through here: inert, whatever it holds."""
    return shlex.quote(str(value))


def comment_safe(text: str) -> str:
    """Text for a ``#`` comment line: control characters (a newline!) become visible escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def env_name(name: str, what: str = "environment variable") -> str:
    """``name`` if it can follow ``export`` as a name, else a RenderError: validate refuses
    such names, and a script never relies on that (the Python API skips validate)."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise RenderError(f"{what} name {name!r} is not a valid shell variable name",
                          "use letters, digits and _, not starting with a digit")
    return name


def run_script(spec: RunSpec, secrets_loaded: bool = False) -> str:
    """``launch.sh``: the run's command as a script (exports, startup commands, exec).

    Secrets are by reference: read from the launching environment at run time (NeMo-Run),
    or, with ``secrets_loaded``, already in the environment under their own names (a Slurm
    job reads them from its run's secrets file); either way the script holds no value."""
    lines = ["#!/usr/bin/env bash", f"# runspec run {comment_safe(spec.key)}", "set -euo pipefail",
             f"cd {shell_quote(spec.cwd)}"]
    for name, value in spec.env.items():
        lines.append(f"export {env_name(name)}={shell_quote(value)}")
    for name, source in spec.secrets.items():
        env_name(name, "secret")
        env_name(source, "secret source")
        if secrets_loaded:
            lines.append(f': "${{{name}:?secret {name} was not delivered to the job}}"')
        else:
            lines.append(f'export {name}="${{{source}:?secret {source} is not set}}"')
    lines += spec.startup_commands
    lines.append("exec " + " ".join(shell_quote(a) for a in spec.argv))
    return "\n".join(lines) + "\n"


class BackendError(Exception):
    """A backend could not do what was asked (no sbatch, controller down, address silent…).

    ``ambiguous`` means the request may have arrived anyway (a timeout after sending it): the
    submission is kept as an intent for the next refresh to find, never simply dropped."""

    def __init__(self, message: str, hint: str | None = None, ambiguous: bool = False):
        super().__init__(message + (f" — {hint}" if hint else ""))
        self.message, self.hint, self.ambiguous = message, hint, ambiguous


class RenderError(BackendError, ValueError):
    """A request that cannot be written safely (a name that is no shell name, a newline in
    an ``#SBATCH`` value): validate reports these with positions; rendering refuses them too."""


def one_line(value: object, what: str) -> str:
    """``value`` as text for one line of a script, or a RenderError."""
    text = str(value)
    found = CONTROL.search(text)
    if found:
        raise RenderError(f"{what} contains a control character ({found.group()!r}): {text!r}",
                          "a value written into a line of the job script must be one line")
    return text


def executable_env(env: dict[str, str]) -> dict[str, str]:
    """The job environment on top of ours, with this Python's directory first on PATH, so the
    rendered ``python`` is the interpreter runspec runs in (the one with runspec installed)."""
    import os
    import sys
    from pathlib import Path

    merged = {**os.environ, **env}
    bin_dir = str(Path(sys.executable).parent)
    path = merged.get("PATH", "")
    if path.split(os.pathsep)[:1] != [bin_dir]:
        merged["PATH"] = os.pathsep.join([bin_dir, path]) if path else bin_dir
    return merged


SECRETS_FILE = "secrets.env"
"""Per run directory: secret values for a Slurm or Ray job, 0600, removed by the job."""


def remove_secrets(root: Path, run_dir: str) -> None:
    """A run's secrets file, gone (if a job left one behind)."""
    with contextlib.suppress(OSError):
        (root / run_dir / SECRETS_FILE).unlink(missing_ok=True)


def sweep_secrets(statuses: dict[str, RunStatus], members: list, root: Path
                  ) -> dict[str, RunStatus]:
    """``statuses``, after removing the secrets file of every member that has ended."""
    for member in members:
        if statuses.get(member.key) in ENDED:
            remove_secrets(root, member.run_dir)
    return statuses


def write_secrets(path: Path, values: dict[str, str]) -> None:
    """``values`` as ``export NAME='value'`` lines in ``path``, readable only by this user
    from the moment it exists (created 0600, then renamed into place): at submission only,
    for the job to read and remove."""
    import os
    import tempfile

    text = secrets_text(values)
    handle, temporary = tempfile.mkstemp(prefix=".secrets-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)  # mkstemp's mode already; said, not assumed
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def secrets_text(values: dict[str, str]) -> str:
    """A secrets file's content: ``export NAME='value'`` lines, for the job to source."""
    return "".join(f"export {env_name(name, 'secret')}={shell_quote(value)}\n"
                   for name, value in values.items())


def resolve_secrets(secrets: dict[str, str]) -> dict[str, str]:
    """Secret values from the launching environment, only at submission; never stored."""
    import os

    missing = sorted({source for source in secrets.values() if source not in os.environ})
    if missing:
        raise BackendError(f"secret variable{'s' * (len(missing) != 1)} not set: "
                           + ", ".join(missing), "export them in the shell that runs apply")
    return {name: os.environ[source] for name, source in secrets.items()}
