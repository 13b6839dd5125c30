"""The Slurm backend: an sbatch script per stage; a sweep becomes ONE job array (one per
resource shape, when a sweep over ``resources.*`` gives runs different directives).

Each run's command lives in its own ``launch.sh``; the array script picks the run
directory by ``$SLURM_ARRAY_TASK_ID`` from a list inside the script (which Slurm copies
at submission, so a later apply cannot change what a pending task runs), under ``srun``
(with pyxis container flags when the profile names an image). The task writes that run
directory itself when it starts, from the launch's run table (run_table.py), which apply
writes instead of 1,000 directories (except where the batch step may lack runspec's
Python, and through a login node: see ``_render_array``). The campaign is kept inside
the array (templates/run.sh.j2): index = plan order, one task at a time where order or
gaps matter, each task sleeping its gap before its run starts, a failed run started again
up to ``retries`` times; ``launch = "ray"`` starts a Ray cluster on the job's nodes first. Every interpolated value
is shell-quoted by the template's ``q`` filter; names (``#SBATCH --NAME``, ``export NAME``)
and values on a directive line are checked here too, not only by validate.

The job's environment is explicit: ``sbatch --export=`` names only ``JOB_ENVIRONMENT``
(``PATH`` with runspec's Python first, so the rendered ``python`` is the interpreter that
has runspec; the library paths that Python was started with; the user's identity and
locale). Slurm adds its own ``SLURM_*`` variables, and a listed export makes it load the
user's login environment on the node (``--get-user-env``) under the listed values. Nothing
else of the submitting shell travels, so slurmctld's saved copy of the job's environment
holds no token that happened to be exported there, and never a secret's source variable
(left out of sbatch's own environment as well). Everything a run sets is in its
``launch.sh``. Secret values go in a file instead: ``secrets.env`` in each run directory,
written 0600 at submission, read by the job when it starts and removed when it ends (a
job ended by a signal keeps it for a requeued start; runspec removes it once the run has
ended or is cancelled). The batch step exports them and ``srun --export=ALL`` hands the
batch step's environment to the tasks (``--export=<list>`` would otherwise be inherited
by srun through ``SLURM_EXPORT_ENV``).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from runspec import __version__
from runspec.backends.base import (
    SECRETS_FILE,
    BackendError,
    Capabilities,
    RenderError,
    RunHandle,
    comment_safe,
    no_session,
    no_setting_problems,
    one_line,
    remove_secrets,
    run_script,
    shell_quote,
    sweep_secrets,
)
from runspec.backends.login_node import LOGIN_KEYS, LoginNode
from runspec.backends.package import Package
from runspec.ir import Launch, LaunchContext, Run, RunSpec
from runspec.measure.attempts import rotate_shell
from runspec.run_table import table_name
from runspec.state.status import ENDED, RunStatus

RDZV_PORT = 29500
RAY_START_TIMEOUT_S = 180
"""How long a job waits for its Ray cluster (launch = "ray") to have every node."""
DIRECTIVE_KEYS = ("partition", "account", "qos", "time", "nodes", "ntasks-per-node",
                  "gpus-per-node", "cpus-per-task", "mem", "constraint")
DIRECTIVE_NAME_PATTERN = r"^[a-z][a-z0-9-]*$"
DIRECTIVE_NAME = re.compile(DIRECTIVE_NAME_PATTERN)
RENDERED_DIRECTIVES: dict[str, str] = {
    "job-name": "the job is named after the manifest and stage",
    "chdir": "jobs start in the manifest's directory",
    "output": "the job log goes beside the stage's runs; each run writes stdout.log and stderr.log",
    "error": "the job log goes beside the stage's runs; each run writes stdout.log and stderr.log",
    "array": "a sweep becomes the job array; campaign.max_parallel sets its %limit",
    "dependency": "a stage's needs become the dependency",
    "export": "the job's environment is explicit: use env.vars (or env_vars in the profile)",
    "comment": "runspec tags its jobs with it, to find a submission whose answer was lost",
    "parsable": "runspec reads the job id with it",
    "partition": "use partition = … in the profile or [env] instead",
    "account": "use account = … in the profile or [env] instead",
    "qos": "use qos = … in the profile or [env] instead",
    "constraint": "use constraint = … in the profile or [env] instead",
    "exclusive": "use exclusive = true in the profile or [env] instead",
    "time": "use resources.time (or time in the profile) instead",
    "nodes": "use resources.nodes (or nodes in the profile) instead",
    "ntasks-per-node": "use resources.procs_per_node (or ntasks_per_node in the profile) instead",
    "gpus-per-node": "use resources.gpus_per_node (or gpus_per_node in the profile) instead",
    "cpus-per-task": "use resources.cpus_per_task (or cpus_per_task in the profile) instead",
    "mem": "use resources.mem (or mem in the profile) instead",
}
"""The sbatch options runspec writes itself, and what to use instead: a second
``--output`` in extra_directives would silently win over runspec's."""


@cache
def options_model() -> type:
    """The Slurm keys of a profile and of `[env]` (Nemotron's names), built on first use:
    validate checks the schema generated from it and never builds it."""
    from typing import Literal

    from pydantic import Field

    from runspec.manifest.fields import OneLine, Strict, name_type, named

    directive_name = name_type(DIRECTIVE_NAME_PATTERN, "sbatch option name",
                               "use the long option name in lowercase without its dashes, "
                               "e.g. reservation or mail-type", RENDERED_DIRECTIVES)
    directive_table = named(directive_name, OneLine | int | bool)

    class SlurmFields(Strict):
        """Keys of the Slurm executor (sbatch, locally or through a login node)."""

        account: OneLine | None = Field(None, description="Slurm account to charge.")
        partition: OneLine | None = Field(None, description="Slurm partition.",
                                          examples=["batch"])
        run_partition: OneLine | None = Field(
            None, description="Partition for attached runs (Nemotron).")
        batch_partition: OneLine | None = Field(
            None, description="Partition for detached runs (Nemotron).")
        qos: OneLine | None = Field(None, description="Slurm quality of service.")
        constraint: OneLine | None = Field(
            None, description="Node feature constraint (--constraint).")
        exclusive: bool | None = Field(None, description="Request whole nodes (--exclusive).")
        ntasks_per_node: int | None = Field(None, ge=1, le=4096,
                                            description="Tasks per node (Nemotron's key).")
        extra_directives: directive_table = Field(  # type: ignore[valid-type]
            default_factory=dict,
            description="Further #SBATCH directives, long option name → value (true for a bare "
            "flag, false leaves it out); not the ones runspec writes itself (job-name, output, "
            "partition…).",
            examples=[{"reservation": "ml", "requeue": True}],
        )
        container: str | None = Field(None,
                                      description="Legacy alias of container_image (Nemotron).")
        template: str | None = Field(
            None, description="A Jinja2 sbatch template replacing the built-in one (path)."
        )
        tunnel: Literal["local", "ssh"] | None = Field(
            None, description='How sbatch is reached: "local" PATH, or "ssh" to `host`.'
        )
        host: OneLine | None = Field(None, description='Login node for tunnel = "ssh".',
                                     examples=["login.cluster.example.com"])
        user: OneLine | None = Field(None, description="SSH user on the login node.")
        port: int | None = Field(None, ge=1, le=65535,
                                 description="SSH port of the login node (default 22).")
        identity: OneLine | None = Field(
            None, description="SSH private key (path; ~ is expanded). Without it, ssh uses "
            "your agent and ~/.ssh/config.")
        known_hosts: OneLine | None = Field(
            None, description="A known_hosts file to check the login node's host key "
            "against, instead of ~/.ssh/known_hosts (runspec never accepts an unknown key).")
        remote_job_dir: OneLine | None = Field(
            None, description='With tunnel = "ssh": the directory on the cluster (shared by '
            "its nodes) that holds the code packages and the run directories.",
            examples=["/lustre/users/me/runspec"])
        packager: Literal["git", "pattern", "none"] | None = Field(
            None, description='With tunnel = "ssh": how the code reaches the cluster. "git" '
            '(default) packs the git checkout; "pattern" packs package_patterns; "none" '
            "packs nothing: remote_job_dir already holds the project (a shared file "
            "system).")
        package_patterns: list[OneLine] | None = Field(
            None, description='Globs, relative to the manifest\'s directory, of the files '
            'packager = "pattern" packs.', examples=[["*.py", "configs/**/*.yaml"]])
        include_uncommitted: bool | None = Field(
            None, description='packager = "git": pack the working tree (committed, changed '
            "and new files git does not ignore), as the plan fingerprints it (default true). "
            "false packs HEAD only, and apply refuses a tree with uncommitted changes.")

    return SlurmFields
DEPENDENCY_REF = re.compile(r"\{(job|launch):([^}]*)\}")
JOB_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "USER",
                   "LOGNAME", "LANG", "LC_ALL")
"""What sbatch passes from the submitting environment (see the module docstring)."""


LOAD_SECRETS = """\
# Secrets: written by runspec at submission (mode 0600), read here, removed when the job
# ends; a job ended by a signal keeps them for a requeued start.
SECRETS_FILE="$RUN_DIR/{name}"
if [ ! -r "$SECRETS_FILE" ]; then
  echo "runspec: $SECRETS_FILE is missing (written at submission, removed when the job" \\
    "ends: apply again)" | tee -a "$RUN_DIR/stderr.log" >&2
  exit 1
fi
trap 'rm -f -- "$SECRETS_FILE"' EXIT
trap 'trap - EXIT; exit 143' TERM
. "$SECRETS_FILE"
"""


UNPACK = """\
# This task's run directory and its files, as the plan showed them, written now from the
# launch's run table: apply writes one table, not a directory per run.
python -m runspec.run_table {table} {index} || exit 1"""


def select_run(run_dirs: list[str], array: bool, secrets: bool = False,
               lib: str | None = None, table: str | None = None) -> str:
    """Bash that sets ``RUN_DIR`` (templates use ``{{ select_run }}``), writes the run's
    directory from ``table`` (run_table.py) when there is one, then, when the stage has
    secrets, loads them from the run's secrets file. For an array the list is part of the
    script, which Slurm copies at submission, and the table's name is derived from its
    runs, so a later apply cannot change what a pending task runs. ``lib``: runspec's
    source shipped to the cluster (login_node.py), put first on PYTHONPATH for the in-job
    wrapper."""
    if not array:
        chosen = f"RUN_DIR={shell_quote(run_dirs[0])}"
    else:
        listed = "".join(f"  {shell_quote(d)}\n" for d in run_dirs)
        chosen = ("# The array index selects the run.\n"
                  f"RUNS=(\n{listed})\nRUN_DIR=${{RUNS[$SLURM_ARRAY_TASK_ID]}}")
    if lib:
        chosen = (f"# runspec's in-job wrapper, as shipped with this submission.\n"
                  f"export PYTHONPATH={shell_quote(lib)}${{PYTHONPATH:+:$PYTHONPATH}}\n"
                  + chosen)
    if table:
        chosen += "\n" + UNPACK.format(table=shell_quote(table),
                                       index='"$SLURM_ARRAY_TASK_ID"' if array else "0")
    return chosen + ("\n" + LOAD_SECRETS.format(name=SECRETS_FILE).rstrip("\n") if secrets else "")


def job_environment(spec: RunSpec) -> str:
    """``--export=`` with the names of ``JOB_ENVIRONMENT``, never a secret's source."""
    names = [n for n in JOB_ENVIRONMENT if n not in set(spec.secrets.values())]
    return "--export=" + (",".join(names) or "NONE")


def is_torchrun(spec: RunSpec) -> bool:
    """Is the recipe (inside the measure wrapper) started by torchrun?"""
    command = spec.argv[spec.argv.index("--") + 1:] if "--" in spec.argv else spec.argv
    return command[:1] == ["torchrun"]


def is_ray(spec: RunSpec) -> bool:
    """launch = "ray": the job starts a Ray cluster on its nodes for the run to join."""
    return spec.launch == "ray" and not is_torchrun(spec)


PACE = "# campaign.config_gap / cycle_gap: idle seconds after the previous run ended (tasks run one at a time)."
RENDEZVOUS = """\
# Multi-node torchrun: one launcher per node, rendezvous on the first node.
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export PET_NNODES="$SLURM_NNODES"
export PET_RDZV_BACKEND=c10d
export PET_RDZV_ENDPOINT="$head_node:{port}"
export PET_RDZV_ID="$SLURM_JOB_ID\""""


def pace(gaps: list[float], array: bool) -> tuple[str, str]:
    """The bash that waits a run's gap before it starts (``{{ pace }}``), and its sleep line
    alone (a retry waits it again). Inside the task that follows, so the idle time runs
    from the previous run's end to this run's start."""
    if array and any(gaps):
        sleep = 'sleep "${GAPS[$SLURM_ARRAY_TASK_ID]}"'
        listed = " ".join(f"{g:g}" for g in gaps)
        return f"\n{PACE}\nGAPS=({listed})\n{sleep}\n", sleep
    if not array and gaps and gaps[0]:
        sleep = f"sleep {gaps[0]:g}"
        return f"\n{PACE}\n{sleep}\n", sleep
    return "", ""


@cache
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    templates = Path(__file__).parent / "templates"
    env = Environment(loader=FileSystemLoader(str(templates)), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters["q"] = shell_quote
    env.filters["c"] = comment_safe
    return env


def _template(custom: str | None, root: Path):
    env = _environment()
    if custom is None:
        return env.get_template("sbatch.sh.j2")
    return env.from_string((root / custom).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class SlurmJob(RunHandle):
    """A run's place in Slurm: its job and array task, or, while sbatch's answer is not
    recorded, the comment tag that finds the job in the queue."""

    job_id: str | int | None = None
    task: int | None = None           # the array index (None: a job of one run)
    tag: str | None = None            # --comment=runspec:<tag>
    launch: str | None = None         # the launch directory it was submitted from
    remote: str | None = None         # through a login node: the code directory there that
    #                                   holds the run's directory (login_node.py)

    @property
    def task_id(self) -> str:
        """``12_3`` (an array task) or ``12``: how squeue, scontrol and scancel name it."""
        return f"{self.job_id}_{self.task}" if self.task is not None else str(self.job_id)


class SlurmBackend:
    name = "slurm"
    title = "Slurm"
    summary = "submits to Slurm"
    options_model = staticmethod(options_model)
    handle_type = SlurmJob
    setting_problems = staticmethod(no_setting_problems)
    capabilities = Capabilities(
        launch_modes=frozenset({"direct", "torchrun", "ray"}), containers=True, multi_node=True,
        paced_by_runspec=False, attached=False, default_parallel=None, stage_dependencies=True,
        one_process_launches=frozenset({"ray"}))
    session = staticmethod(no_session)

    def __init__(self) -> None:
        self.submitted: dict[str, str] = {}
        """Job ids of the launches this backend submitted, by script: a stage's later array
        waits for the one before it."""
        self.uploaded: list[str] = []
        """Packages this backend uploaded to a login node (code, runspec's source)."""

    @staticmethod
    def log_text(member, root: Path) -> str | None:
        """The job's own log (``slurm-<job>_<task>.out`` beside its script) for a run whose
        command never started, so its run directory has no stdout.log: what stopped it
        first (a run table it could not read, a missing secrets file). None while it is
        queued or running (its logs may still begin), and through a login node (the job
        log stays on the cluster)."""
        job = SlurmJob.of(member.handle)
        if job.job_id is None or job.remote or not job.launch or member.status not in ENDED:
            return None
        name = f"slurm-{job.job_id}" + (f"_{job.task}" if job.task is not None else "") + ".out"
        try:
            return (root / job.launch / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    @staticmethod
    def describe_launches(launches: list[Launch]) -> str:
        runs = sum(len(launch.keys) for launch in launches)
        request = launches[0].request
        shape = f"one job array of {runs}" if runs > 1 else "one job"
        if len(launches) > 1:
            shape = f"{len(launches)} job arrays of {runs} runs"
        pace = ", one at a time in campaign order" if request.get("one_at_a_time") else ""
        through = ""
        if request.get("login_node"):
            through = (f" through {request['login_node']}, in {request['remote_root']}"
                       + (f"; package {request['code']['describe']}" if request.get("code") else ""))
        return f"sbatch {shape}{pace} ({request['script']}){through}"

    @staticmethod
    def describe(handle: dict | None) -> str:
        job = SlurmJob.of(handle)
        if job.job_id is None:
            return ""
        return f"job {job.task_id}" + (f" in {job.remote}" if job.remote else "")

    @staticmethod
    def dependency_id(handle: dict | None) -> str | None:
        job = SlurmJob.of(handle)
        return str(job.job_id) if job.job_id else None

    @staticmethod
    def intent(launch: Launch, tag: str, index: int) -> dict:
        """The comment tag (and array task) find the job in the queue if sbatch's answer is
        lost."""
        return SlurmJob(task=index if launch.request.get("array_size") else None, tag=tag,
                        launch=launch.directory, remote=launch.request.get("remote_root")).record()

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"launch.sh": run_script(spec, secrets_loaded=True)}

    def directives(self, spec: RunSpec, count: int, job_name: str, chdir: str, output: str,
                   check: bool = True) -> list[tuple[str, Any]]:
        """``check``: refuse what is not one ``#SBATCH`` line each (see ``checked``)."""
        resources, settings = spec.resources, spec.settings
        torchrun = is_torchrun(spec) or is_ray(spec)  # one launcher (or Ray node) per node
        if is_ray(spec) and resources["procs_per_node"] != 1:
            raise RenderError(f'launch = "ray" on Slurm starts one Ray node per node, not '
                              f'{resources["procs_per_node"]} processes', "leave "
                              "procs_per_node out (Ray's workers use the node's cpus_per_task "
                              "and gpus_per_node)")
        values = {
            "partition": settings.get("batch_partition") or settings.get("partition"),
            "account": settings.get("account"),
            "qos": settings.get("qos"),
            "time": resources.get("time"),
            "nodes": resources["nodes"],
            "ntasks-per-node": 1 if torchrun else resources["procs_per_node"],
            "gpus-per-node": resources["gpus_per_node"] or None,
            "cpus-per-task": self.cpus_per_task(spec),
            "mem": resources.get("mem"),
            "constraint": settings.get("constraint"),
        }
        out: list[tuple[str, Any]] = [("job-name", job_name), ("chdir", chdir),
                                      ("output", output)]
        out += [(k, values[k]) for k in DIRECTIVE_KEYS if values[k] is not None]
        if settings.get("exclusive"):
            out.append(("exclusive", None))
        for name, value in sorted(settings.get("extra_directives", {}).items()):
            if name in RENDERED_DIRECTIVES:
                raise RenderError(f"extra_directives: runspec writes --{name} itself",
                                  RENDERED_DIRECTIVES[name])
            if value is not False:  # false: leave the directive out
                out.append((name, None if value is True else value))
        return checked(out) if check else out

    @staticmethod
    def cpus_per_task(spec: RunSpec) -> int | None:
        """CPUs per Slurm task, as given (what Nemotron and itwinai mean by it); a torchrun
        launcher is one task, so its workers share them."""
        return spec.resources.get("cpus_per_task")

    def srun_flags(self, spec: RunSpec, chdir: str) -> list[str]:
        # The batch step's environment (secrets, rendezvous) goes to the tasks: srun would
        # otherwise inherit sbatch's --export list through SLURM_EXPORT_ENV.
        flags = ["--export=ALL"]
        if is_torchrun(spec) and spec.resources["nodes"] > 1:
            flags += ["--ntasks-per-node=1"]
        if self.cpus_per_task(spec):
            # srun does not inherit --cpus-per-task from sbatch on Slurm 22.05 and later.
            flags.append(f"--cpus-per-task={self.cpus_per_task(spec)}")
        if spec.container_image:
            flags.append(f"--container-image={spec.container_image}")
            # The job's directory (launch.sh, configs, outputs) must exist in the container.
            mounts = [*spec.mounts, *([f"{chdir}:{chdir}"] if not any(
                m.split(":")[0] == chdir for m in spec.mounts) else [])]
            flags.append(f"--container-mounts={','.join(mounts)}")
            flags.append(f"--container-workdir={chdir}")
        return flags

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        """One job array per resource shape (what the directives and srun flags say), in
        plan order. Where order, gaps or ``max_parallel`` matter, the arrays are chained
        (``--dependency=afterany:`` the one before) and an ordered campaign gets one array
        per stretch of consecutive runs of one shape, so the plan order holds across them."""
        if not runs:
            return []
        gaps = list(context.gaps) or [0.0] * len(runs)
        paced = context.sequential or any(gaps)
        groups: list[list[int]] = []
        keys: list[Any] = []
        root = context.root.as_posix()
        for index, run in enumerate(runs):
            key = self.shape(specs[run.key], root)
            if paced and keys and keys[-1] == key:
                groups[-1].append(index)
            elif not paced and key in keys:
                groups[keys.index(key)].append(index)
            else:
                keys.append(key)
                groups.append([index])
        chained = len(groups) > 1 and (paced or context.max_parallel is not None)
        where = self.where(context, specs[runs[0].key])
        launches: list[Launch] = []
        for number, indices in enumerate(groups, 1):
            name = "job.sbatch" if len(groups) == 1 else f"job-{number}.sbatch"
            after = launches[-1].request["script"] if chained and launches else None
            launches.append(self._render_array(
                context, [runs[i] for i in indices], specs, [gaps[i] for i in indices], name,
                f"-{number}" if len(groups) > 1 else "", after, where))
        return launches

    @staticmethod
    def where(context: LaunchContext, spec: RunSpec) -> _Where:
        """Where the stage's jobs start: the manifest's directory here, or, through a login
        node, the code package's directory on the cluster (packed now, so the plan shows
        the directory the digest names)."""
        node = LoginNode.of(spec.settings)
        if node is None:
            return _Where(context.root.as_posix())
        exclude = (context.outputs, ".runspec")
        package = node.package(context.root, exclude)
        return _Where(node.code_dir(package), node, package, node.lib_dir(), exclude)

    def shape(self, spec: RunSpec, chdir: str) -> tuple:
        """Everything about a run that its job's directives and srun flags say. Unchecked:
        runs of one shape have the same directives, and each array's are checked when it is
        rendered (checking each of 100,000 runs took half the time of grouping them)."""
        return (tuple(self.directives(spec, 1, "", chdir, "", check=False)),
                tuple(self.srun_flags(spec, chdir)),
                is_torchrun(spec), is_ray(spec))

    def _render_array(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec],
                      gaps: list[float], name: str, suffix: str, after: str | None,
                      where: _Where) -> Launch:
        root, stage, launch_dir = context.root, context.stage, context.directory
        needs, max_parallel, manifest = context.needs, context.max_parallel, context.manifest
        first = specs[runs[0].key]
        chdir = where.chdir
        array = len(runs) > 1
        ray = is_ray(first)
        output = f"{chdir}/{launch_dir}/slurm-%A_%a.out" if array else f"{chdir}/{launch_dir}/slurm-%j.out"
        directives = self.directives(first, len(runs), f"{manifest}-{stage}{suffix}", chdir,
                                     output)
        ordered = context.sequential or any(context.gaps)
        if array:
            limit = 1 if ordered else max_parallel
            throttle = f"%{limit}" if limit else ""
            directives.insert(3, ("array", f"0-{len(runs) - 1}{throttle}"))
        multi_node = is_torchrun(first) and first.resources["nodes"] > 1
        flags = self.srun_flags(first, chdir)
        placed = '--overlap --nodes=1 --ntasks=1 -w "$ray_head" ' if ray else ""
        step = f"srun {placed}{''.join(shell_quote(f) + ' ' for f in flags)}bash \"$RUN_DIR/launch.sh\""
        waits, gap_sleep = pace(gaps, array)
        gpus = first.resources["gpus_per_node"]
        # Ray's head and workers start in the run's container (pyxis), as the run does, so
        # the entrypoint finds the Ray it joins there.
        ray_flags = ["--export=ALL", *[f for f in flags if f.startswith(
                         ("--cpus-per-task=", "--container-"))],
                     *([f"--gpus-per-node={gpus}"] if gpus else [])]
        pieces = {
            "pace": waits,
            "rendezvous": f"\n{RENDEZVOUS.format(port=RDZV_PORT)}\n" if multi_node else "",
            "run": _environment().get_template("run.sh.j2").render(
                ray=ray, ray_gpus=gpus, ray_flags=ray_flags, ray_timeout=RAY_START_TIMEOUT_S,
                secrets=bool(first.secrets), retries=context.retries, step=step,
                gap_sleep=gap_sleep, keep_previous=rotate_shell('"$RUN_DIR"', "  ")).strip("\n"),
        }
        custom = first.settings.get("template")
        # Apply writes the run directories itself (no table) through a login node, where
        # they travel in the upload, and where the batch step may have no Python with
        # runspec before the run's own set-up: a container (its runs find runspec in the
        # image) and startup_commands (`module load`, a venv: they run in launch.sh).
        own_python = not (first.container_image or first.startup_commands)
        table = f"{launch_dir}/" + table_name([(run.key, run.digest) for run in runs],
                                              context.manifest_digest) \
            if where.node is None and own_python else None
        selected = select_run([run.run_dir for run in runs], array, bool(first.secrets),
                              where.lib, table)
        script = _template(custom, root).render(
            version=__version__, manifest=manifest, stage=stage, directives=directives,
            array=array, runs=[run.run_dir for run in runs], select_run=selected,
            multi_node=multi_node, rdzv_port=RDZV_PORT, srun_flags=flags,
            gaps=[f"{g:g}" for g in gaps] if array and any(gaps) else [], ray=ray,
            retries=context.retries, **pieces,
        )
        if custom:  # a site template must start the run the way this stage needs
            plain = {"pace": "", "rendezvous": "", "run": step}
            missing = [k for k, v in pieces.items() if v != plain[k] and v.strip() not in script]
            missing += ["select_run"] if selected not in script else []
            if missing:
                raise RenderError(f"the template {custom} leaves out "
                                  + ", ".join(f"{{{{ {k} }}}}" for k in missing)
                                  + ", which this stage needs (the run's directory, its gaps, "
                                  "retries, Ray cluster or multi-node rendezvous)",
                                  "render {{ select_run }} before the run starts, and "
                                  "{{ pace }}, {{ rendezvous }} and {{ run }} where the "
                                  "template starts it, as sbatch.sh.j2 does")
        argv = ["sbatch", "--parsable", job_environment(first)]
        dependencies = []
        if needs:
            dependencies.append("afterok:" + ":".join(f"{{job:{n}}}" for n in needs))
        if after:  # the array before this one in the stage: order and pacing hold across both
            dependencies.append(f"afterany:{{launch:{after}}}")
        if dependencies:
            argv.append("--dependency=" + ",".join(dependencies))
        argv.append(f"{launch_dir}/{name}")
        request: dict[str, Any] = {"argv": argv, "cwd": ".", "script": f"{launch_dir}/{name}",
                                   "array_size": len(runs) if array else None,
                                   "one_at_a_time": bool(array and ordered)}
        if first.secrets:  # by reference; the values are written at submission only
            request["secrets"] = {k: {"from_env": v} for k, v in first.secrets.items()}
            request["secret_files"] = [f"{run.run_dir}/{SECRETS_FILE}" for run in runs]
        if where.node is not None:  # sbatch runs on the login node, in the code directory
            request.update(cwd=chdir, login_node=where.node.address, remote_root=chdir,
                           runspec_lib=where.lib, run_dirs=[run.run_dir for run in runs],
                           login={k: v for k, v in first.settings.items()
                                  if k in LOGIN_KEYS and v is not None})
            if where.package is not None:
                request["code"] = {"digest": where.package.digest,
                                   "describe": where.package.describe(),
                                   "packager": where.node.packager,
                                   "exclude": list(where.exclude)}
        return Launch("slurm", stage, [run.key for run in runs], request, {name: script},
                      launch_dir, table)

    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, dict]:
        """One ``sbatch --parsable`` for the launch (a whole array); handles per run key.
        ``--comment=runspec:<tag>`` is added so that a submission whose answer was lost (a
        crash, a timeout) can be found again in the queue."""
        argv = []
        for arg in launch.request["argv"]:
            if arg.startswith("--dependency="):
                dependency = self._dependency(arg, after)
                if dependency:
                    argv.append(dependency)
                continue
            argv.append(arg)
        if tag:
            argv.insert(2, f"--comment=runspec:{tag}")
        secrets = launch.request.get("secrets") or {}
        sources = {ref["from_env"] for ref in secrets.values()}
        if launch.request.get("login_node"):  # never sbatch here instead
            node = LoginNode.of(launch.request.get("login") or {})
            if node is None:
                raise BackendError("the launch names a login node but not how to reach it",
                                   "plan and apply again with this version of runspec")
            return self._submit_remote(node, launch, root, argv, sources)
        written = self.write_secret_files(launch, root)
        try:
            output = _slurm(argv, root, "sbatch", hide=sources)
        except BackendError as error:
            if not error.ambiguous:  # refused: no job will read them
                for path in written:
                    path.unlink(missing_ok=True)
            raise
        job_id = output.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch answered {output.strip()!r}, not a job id")
        self.submitted[launch.request["script"]] = job_id
        where = launch.directory  # the job log is there (log_text)
        if launch.request.get("array_size"):
            return {key: SlurmJob(job_id, index, launch=where).record()
                    for index, key in enumerate(launch.keys)}
        return {launch.keys[0]: SlurmJob(job_id, launch=where).record()}

    def _submit_remote(self, node: LoginNode, launch: Launch, root: Path, argv: list[str],
                       sources: set[str]) -> dict[str, dict]:
        """Through the login node: the planned code and runspec's source (each only if the
        cluster lacks it), the run and launch files with the secrets in one archive, then
        sbatch in the code directory."""
        request = launch.request
        code_dir = request["remote_root"]
        code = request.get("code") or {}
        uploaded = node.install_code(root, code.get("digest"), tuple(code.get("exclude", ())))
        self.uploaded.extend(uploaded)
        files = remote_files(launch, root)
        secrets = request.get("secrets") or {}
        if secrets:
            from runspec.backends.base import resolve_secrets, secrets_text

            text = secrets_text(resolve_secrets({k: v["from_env"] for k, v in secrets.items()}))
            for name in request["secret_files"]:
                files[name] = (text.encode(), 0o600)
        node.upload_runs(code_dir, files)
        output = _slurm(argv, root, "sbatch", hide=sources, node=node, cwd=code_dir)
        job_id = output.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch answered {output.strip()!r}, not a job id")
        self.submitted[request["script"]] = job_id
        if request.get("array_size"):
            return {key: SlurmJob(job_id, index, remote=code_dir).record()
                    for index, key in enumerate(launch.keys)}
        return {launch.keys[0]: SlurmJob(job_id, remote=code_dir).record()}

    def _dependency(self, arg: str, after: dict[str, str]) -> str | None:
        """``--dependency=afterok:{job:STAGE},afterany:{launch:SCRIPT}`` with the job ids: a
        needed stage with no active job is left out; the array before, never."""
        clauses = []
        for clause in arg.removeprefix("--dependency=").split(","):
            kind, _, refs = clause.partition(":")
            ids = []
            for what, name in DEPENDENCY_REF.findall(refs):
                if what == "job" and after.get(name):
                    ids.append(after[name])
                elif what == "launch":
                    if name not in self.submitted:
                        raise BackendError(f"{name} waits for the array {name} follows, which "
                                           "this apply did not submit", "apply again")
                    ids.append(self.submitted[name])
            if ids:
                clauses.append(f"{kind}:" + ":".join(ids))
        return "--dependency=" + ",".join(clauses) if clauses else None

    @staticmethod
    def write_secret_files(launch: Launch, root: Path) -> list[Path]:
        """Each run's ``secrets.env`` (0600), from the launching environment, just before
        sbatch: the only place a secret value is written."""
        from runspec.backends.base import resolve_secrets, write_secrets

        secrets = launch.request.get("secrets") or {}
        if not secrets:
            return []
        values = resolve_secrets({k: v["from_env"] for k, v in secrets.items()})
        written = []
        try:
            for name in launch.request["secret_files"]:
                (root / name).parent.mkdir(parents=True, exist_ok=True)  # its task writes the rest
                write_secrets(root / name, values)
                written.append(root / name)
        except OSError as error:
            for path in written:
                path.unlink(missing_ok=True)
            raise BackendError(f"cannot write the secrets file {name}: "
                               f"{error.strerror or error}") from None
        return written

    def refresh_many(self, members, root: Path) -> dict[str, RunStatus]:
        """result.json first; then one squeue for everything; scontrol for what left the
        queue. A run that has ended loses its secrets file, if its job left one behind.
        Runs on a cluster behind a login node first have their files mirrored back."""
        statuses: dict[str, RunStatus] = {}
        for node, group in _by_login_node(members).items():
            if node is None:
                statuses.update(sweep_secrets(self._statuses(group, root), group, root))
                continue
            node.fetch(_mirror_pairs(group, root))
            found = self._statuses(group, root, node)
            ended = [m for m in group if found.get(m.key) in ENDED]
            node.remove([f"{SlurmJob.of(m.handle).remote}/{m.run_dir}/{SECRETS_FILE}"
                         for m in ended if SlurmJob.of(m.handle).remote])
            _describe_remote_outputs(node, [m for m in group if found.get(m.key) ==
                                            RunStatus.SUCCEEDED], root)
            statuses.update(found)
        return statuses

    def _statuses(self, members, root: Path, node: LoginNode | None = None
                  ) -> dict[str, RunStatus]:
        from runspec.state import status as run_status

        statuses: dict[str, RunStatus] = {}
        waiting = []
        jobs = {m.key: SlurmJob.of(m.handle) for m in members}
        untracked = [m for m in members if not jobs[m.key].job_id and jobs[m.key].tag]
        if untracked:
            self.reconcile(untracked, root, node)  # records the job ids it finds in the handles
            jobs = {m.key: SlurmJob.of(m.handle) for m in members}
        for member in members:
            final = run_status.from_result(root / member.run_dir)
            submitted = jobs[member.key].job_id is not None
            if final is not None and not (final == RunStatus.CANCELLED and submitted):
                statuses[member.key] = final
            elif submitted:
                # Ended by a signal: a cancel, a time limit, or a preemption that Slurm
                # requeues. Only the scheduler can tell, so ask it before trusting the file.
                waiting.append(member)
            else:
                statuses[member.key] = RunStatus.LOST  # intent recorded, and no such job in the queue
        if not waiting:
            return statuses
        queue = {}
        for line in _slurm(["squeue", "-h", "-r", "-o", "%i %T"], root, "squeue",
                           node=node).splitlines():
            parts = line.split()
            if len(parts) == 2:
                queue[parts[0]] = parts[1]
        gone = []
        for member in waiting:
            state = queue.get(jobs[member.key].task_id)
            if state is None:
                gone.append(member)
            else:
                statuses[member.key] = _STATES.get(state, RunStatus.RUNNING)
        known = {}
        for job_id in sorted({str(jobs[m.key].job_id) for m in gone}):
            # A job purged from the controller is unknown: the run directory is all we have.
            with contextlib.suppress(BackendError):
                known.update(_scontrol_states(job_id, root, node))
        for member in gone:
            state = known.get(jobs[member.key].task_id)
            if state:
                statuses[member.key] = _STATES.get(state, RunStatus.LOST)
            else:  # purged from the controller: the run's own record is all there is
                statuses[member.key] = run_status.from_result(root / member.run_dir) or RunStatus.LOST
        return statuses

    def reconcile(self, members, root: Path, node: LoginNode | None = None) -> None:
        """Intents without a job id (the apply died, or sbatch timed out, after sending):
        look the job up by its ``runspec:<tag>`` comment and record its id in place."""
        found = {}
        for line in _slurm(["squeue", "-h", "-o", "%F %k"], root, "squeue",
                           node=node).splitlines():
            job_id, _, comment = line.partition(" ")
            if comment.startswith("runspec:"):
                found[comment.removeprefix("runspec:").strip()] = job_id.strip()
        for member in members:
            job = SlurmJob.of(member.handle)
            known = found.get(job.tag or "")
            if known:
                member.handle = SlurmJob(known, job.task, launch=job.launch,
                                         remote=job.remote).record()

    def cancel_many(self, members, root: Path) -> None:
        for node, group in _by_login_node(members).items():
            jobs = [SlurmJob.of(m.handle) for m in group]
            ids = sorted({job.task_id for job in jobs if job.job_id is not None})
            if ids:
                _slurm(["scancel", *ids], root, "scancel", node=node)
            # a job cancelled before it started never read its secrets
            if node is not None:
                node.remove([f"{job.remote}/{m.run_dir}/{SECRETS_FILE}"
                             for m, job in zip(group, jobs, strict=True) if job.remote])
            for member in group:
                remove_secrets(root, member.run_dir)


# -- execution: sbatch, squeue, scontrol, scancel --------------------------------------------

SLURM_TIMEOUT_S = 60
_STATES: dict[str, RunStatus] = {
    **dict.fromkeys(("PENDING", "CONFIGURING", "REQUEUED", "RESIZING"), RunStatus.SUBMITTED),
    **dict.fromkeys(("SUSPENDED", "RUNNING", "COMPLETING"), RunStatus.RUNNING),
    "COMPLETED": RunStatus.SUCCEEDED, "CANCELLED": RunStatus.CANCELLED,
    **dict.fromkeys(("FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
                     "PREEMPTED"), RunStatus.FAILED),
}


def _slurm(argv: list[str], root: Path, what: str, hide: set[str] | frozenset = frozenset(),
           node: LoginNode | None = None, cwd: str | None = None) -> str:
    """Run a Slurm client, here or on ``node`` (in ``cwd`` there); ``hide`` are variables
    left out of its environment (a secret's source: sbatch must not be able to pass it
    on, whatever its --export says; ssh must not send it along)."""
    import subprocess

    if node is not None:
        done = node.shell().run(argv, cwd=cwd, timeout=SLURM_TIMEOUT_S, hide=frozenset(hide))
        if done.returncode != 0:
            message = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise BackendError(f"{what} failed on {node.address}: "
                               f"{message.replace(chr(10), ' ') or done.returncode}")
        return done.stdout.decode(errors="replace")

    from runspec.backends.base import executable_env

    env = {k: v for k, v in executable_env({}).items() if k not in hide}
    try:
        completed = subprocess.run(argv, cwd=root, env=env, capture_output=True,
                                   text=True, timeout=SLURM_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise BackendError(f"{argv[0]} not found on PATH",
                           "install the Slurm client here, or use a profile with another "
                           "executor") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{argv[0]} did not answer within {SLURM_TIMEOUT_S} s",
                           "is the Slurm controller up? (sinfo)",
                           ambiguous=argv[0] == "sbatch") from None
    if completed.returncode != 0:
        message = (completed.stderr or completed.stdout).strip().replace("\n", " ")
        raise BackendError(f"{what} failed: {message or f'exit code {completed.returncode}'}")
    return completed.stdout


def checked(directives: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``directives`` if each is one ``#SBATCH --name[=value]`` line, once; else a RenderError
    (validate refuses such names and values; a script never relies on that)."""
    seen = set()
    for name, value in directives:
        if not isinstance(name, str) or not DIRECTIVE_NAME.fullmatch(name):
            raise RenderError(f"#SBATCH --{comment_safe(str(name))}: not an sbatch option name",
                              "use the long option name in lowercase without its dashes")
        if name in seen:
            raise RenderError(f"#SBATCH --{name} is given twice", "keep one")
        seen.add(name)
        if value is not None:
            one_line(value, f"#SBATCH --{name}")
    return directives


def _scontrol_states(job_id: str, root: Path, node: LoginNode | None = None) -> dict[str, str]:
    """``{"12_3": "FAILED", "13": "COMPLETED"}`` from ``scontrol show job -o``."""
    found = {}
    for line in _slurm(["scontrol", "show", "job", "-o", str(job_id)], root, "scontrol",
                       node=node).splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        state = fields.get("JobState", "")
        if "ArrayTaskId" in fields and fields.get("ArrayJobId"):
            found[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = state
        found[fields.get("JobId", "")] = state
    return found


@dataclass(frozen=True)
class _Where:
    """Where a stage's jobs start (``chdir``), and, through a login node, the node, the
    planned code package and runspec's source there."""

    chdir: str
    node: LoginNode | None = None
    package: Package | None = None
    lib: str | None = None
    exclude: tuple[str, ...] = ()


def _by_login_node(members) -> dict[LoginNode | None, list]:
    """Members grouped by the login node their stage submitted through (None: here)."""
    groups: dict[LoginNode | None, list] = {}
    for member in members:
        settings = (member.request or {}).get("settings") or {}
        groups.setdefault(LoginNode.of(settings), []).append(member)
    return groups


def _describe_remote_outputs(node: LoginNode, members, root: Path) -> None:
    """For runs that succeeded on the cluster and have outputs to register: where each
    output is there, its digest, hashed there, and the metadata beside it there (its
    ``<path>.metadata.json``, or why that cannot be used), in the run directory here
    (``REMOTE_OUTPUTS_FILE``), which registration reads when the files are not here."""
    from runspec.artifacts.publish import REMOTE_OUTPUTS_FILE
    from runspec.measure.files import write_json

    wanted = []
    for member in members:
        remote = SlurmJob.of(member.handle).remote
        if remote and member.outputs and not member.registered:
            for name, (path, _type) in sorted(member.outputs.items()):
                wanted.append((member, name, f"{remote}/{path}"))
    there = node.outputs_there([path for _, _, path in wanted])
    found: dict[str, dict[str, dict]] = {}
    for (member, name, path), seen in zip(wanted, there, strict=True):
        entry = {"path": path, "host": node.address, "digest": seen.get("digest")}
        for key in ("metadata", "metadata_problem"):  # its <path>.metadata.json, read there
            if key in seen:
                entry[key] = seen[key]
        found.setdefault(member.run_dir, {})[name] = entry
    for run_dir, outputs in found.items():
        write_json(root / run_dir / REMOTE_OUTPUTS_FILE, outputs)


def _mirror_pairs(members, root: Path) -> list[tuple[str, Path]]:
    """``(remote run directory, local run directory)`` of members whose job was sent."""
    pairs = []
    for member in members:
        remote = SlurmJob.of(member.handle).remote
        if remote:
            pairs.append((f"{remote}/{member.run_dir}", root / member.run_dir))
    return pairs


def remote_files(launch: Launch, root: Path) -> dict[str, tuple[bytes, int]]:
    """What goes to the cluster for a launch: its own files, and the files apply rendered
    into each run directory here (not what the job writes, which comes back instead)."""
    from runspec.artifacts.publish import REMOTE_OUTPUTS_FILE
    from runspec.backends import mirror

    files: dict[str, tuple[bytes, int]] = {
        f"{launch.directory}/{name}": (text.encode(), 0o644)
        for name, text in launch.files.items()}
    for run_dir in launch.request.get("run_dirs") or ():
        local = root / run_dir
        for path in sorted(local.iterdir()) if local.is_dir() else ():
            name = path.name
            if (path.is_file() and not path.is_symlink() and name not in mirror.MIRRORED
                    and name not in (mirror.SIDECAR, SECRETS_FILE, REMOTE_OUTPUTS_FILE)
                    and ".attempt-" not in name):  # records of earlier attempts stay here
                files[f"{run_dir}/{name}"] = (path.read_bytes(), 0o644)
    from runspec.artifacts.ledger import CONTEXT_FILE

    # The stage's context: runspec.artifacts in the job reads it, and sees it is a copy.
    context = root / launch.directory / CONTEXT_FILE
    if context.is_file():
        files[f"{launch.directory}/{CONTEXT_FILE}"] = (context.read_bytes(), 0o644)
    return files
