"""The Slurm backend: an sbatch script per stage; a sweep becomes ONE job array.

Each run's command lives in its own ``launch.sh``; the array script picks the run
directory by ``$SLURM_ARRAY_TASK_ID`` from a list inside the script (which Slurm copies
at submission, so a later apply cannot change what a pending task runs), under ``srun``
(with pyxis container flags when the profile names an image). Every interpolated value
is shell-quoted by the template's ``q`` filter.
"""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path
from typing import Any

from runspec import __version__
from runspec.backends.base import BackendError, run_script, shell_quote
from runspec.plan.ir import Launch, LaunchContext, Run, RunSpec

RDZV_PORT = 29500
DIRECTIVE_KEYS = ("partition", "account", "qos", "time", "nodes", "ntasks-per-node",
                  "gpus-per-node", "cpus-per-task", "mem", "constraint")


def select_run(run_dirs: list[str], array: bool) -> str:
    """Bash that sets ``RUN_DIR`` (templates use ``{{ select_run }}``). For an array the
    list is part of the script, which Slurm copies at submission, so a later apply cannot
    change what a pending task runs."""
    if not array:
        return f"RUN_DIR={shell_quote(run_dirs[0])}"
    listed = "".join(f"  {shell_quote(d)}\n" for d in run_dirs)
    return ("# The array index selects the run.\n"
            f"RUNS=(\n{listed})\nRUN_DIR=${{RUNS[$SLURM_ARRAY_TASK_ID]}}")


def is_torchrun(spec: RunSpec) -> bool:
    """Is the recipe (inside the measure wrapper) started by torchrun?"""
    command = spec.argv[spec.argv.index("--") + 1:] if "--" in spec.argv else spec.argv
    return command[:1] == ["torchrun"]


@cache
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    templates = Path(__file__).parent / "templates"
    env = Environment(loader=FileSystemLoader(str(templates)), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters["q"] = shell_quote
    return env


def _template(custom: str | None, root: Path):
    env = _environment()
    if custom is None:
        return env.get_template("sbatch.sh.j2")
    return env.from_string((root / custom).read_text(encoding="utf-8"))


class SlurmBackend:
    name = "slurm"

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"launch.sh": run_script(spec)}

    def directives(self, spec: RunSpec, count: int, job_name: str, chdir: str, output: str
                   ) -> list[tuple[str, Any]]:
        resources, settings = spec.resources, spec.settings
        torchrun = is_torchrun(spec)
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
            out.append((name, None if value is True else value))
        return out

    @staticmethod
    def cpus_per_task(spec: RunSpec) -> int | None:
        """torchrun is one task that starts procs_per_node workers: it needs all their CPUs."""
        cpus = spec.resources.get("cpus_per_task")
        if cpus and is_torchrun(spec):
            return cpus * spec.resources["procs_per_node"]
        return cpus

    def srun_flags(self, spec: RunSpec, chdir: str) -> list[str]:
        flags = []
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
        if not runs:
            return []
        root, stage, launch_dir = context.root, context.stage, context.directory
        needs, max_parallel, manifest = context.needs, context.max_parallel, context.manifest
        first = specs[runs[0].key]
        chdir = root.as_posix()
        array = len(runs) > 1
        output = f"{chdir}/{launch_dir}/slurm-%A_%a.out" if array else f"{chdir}/{launch_dir}/slurm-%j.out"
        directives = self.directives(first, len(runs), f"{manifest}-{stage}", chdir, output)
        if array:
            limit = 1 if context.sequential else max_parallel
            throttle = f"%{limit}" if limit else ""
            directives.insert(3, ("array", f"0-{len(runs) - 1}{throttle}"))
        script = _template(first.settings.get("template"), root).render(
            version=__version__, manifest=manifest, stage=stage, directives=directives,
            array=array, runs=[run.run_dir for run in runs],
            select_run=select_run([run.run_dir for run in runs], array),
            multi_node=is_torchrun(first) and first.resources["nodes"] > 1,
            rdzv_port=RDZV_PORT, srun_flags=self.srun_flags(first, chdir),
            gap=context.gap if array else 0,
        )
        argv = ["sbatch", "--parsable"]
        if needs:
            argv.append("--dependency=afterok:" + ":".join(f"{{job:{n}}}" for n in needs))
        argv.append(f"{launch_dir}/job.sbatch")
        files = {"job.sbatch": script}
        request = {"argv": argv, "cwd": ".", "script": f"{launch_dir}/job.sbatch",
                   "array_size": len(runs) if array else None,
                   "one_at_a_time": bool(array and context.sequential)}
        return [Launch("slurm", stage, [run.key for run in runs], request, files, launch_dir)]

    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, dict]:
        """One ``sbatch --parsable`` for the launch (a whole array); handles per run key.
        ``--comment=runspec:<tag>`` is added so that a submission whose answer was lost (a
        crash, a timeout) can be found again in the queue."""
        argv = []
        for arg in launch.request["argv"]:
            if arg.startswith("--dependency=afterok:"):
                ids = [after.get(need[5:-1]) for need in arg.removeprefix("--dependency=afterok:")
                       .split(":") if need.startswith("{job:")]
                ids = [i for i in ids if i]
                if ids:
                    argv.append("--dependency=afterok:" + ":".join(ids))
                continue
            argv.append(arg)
        if tag:
            argv.insert(2, f"--comment=runspec:{tag}")
        output = _slurm(argv, root, "sbatch")
        job_id = output.strip().split(";")[0]
        if not job_id.isdigit():
            from runspec.backends.base import BackendError

            raise BackendError(f"sbatch answered {output.strip()!r}, not a job id")
        if launch.request.get("array_size"):
            return {key: {"job_id": job_id, "task": index} for index, key in enumerate(launch.keys)}
        return {launch.keys[0]: {"job_id": job_id}}

    def refresh_many(self, members, root: Path) -> dict[str, str]:
        """result.json first; then one squeue for everything; scontrol for what left the queue."""
        from runspec.state import status as run_status

        statuses: dict[str, str] = {}
        waiting = []
        untracked = [m for m in members if not (m.handle or {}).get("job_id")
                     and (m.handle or {}).get("tag")]
        if untracked:
            self.reconcile(untracked, root)
        for member in members:
            final = run_status.from_result(root / member.run_dir)
            if final is not None and not (final == "cancelled" and member.handle
                                          and "job_id" in member.handle):
                statuses[member.key] = final
            elif member.handle and "job_id" in member.handle:
                # Ended by a signal: a cancel, a time limit, or a preemption that Slurm
                # requeues. Only the scheduler can tell, so ask it before trusting the file.
                waiting.append(member)
            else:
                statuses[member.key] = "lost"  # intent recorded, and no such job in the queue
        if not waiting:
            return statuses
        queue = {}
        for line in _slurm(["squeue", "-h", "-r", "-o", "%i %T"], root, "squeue").splitlines():
            parts = line.split()
            if len(parts) == 2:
                queue[parts[0]] = parts[1]
        gone = []
        for member in waiting:
            state = queue.get(_task_id(member.handle))
            if state is None:
                gone.append(member)
            else:
                statuses[member.key] = _STATES.get(state, "running")
        known = {}
        for job_id in sorted({m.handle["job_id"] for m in gone}):
            # A job purged from the controller is unknown: the run directory is all we have.
            with contextlib.suppress(BackendError):
                known.update(_scontrol_states(job_id, root))
        for member in gone:
            state = known.get(_task_id(member.handle))
            if state:
                statuses[member.key] = _STATES.get(state, "lost")
            else:  # purged from the controller: the run's own record is all there is
                statuses[member.key] = run_status.from_result(root / member.run_dir) or "lost"
        return statuses

    def reconcile(self, members, root: Path) -> None:
        """Intents without a job id (the apply died, or sbatch timed out, after sending):
        look the job up by its ``runspec:<tag>`` comment and record its id in place."""
        found = {}
        for line in _slurm(["squeue", "-h", "-o", "%F %k"], root, "squeue").splitlines():
            job_id, _, comment = line.partition(" ")
            if comment.startswith("runspec:"):
                found[comment.removeprefix("runspec:").strip()] = job_id.strip()
        for member in members:
            job_id = found.get(member.handle["tag"])
            if job_id:
                member.handle = {"job_id": job_id, **({"task": member.handle["task"]}
                                                      if member.handle.get("task") is not None
                                                      else {})}

    def cancel_many(self, members, root: Path) -> None:
        ids = sorted({_task_id(m.handle) for m in members if m.handle and "job_id" in m.handle})
        if ids:
            _slurm(["scancel", *ids], root, "scancel")


# -- execution: sbatch, squeue, scontrol, scancel --------------------------------------------

SLURM_TIMEOUT_S = 60
_STATES = {
    "PENDING": "submitted", "CONFIGURING": "submitted", "REQUEUED": "submitted",
    "RESIZING": "submitted", "SUSPENDED": "running", "RUNNING": "running",
    "COMPLETING": "running", "COMPLETED": "succeeded", "CANCELLED": "cancelled",
    "FAILED": "failed", "TIMEOUT": "failed", "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed",
    "BOOT_FAIL": "failed", "DEADLINE": "failed", "PREEMPTED": "failed",
}


def _slurm(argv: list[str], root: Path, what: str) -> str:
    import subprocess

    from runspec.backends.base import BackendError, executable_env

    try:
        completed = subprocess.run(argv, cwd=root, env=executable_env({}), capture_output=True,
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




def _task_id(handle: dict) -> str:
    return f"{handle['job_id']}_{handle['task']}" if "task" in handle else str(handle["job_id"])




def _scontrol_states(job_id: str, root: Path) -> dict[str, str]:
    """``{"12_3": "FAILED", "13": "COMPLETED"}`` from ``scontrol show job -o``."""
    found = {}
    for line in _slurm(["scontrol", "show", "job", "-o", str(job_id)], root, "scontrol").splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        state = fields.get("JobState", "")
        if "ArrayTaskId" in fields and fields.get("ArrayJobId"):
            found[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = state
        found[fields.get("JobId", "")] = state
    return found
