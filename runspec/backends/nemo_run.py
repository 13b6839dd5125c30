"""The NeMo-Run backend: each stage becomes one NeMo-Run ``Experiment``, each run one of its
tasks, submitted detached through NeMo-Run's own executors.

What NeMo-Run receives is shown by the plan: the executor configuration (``nemo_run.json``
in each run directory, and the launch request) and the task, which is the run's rendered
``launch.sh`` handed over as an inline ``run.Script``. Rendering is pure and never imports
``nemo_run``; only submitting, refreshing, cancelling and reading logs do
(``runspec/backends/nemo_run_exec.py``), so the CLI starts without it.

The NeMo-Run executor comes from the profile: ``executor = "nemo-run"`` with
``nemo_executor = "local" | "slurm" | "docker" | "dgxcloud" | "lepton" | "skypilot"``, or,
as Nemotron's env.toml writes it, ``executor = "docker"`` (and ``dgxcloud``, ``lepton``,
``skypilot``) directly. Slurm reads the same keys as runspec's Slurm backend (its options
model is inherited, not copied); each executor accepts exactly the keys that are passed on
to NeMo-Run, and refuses the others at plan time, naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from runspec.backends.base import (
    BackendError,
    Capabilities,
    RenderError,
    RunHandle,
    SettingProblem,
    no_session,
    run_script,
    shell_quote,
)
from runspec.ir import Launch, LaunchContext, Run, RunSpec
from runspec.state.status import RunStatus

FLAVOURS = ("local", "slurm", "docker", "dgxcloud", "lepton", "skypilot")
"""NeMo-Run executors runspec builds (``nemo_executor``)."""
CLASSES = {"local": "LocalExecutor", "slurm": "SlurmExecutor", "docker": "DockerExecutor",
           "dgxcloud": "DGXCloudExecutor", "lepton": "LeptonExecutor",
           "skypilot": "SkypilotExecutor"}
INSTALL_HINT = ("pip install 'runspec[nemo-run]' (NeMo-Run 0.11.1 also needs "
                "leptonai==0.27.3: pip install leptonai==0.27.3)")
SLURM_ONLY_DIRECTIVES = {"export": "runspec passes the job's environment explicitly"}

# The keys each executor reads beside the ones every executor shares (env_vars,
# startup_commands and container_image/mounts where it runs containers): filled in by
# options_model() from the models, so a key is accepted exactly where it is passed on.
DOCKER_KEYS = ("runtime", "ipc_mode", "shm_size", "ntasks_per_node")
DGXCLOUD_KEYS = ("base_url", "kube_apiserver_url", "client_id", "client_secret",
                 "project_name", "pvc_nemo_run_dir", "pvcs", "distributed_framework",
                 "custom_spec", "ntasks_per_node")
LEPTON_KEYS = ("nemo_run_dir", "resource_shape", "node_group", "node_reservation",
               "shared_memory_size", "image_pull_secrets", "custom_spec",
               "pre_launch_commands", "ntasks_per_node")
SKYPILOT_KEYS = ("cloud", "region", "zone", "gpus", "instance_type", "use_spot", "disk_size",
                 "cluster_name", "autodown", "idle_minutes_to_autostop")
FLAVOUR_KEYS: dict[str, tuple[str, ...]] = {
    "local": (), "docker": DOCKER_KEYS, "dgxcloud": DGXCLOUD_KEYS, "lepton": LEPTON_KEYS,
    "skypilot": SKYPILOT_KEYS}
SLURM_UNSUPPORTED = {
    "template": "NeMo-Run writes its own sbatch script: use executor = \"slurm\" for a "
                "template",
    "run_partition": "NeMo-Run submits detached, so the batch partition applies: use "
                     "batch_partition or partition",
}
CONTAINERS = {"slurm", "docker", "dgxcloud", "lepton", "skypilot"}


@cache
def _flavour_models() -> dict[str, type]:
    """One pydantic mixin per NeMo-Run executor other than local and Slurm (Nemotron's names
    where Nemotron has them)."""
    from typing import Literal

    from pydantic import Field

    from runspec.manifest.fields import OneLine, Strict

    class SecretReference(Strict):
        """A secret by reference: the variable it is read from when submitting."""

        from_env: OneLine = Field(description="Name of the environment variable holding it.",
                                  examples=["DGX_CLIENT_SECRET"])

    tasks = Field(None, ge=1, le=4096, description="Processes per node.")

    class DockerFields(Strict):
        """Keys of NeMo-Run's DockerExecutor."""

        runtime: OneLine | None = Field(None, description='Docker runtime, e.g. "nvidia".')
        ipc_mode: OneLine | None = Field(None, description='Docker IPC mode, e.g. "host".')
        shm_size: OneLine | None = Field(None, description='Shared memory size, e.g. "16g".')
        ntasks_per_node: int | None = tasks

    class DGXCloudFields(Strict):
        """Keys of NeMo-Run's DGXCloudExecutor (run:ai)."""

        base_url: OneLine | None = Field(None, description="DGX Cloud API base URL.")
        kube_apiserver_url: OneLine | None = Field(
            None, description="Run:ai Kubernetes API server URL.")
        client_id: OneLine | None = Field(None, description="OAuth client id.")
        client_secret: SecretReference | None = Field(
            None, description="OAuth client secret, by reference only: "
            '{ from_env = "VAR" }.', examples=[{"from_env": "DGX_CLIENT_SECRET"}])
        project_name: OneLine | None = Field(None, description="DGX Cloud project name.")
        pvc_nemo_run_dir: OneLine | None = Field(
            None, description="PVC path of NeMo-Run's job directory.")
        pvcs: list[dict[str, Any]] | None = Field(None, description="PVC mounts.")
        distributed_framework: OneLine | None = Field(
            None, description='Workload framework (default "PyTorch").')
        custom_spec: dict[str, Any] | None = Field(
            None, description="Further fields of the workload spec.")
        ntasks_per_node: int | None = tasks

    class LeptonFields(Strict):
        """Keys of NeMo-Run's LeptonExecutor (DGX Cloud Lepton)."""

        nemo_run_dir: OneLine | None = Field(
            None, description="NeMo-Run's job directory on the Lepton cluster.")
        resource_shape: OneLine | None = Field(None, description="Lepton resource shape.")
        node_group: OneLine | None = Field(None, description="Lepton node group.")
        node_reservation: OneLine | None = Field(None, description="Lepton node reservation.")
        shared_memory_size: int | None = Field(None, ge=0, description="Shared memory (MiB).")
        image_pull_secrets: list[OneLine] | None = Field(
            None, description="Names of the workspace's image pull secrets.")
        custom_spec: dict[str, Any] | None = Field(
            None, description="Further fields of the job spec.")
        pre_launch_commands: list[str] | None = Field(
            None, description="Commands Lepton runs before the job.")
        ntasks_per_node: int | None = tasks

    class SkypilotFields(Strict):
        """Keys of NeMo-Run's SkypilotExecutor."""

        cloud: OneLine | None = Field(None, description='Cloud, e.g. "aws".')
        region: OneLine | None = Field(None, description="Cloud region.")
        zone: OneLine | None = Field(None, description="Cloud zone.")
        gpus: OneLine | None = Field(None, description='Accelerator type, e.g. "H100".')
        instance_type: OneLine | None = Field(None, description="Instance type.")
        use_spot: bool | None = Field(None, description="Use spot instances.")
        disk_size: int | None = Field(None, ge=1, description="Disk size (GB).")
        cluster_name: OneLine | None = Field(None, description="SkyPilot cluster name.")
        autodown: bool | None = Field(None, description="Tear the cluster down when idle.")
        idle_minutes_to_autostop: int | None = Field(
            None, ge=0, description="Minutes idle before the cluster stops.")

    del Literal
    return {"docker": DockerFields, "dgxcloud": DGXCloudFields, "lepton": LeptonFields,
            "skypilot": SkypilotFields}


@cache
def options_model() -> type:
    """``executor = "nemo-run"``: ``nemo_executor`` picks the NeMo-Run executor; the Slurm
    keys are the Slurm backend's own model's fields, taken from it when this model is
    built (so a key added there is a key here), the other executors' keys their models'.
    Which of them an executor reads is checked when the plan is rendered.

    (Not a Python subclass of the Slurm model: the schema's executor-less profile model
    derives from every executor's model at once, and a subclass listed after its base
    has no consistent method resolution order.)"""
    from typing import Literal

    from pydantic import Field, create_model

    from runspec.backends.slurm import options_model as slurm_options

    slurm: Any = slurm_options()
    fields: dict[str, Any] = {name: (info.annotation, info)
                              for name, info in slurm.model_fields.items()}
    fields["nemo_executor"] = (Literal[FLAVOURS] | None, Field(
        None, description="Which NeMo-Run executor runs the tasks (default local)."))
    model: Any = create_model("NemoRunFields", __base__=tuple(_flavour_models().values()),
                         __module__=__name__, **fields)
    model.__doc__ = ("Keys of the NeMo-Run executor: nemo_executor, and the keys of the "
                     "NeMo-Run executor it names (Slurm's are runspec's Slurm keys).")
    return model


def preset_model(flavour: str) -> type:
    """The keys of ``executor = "<flavour>"`` (docker, dgxcloud, lepton, skypilot)."""
    return _flavour_models()[flavour]


def accepted_keys(flavour: str) -> frozenset[str]:
    """The keys a NeMo-Run executor passes on (beside the ones every executor shares)."""
    if flavour == "slurm":
        from runspec.backends.slurm import options_model as slurm_options

        slurm: Any = slurm_options()
        return frozenset(slurm.model_fields) - set(SLURM_UNSUPPORTED)
    return frozenset(FLAVOUR_KEYS[flavour])


@dataclass(frozen=True)
class NemoRunTask(RunHandle):
    """A run's place in NeMo-Run: its experiment (id and directory, relative to the
    project's root), its task in it and, once submitted, the TorchX app handle NeMo-Run
    returned (``slurm_tunnel://nemo_run/12``) and the scheduler's job id in it."""

    experiment: str | None = None     # NeMo-Run's experiment id: <title>_<tag>
    experiment_dir: str | None = None
    task: str | None = None           # the task id in the experiment (r0, r1, …)
    app: str | None = None            # TorchX app handle
    job_id: str | None = None         # the scheduler's id (a Slurm job id)
    executor: str | None = None       # nemo_executor
    remote_dir: str | None = None     # tunnel = "ssh": the task's code directory there
    launch: str | None = None         # the launch directory

    @property
    def directory(self) -> str:
        return self.experiment_dir or ""


def title_of(manifest: str, stage: str) -> str:
    """NeMo-Run's experiment title: letters, digits, ``-`` and ``.`` (no ``_``: NeMo-Run
    splits an experiment id at its last ``_``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", f"{manifest}-{stage}").strip("-") or "runspec"


def flavour_of(spec: RunSpec, preset: str | None) -> str:
    return preset or spec.settings.get("nemo_executor") or "local"


class NemoRunBackend:
    """``executor = "nemo-run"``, or one NeMo-Run executor preset (``executor = "docker"``)."""

    handle_type = NemoRunTask

    def setting_problems(self, settings: Mapping[str, Any], resources: Mapping[str, Any],
                         recipe: Mapping[str, Any], campaign: Mapping[str, Any],
                         outputs: Collection[str] = ()) -> list[SettingProblem]:
        flavour = self.preset or settings.get("nemo_executor") or "local"
        if not isinstance(flavour, str) or flavour not in FLAVOURS:
            return []  # the schema says what nemo_executor can be
        model: Any = self.options_model()
        own = {k: v for k, v in settings.items()
               if k in model.model_fields or k in ("container_image", "mounts", "secrets")}
        problems = setting_problems(own, flavour, self.name, resources.get("nodes"),
                                    recipe.get("launch"))
        if outputs and flavour != "local":
            problems.append(SettingProblem(
                "nemo_executor", f"outputs.artifacts ({', '.join(sorted(outputs))}) cannot be "
                f"registered from NeMo-Run's {CLASSES[flavour]}: the files stay where the task "
                "ran", 'use executor = "slurm" (it registers outputs on the cluster by '
                'reference), or nemo_executor = "local"'))
        return problems + campaign_problems(campaign)
    session = staticmethod(no_session)

    def __init__(self, preset: str | None = None) -> None:
        self.preset = preset
        if preset is None:
            self.name, self.title = "nemo-run", "NemoRun"
            self.summary = "launches through NeMo-Run"
        else:
            self.name, self.title = preset, f"NemoRun{CLASSES[preset].removesuffix('Executor')}"
            self.summary = f"launches through NeMo-Run's {CLASSES[preset]}"
        self.capabilities = Capabilities(
            launch_modes=frozenset({"direct", "torchrun"}), containers=preset != "local",
            multi_node=True, paced_by_runspec=False, attached=False, default_parallel=None,
            stage_dependencies=False, submits=preset != "dgxcloud")

    def options_model(self) -> type:
        return options_model() if self.preset is None else preset_model(self.preset)

    # -- pure: what the plan shows ------------------------------------------------------------
    @staticmethod
    def describe_launches(launches: list[Launch]) -> str:
        tasks = sum(len(launch.keys) for launch in launches)
        request = launches[0].request
        order = ", one after another" if request.get("sequential") else ""
        return (f"one NeMo-Run experiment of {tasks} task{'s' * (tasks != 1)} "
                f"({request['executor_class']}{order})")

    @staticmethod
    def describe(handle: dict | None) -> str:
        task = NemoRunTask.of(handle)
        if not task.experiment:
            return ""
        job = f", job {task.job_id}" if task.job_id else ""
        return f"NeMo-Run {task.experiment}/{task.task}{job}"

    @staticmethod
    def dependency_id(handle: dict | None) -> str | None:
        return None

    @staticmethod
    def intent(launch: Launch, tag: str, index: int) -> dict:
        """The experiment's id is fixed before submitting (``<title>_<tag>``), so a refresh
        finds it again even when the answer to the submission was lost."""
        experiment = f"{launch.request['title']}_{tag}"
        task = launch.request["tasks"][index]
        return NemoRunTask(
            experiment=experiment,
            experiment_dir=f"{launch.directory}/experiments/{launch.request['title']}/{experiment}",
            task=task["name"], executor=launch.request["nemo_executor"],
            launch=launch.directory).record()

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        flavour = flavour_of(spec, self.preset)
        return {"launch.sh": task_script(spec, root, remote=is_remote(spec, flavour)),
                "nemo_run.json": json.dumps(self.executor_config(spec, root), indent=2) + "\n"}

    def executor_config(self, spec: RunSpec, root: Path) -> dict[str, Any]:
        """The NeMo-Run executor for one run, as plain data: ``class`` and its keyword
        arguments (a ``packager`` and a ``tunnel`` likewise); submission builds exactly this."""
        flavour = flavour_of(spec, self.preset)
        check_settings(spec, flavour, self.name)
        return build_config(spec, flavour, root)

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        if not runs:
            return []
        if any(context.gaps):
            raise RenderError("NeMo-Run starts its tasks without idle time between them "
                              "(campaign.config_gap / cycle_gap)", 'remove the gaps, or use '
                              'executor = "slurm" or "local", which honour them')
        for problem in campaign_problems({"retries": context.retries,
                                          "max_parallel": context.max_parallel}):
            raise RenderError(problem.message, problem.hint)
        root = context.root
        first = specs[runs[0].key]
        flavour = flavour_of(first, self.preset)
        if flavour == "dgxcloud" and self.preset is None:
            raise RenderError(DGXCLOUD_REFUSED, DGXCLOUD_HINT)
        tasks = []
        for index, run in enumerate(runs):
            spec = specs[run.key]
            if flavour_of(spec, self.preset) != flavour:  # a sweep cannot change it
                raise RenderError("one stage uses one NeMo-Run executor",
                                  "keep nemo_executor out of the sweep")
            config = self.executor_config(spec, root)
            if config["class"] == "SlurmExecutor":  # NeMo-Run's default is the account's name
                config["job_name_prefix"] = f"{title_of(context.manifest, context.stage)}."
            if config.get("tunnel", {}).get("class") == "LocalTunnel":
                # NeMo-Run puts a task's sbatch script in <job_dir>/<title>/<experiment id>:
                # the experiment's own directory, beside the stage's runs.
                config["tunnel"]["job_dir"] = f"{root.as_posix()}/{context.directory}/experiments"
            tasks.append({"name": f"r{index}", "key": run.key, "run_dir": run.run_dir,
                          "script": f"{run.run_dir}/launch.sh", "executor": config})
        request = {
            "nemo_executor": flavour, "executor_class": CLASSES[flavour],
            "title": title_of(context.manifest, context.stage),
            "base_dir": f"{context.directory}",
            "sequential": context.sequential or context.max_parallel == 1,
            "remote": is_remote(first, flavour), "tasks": tasks,
        }
        return [Launch(self.name, context.stage, [run.key for run in runs], request,
                       directory=context.directory)]

    # -- the half that touches the world (imports nemo_run) ----------------------------------
    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, dict]:
        if launch.request["nemo_executor"] == "dgxcloud":
            raise BackendError(DGXCLOUD_REFUSED, DGXCLOUD_HINT)
        return _exec().submit(launch, root, tag)

    def refresh_many(self, members, root: Path) -> dict[str, RunStatus]:
        from runspec.state import status as run_status

        statuses: dict[str, RunStatus] = {}
        asking = []
        for member in members:
            final = run_status.from_result(root / member.run_dir)
            task = NemoRunTask.of(member.handle)
            if final is not None and not task.remote_dir:
                statuses[member.key] = final
            else:
                asking.append(member)
        if asking:
            statuses.update(_exec().refresh(asking, root))
        return statuses

    def cancel_many(self, members, root: Path) -> None:
        _exec().cancel(members, root)

    def log_text(self, member: Any, root: Path) -> str | None:
        task = NemoRunTask.of(member.handle)
        if not task.app:
            return None
        return _exec().logs(member, root)


DGXCLOUD_REFUSED = ("NeMo-Run's DGXCloudExecutor keeps client_secret's value in the "
                    "experiment's files (_CONFIG, _TASKS), and runspec never writes a secret's "
                    "value")
DGXCLOUD_HINT = ("plan and render show the executor; submit through NeMo-Run directly, or "
                 "use a Slurm or Lepton profile")


def _exec():
    """The half that imports nemo_run, loaded on first use (never at CLI start)."""
    from runspec.backends import nemo_run_exec

    return nemo_run_exec


# -- the executor configuration, as plain data -------------------------------------------------

def is_remote(spec: RunSpec, flavour: str) -> bool:
    """Does the task run where the project's files are not (a login node over SSH)?"""
    return flavour == "slurm" and spec.settings.get("tunnel") == "ssh"


def check_settings(spec: RunSpec, flavour: str, executor: str) -> None:
    """Every key the stage sets is one this NeMo-Run executor passes on, else a RenderError
    naming it and what would work."""
    values = {**spec.settings, "container_image": spec.container_image, "mounts": spec.mounts,
              "secrets": spec.secrets}
    for problem in setting_problems(values, flavour, executor, spec.resources["nodes"],
                                    spec.launch):
        raise RenderError(problem.message, problem.hint)


def setting_problems(settings: dict[str, Any], flavour: str, executor: str, nodes: Any,
                     launch: Any) -> list[SettingProblem]:
    """``(key, message, hint)`` for each setting this NeMo-Run executor would not honour:
    what render refuses, said by validate at the key's own line."""
    out: list[SettingProblem] = []

    def problem(key: str, message: str, hint: str) -> None:
        out.append(SettingProblem(key, message, hint))

    get = settings.get
    if flavour == "dgxcloud" and not isinstance(get("client_secret"), dict | None):
        problem("client_secret", "client_secret must be a reference, not a value",
                'write client_secret = { from_env = "VAR" }')
    accepted = accepted_keys(flavour) | {"nemo_executor", "executor", "container_image",
                                         "mounts", "secrets"}
    for key in sorted(k for k, v in settings.items() if v is not None and k not in accepted):
        owners = [f for f in FLAVOURS if f != flavour and key in accepted_keys(f)]
        if flavour == "slurm" and key in SLURM_UNSUPPORTED:
            problem(key, f"{key}: not passed to NeMo-Run's SlurmExecutor",
                    SLURM_UNSUPPORTED[key])
        else:
            problem(key, f"{key}: NeMo-Run's {CLASSES[flavour]} does not read it"
                    + (f" (a key of {', '.join(CLASSES[o] for o in owners)})" if owners else ""),
                    f"remove {key}" + (f', or set nemo_executor = "{owners[0]}"'
                                       if owners and executor == "nemo-run" else ""))
    if flavour not in CONTAINERS and (get("container_image") or get("mounts")):
        problem("container_image" if get("container_image") else "mounts",
                "NeMo-Run's LocalExecutor runs no containers, so container_image / mounts "
                "would be ignored", 'remove them, or use nemo_executor = "docker" or "slurm"')
    if flavour == "lepton" and get("mounts"):
        problem("mounts", "mounts: Lepton mounts are tables (path, mount_path, …), which "
                "runspec does not pass on", "remove mounts")
    if flavour in ("docker", "dgxcloud", "lepton") and not get("container_image"):
        problem("executor", f"NeMo-Run's {CLASSES[flavour]} needs container_image",
                'add container_image = "…" to the profile')
    if flavour == "dgxcloud":
        for key in ("base_url", "kube_apiserver_url", "client_id", "client_secret",
                    "project_name", "pvc_nemo_run_dir"):
            if not get(key):
                problem("executor", f"NeMo-Run's DGXCloudExecutor needs {key}",
                        f"add {key} to the profile")
    if flavour == "lepton" and not get("nemo_run_dir"):
        problem("executor", "NeMo-Run's LeptonExecutor needs nemo_run_dir",
                "add nemo_run_dir to the profile")
    nodes = nodes if isinstance(nodes, int) else 1
    if flavour in ("local", "docker") and nodes > 1:
        problem("nemo_executor", f"NeMo-Run's {CLASSES[flavour]} runs on this machine, not on "
                f"{nodes} nodes", 'use nemo_executor = "slurm", or nodes = 1')
    if nodes > 1 and launch == "torchrun":
        problem("nemo_executor", "a multi-node torchrun needs a rendezvous that runspec's "
                "launch.sh does not set up under NeMo-Run",
                'use executor = "slurm" for multi-node torchrun, or nodes = 1')
    if get("secrets") and flavour != "local":
        problem("secrets", f"secrets cannot be delivered through NeMo-Run's {CLASSES[flavour]} "
                "without writing their values into its files",
                'use nemo_executor = "local", or executor = "slurm" (a 0600 secrets file per '
                "run)")
    if flavour == "slurm":
        for name in get("extra_directives") or {}:
            if name in SLURM_ONLY_DIRECTIVES:
                problem("extra_directives", f"extra_directives: runspec writes --{name} itself",
                        SLURM_ONLY_DIRECTIVES[name])
        remote, packager = get("tunnel") == "ssh", get("packager") or "git"
        if remote and packager == "none":
            problem("packager", 'packager = "none": NeMo-Run starts the task in its own code '
                    "directory, which then holds nothing", 'use packager = "pattern" or "git"')
        if remote and packager == "git" and get("include_uncommitted") is not False:
            problem("include_uncommitted", "NeMo-Run's GitArchivePackager packs committed "
                    "files only, not the working tree (include_uncommitted, default true)",
                    "set include_uncommitted = false (apply then refuses uncommitted "
                    'changes), or packager = "pattern"')
    return out


def campaign_problems(campaign: Mapping[str, Any]) -> list[SettingProblem]:
    """Each campaign setting NeMo-Run cannot honour (``campaign.<key>``, message, hint)."""
    out = []
    retries, parallel = campaign.get("retries"), campaign.get("max_parallel")
    if retries:
        out.append(SettingProblem(
            "campaign.retries", f"NeMo-Run does not start a failed run again (campaign.retries "
            f"= {retries})", "remove campaign.retries, or use "
            'executor = "slurm" (its job array retries inside the job)'))
    for gap in ("config_gap", "cycle_gap"):
        if campaign.get(gap):
            out.append(SettingProblem(
                f"campaign.{gap}", f"NeMo-Run starts its tasks without idle time between them "
                f"(campaign.{gap})", 'remove the gap, or use executor = "slurm" or "local", '
                "which honour it"))
    if parallel not in (None, 1):
        out.append(SettingProblem(
            "campaign.max_parallel", f"NeMo-Run runs an experiment's tasks all at once or one "
            f"after another, not {parallel} at a time (campaign.max_parallel)",
            "remove max_parallel, or set it to 1 (one after another)"))
    return out


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def build_config(spec: RunSpec, flavour: str, root: Path) -> dict[str, Any]:
    settings, resources = spec.settings, spec.resources
    nodes, gpus = resources["nodes"], resources["gpus_per_node"] or None
    tasks = settings.get("ntasks_per_node") or resources["procs_per_node"]
    if not isinstance(tasks, int) or spec.launch == "torchrun":
        tasks = 1  # torchrun (inside launch.sh) starts the workers
    env: dict[str, str] = {}  # the run's variables are exported by its launch.sh
    if flavour == "local":
        return {"class": "LocalExecutor", "ntasks_per_node": 1, "nodes": 1, "env_vars": env}
    if flavour == "slurm":
        from runspec.backends.slurm import JOB_ENVIRONMENT

        extra = {k: v for k, v in sorted((settings.get("extra_directives") or {}).items())
                 if v is not False}  # NeMo-Run writes true as a bare flag
        extra["export"] = ",".join(JOB_ENVIRONMENT)
        config: dict[str, Any] = _drop_none({
            "class": "SlurmExecutor",
            "account": settings.get("account"),
            "partition": settings.get("batch_partition") or settings.get("partition"),
            "qos": settings.get("qos"), "constraint": settings.get("constraint"),
            "exclusive": True if settings.get("exclusive") else None,
            "time": resources.get("time") or "00:10:00", "nodes": nodes,
            "ntasks_per_node": tasks, "cpus_per_task": resources.get("cpus_per_task"),
            "gpus_per_node": gpus, "mem": resources.get("mem"),
            "container_image": spec.container_image,
            "container_mounts": list(spec.mounts) if spec.container_image else None,
            "additional_parameters": extra, "env_vars": env,
            "dependency_type": "afterany", "poll_estimated_start_time": False,
        })
        config["account"] = settings.get("account")  # required by NeMo-Run, even when None
        config["tunnel"], config["packager"] = _tunnel(spec, root), _packager(spec, root)
        return config
    if flavour == "docker":
        return _drop_none({"class": "DockerExecutor", "container_image": spec.container_image,
                           "num_gpus": gpus, "runtime": settings.get("runtime"),
                           "ipc_mode": settings.get("ipc_mode"),
                           "shm_size": settings.get("shm_size"), "ntasks_per_node": tasks,
                           "volumes": [*spec.mounts, f"{root.as_posix()}:{root.as_posix()}"],
                           "env_vars": env})
    if flavour == "dgxcloud":
        secret = settings.get("client_secret") or {}
        return _drop_none({"class": "DGXCloudExecutor", **{k: settings.get(k) for k in (
            "base_url", "kube_apiserver_url", "client_id", "project_name", "pvc_nemo_run_dir",
            "pvcs", "distributed_framework", "custom_spec")},
            "client_secret": {"from_env": secret.get("from_env")},
            "container_image": spec.container_image, "nodes": nodes,
            "gpus_per_node": gpus or 0, "nprocs_per_node": tasks, "env_vars": env})
    if flavour == "lepton":
        return _drop_none({"class": "LeptonExecutor", **{k: settings.get(k) for k in (
            "nemo_run_dir", "resource_shape", "node_group", "node_reservation",
            "shared_memory_size", "image_pull_secrets", "custom_spec", "pre_launch_commands")},
            "container_image": spec.container_image, "nodes": nodes,
            "gpus_per_node": gpus or 0, "nprocs_per_node": tasks, "env_vars": env})
    return _drop_none({"class": "SkypilotExecutor", **{k: settings.get(k) for k in (
        "cloud", "region", "zone", "instance_type", "use_spot", "disk_size", "cluster_name",
        "autodown", "idle_minutes_to_autostop")},
        "gpus": settings.get("gpus"), "gpus_per_node": gpus,
        "container_image": spec.container_image, "num_nodes": nodes, "env_vars": env})


def _tunnel(spec: RunSpec, root: Path) -> dict[str, Any]:
    settings = spec.settings
    if settings.get("tunnel") != "ssh":
        # job_dir: NeMo-Run's experiment directory lives beside the stage's runs.
        # job_dir: the stage's experiments directory, filled in by render_launch.
        return {"class": "LocalTunnel"}
    return _drop_none({"class": "SSHTunnel", "host": settings["host"],
                       "user": settings.get("user") or "", "port": settings.get("port"),
                       "identity": settings.get("identity"),
                       "job_dir": settings["remote_job_dir"],
                       # runspec's, not NeMo-Run's: the host key is checked against it.
                       "known_hosts": settings.get("known_hosts") or "~/.ssh/known_hosts"})


RUNSPEC_SOURCE = "runspec"
"""tunnel = "ssh": runspec's own source is packed beside the project, so the in-job wrapper
(python -m runspec.measure) is the version that rendered the request."""


def _packager(spec: RunSpec, root: Path) -> dict[str, Any]:
    """What NeMo-Run packs into each task's code directory: nothing on a LocalTunnel (the
    job reads the project in place); over SSH the project (git or patterns), the run's
    directory and runspec's source."""
    settings = spec.settings
    if settings.get("tunnel") != "ssh":
        return {"class": "Packager"}
    here = root.as_posix()
    source = Path(__file__).resolve().parents[2].as_posix()
    extra = [f"{here}/{spec.run_dir}", f"{source}/{RUNSPEC_SOURCE}"]
    bases = [here, source]
    if (settings.get("packager") or "git") == "git":
        return {"class": "GitArchivePackager", "include_pattern": extra,
                "include_pattern_relative_path": bases, "check_uncommitted_changes": True,
                "check_untracked_files": True}
    patterns = [f"{here}/{p}" for p in settings.get("package_patterns") or []]
    return {"class": "PatternPackager", "include_pattern": [*patterns, *extra],
            "relative_path": [here] * len(patterns) + bases}


def task_script(spec: RunSpec, root: Path, remote: bool = False) -> str:
    """The task NeMo-Run runs: the run's ``launch.sh``. NeMo-Run starts a task in its own
    job directory, so the script first goes to the project: its absolute path here (the
    job reads the project in place), or, over SSH, the task's code directory NeMo-Run
    unpacked the project into (where the job starts), with runspec's source on PYTHONPATH."""
    lines = run_script(spec).splitlines()
    if remote:
        place = ["# NeMo-Run starts the task in its code directory: the packed project.",
                 'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"']
    else:
        place = [f"cd {shell_quote(root.as_posix())}"]
    run_dir = shell_quote(spec.run_dir)
    place += ["# The run's output goes to its directory, and on to NeMo-Run's own log.",
              f'exec > >(tee -a {run_dir}/stdout.log) 2> >(tee -a {run_dir}/stderr.log >&2)']
    at = lines.index("set -euo pipefail") + 1
    return "\n".join([*lines[:at], *place, *lines[at:]]) + "\n"
