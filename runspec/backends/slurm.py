"""The Slurm backend: an sbatch script per stage; a sweep becomes ONE job array.

Each run's command lives in its own ``launch.sh``; the array script picks the run
directory by ``$SLURM_ARRAY_TASK_ID`` from ``runs.txt`` and runs it under ``srun``
(with pyxis container flags when the profile names an image). Every interpolated value
is shell-quoted by the template's ``q`` filter.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from runspec import __version__
from runspec.backends.base import run_script, shell_quote
from runspec.plan.ir import Launch, LaunchContext, Run, RunSpec

RDZV_PORT = 29500
DIRECTIVE_KEYS = ("partition", "account", "qos", "time", "nodes", "ntasks-per-node",
                  "gpus-per-node", "cpus-per-task", "mem", "constraint")


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
            runs_file=f"{launch_dir}/runs.txt",
            multi_node=is_torchrun(first) and first.resources["nodes"] > 1,
            rdzv_port=RDZV_PORT, srun_flags=self.srun_flags(first, chdir),
            gap=context.gap if array else 0,
        )
        argv = ["sbatch", "--parsable"]
        if needs:
            argv.append("--dependency=afterok:" + ":".join(f"{{job:{n}}}" for n in needs))
        argv.append(f"{launch_dir}/job.sbatch")
        files = {"job.sbatch": script}
        if array:
            files["runs.txt"] = "".join(f"{run.run_dir}\n" for run in runs)
        request = {"argv": argv, "cwd": ".", "script": f"{launch_dir}/job.sbatch",
                   "array_size": len(runs) if array else None,
                   "one_at_a_time": bool(array and context.sequential)}
        return [Launch("slurm", stage, [run.key for run in runs], request, files, launch_dir)]
