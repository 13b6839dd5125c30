"""Settings a backend cannot honour are refused at validate, never accepted and ignored.

Each backend declares what it honours (``Capabilities`` in runspec/backends/base.py); this
module compares a stage's settings, from the manifest and its env.toml profile, with the
capabilities of the executor they resolve to, and says at the setting's own position what
would work instead.
"""

from __future__ import annotations

from typing import Any

from runspec.manifest.document import Document, KeyPath, format_path
from runspec.manifest.errors import Diagnostic
from runspec.manifest.vocabulary import LAUNCHES

SSH_KEYS = ("host", "user", "identity", "remote_job_dir", "port", "known_hosts")
PACKAGE_KEYS = ("packager", "package_patterns", "include_uncommitted")
CONTAINER_KEYS = ("container_image", "container", "mounts")


def _copies_from_the_cluster(document: Document, at: KeyPath, outputs: Any
                             ) -> list[Diagnostic]:
    """``mode = "copy"`` on an output written on a cluster reached over SSH: it stays there
    and is registered by reference, as the cluster sees it (its digest computed there)."""
    out = []
    for name, table in (outputs.items() if isinstance(outputs, dict) else ()):
        if isinstance(table, dict) and table.get("mode") == "copy":
            path = at[:-1] + ("outputs", "artifacts", name, "mode")
            out.append(Diagnostic.at(
                document.value_position(path), format_path(path),
                f'mode = "copy": runs through the login node (tunnel = "ssh") write {name} on '
                "the cluster, where it stays: runspec registers it there by reference and "
                "cannot copy it into the registry here",
                'use mode = "reference" (or leave mode out)', document))
    return out


def capability_diagnostics(document: Document, at: KeyPath, inline: dict[str, Any],
                           profile: Any, env_document: Document | None, executor: str,
                           recipe: dict[str, Any], resources: dict[str, Any] | None = None,
                           campaign: dict[str, Any] | None = None,
                           outputs: Any = ()) -> list[Diagnostic]:
    """What the stage at ``at`` (its ``env`` table) asks of ``executor`` that it cannot do."""
    from runspec.backends import backend_for, is_executor

    if not is_executor(executor):
        return []
    caps = backend_for(executor).capabilities
    merged = {**(profile.data if profile is not None else {}), **inline}
    out: list[Diagnostic] = []

    def refuse(key: str, message: str, hint: str) -> None:
        if key in inline:
            position, doc, path = document.value_position(at + (key,)), document, at + (key,)
        elif profile is not None and env_document is not None:
            located = profile.positions.get((key,))
            position = (located.value or located.key) if located else \
                env_document.value_position((profile.name,))
            doc, path = env_document, (profile.name, key)
        else:
            position, doc, path = document.value_position(at), document, at + (key,)
        out.append(Diagnostic.at(position, format_path(path), message, hint, doc))

    backend = backend_for(executor)
    names = [n for n in outputs if isinstance(n, str)] if isinstance(outputs, dict) else []
    for problem in backend.setting_problems(merged, resources or {}, recipe, campaign or {},
                                            names):
        if problem.key.startswith("campaign."):
            key = problem.key.removeprefix("campaign.")
            path = next((p for p in (at[:-1] + ("campaign", key), ("campaign", key))
                         if p in document.positions), at[:-1] + ("campaign",))
            out.append(Diagnostic.at(document.value_position(path), format_path(path),
                                     problem.message, problem.hint, document))
        else:
            refuse(problem.key, problem.message, problem.hint)
    if not caps.submits:
        refuse("executor", f'executor "{executor}" can be planned and rendered, but runspec '
               "cannot submit through it yet", 'use executor = "slurm" (it runs the same '
               "launch.sh), or a local profile")
    tunnel = merged.get("tunnel")
    if tunnel == "ssh":
        for key in ("host", "remote_job_dir"):
            if not merged.get(key):
                refuse("tunnel", f'tunnel = "ssh" needs {key}: '
                       + ("the login node to run sbatch on" if key == "host" else
                          "the directory on the cluster for the code and the run directories"),
                       f'add {key} = "…" beside tunnel')
        remote = merged.get("remote_job_dir")
        if isinstance(remote, str) and remote and not remote.startswith("/"):
            refuse("remote_job_dir", f'remote_job_dir = "{remote}" is not an absolute path',
                   "give the directory as the cluster's nodes see it, from /")
        packager = merged.get("packager") or "git"
        if packager == "pattern" and not merged.get("package_patterns"):
            refuse("packager", 'packager = "pattern" packs the files package_patterns '
                   "matches, and there is none", 'add package_patterns = ["*.py", …]')
        if merged.get("package_patterns") and packager != "pattern":
            refuse("package_patterns", f'package_patterns is only used with packager = '
                   f'"pattern", not "{packager}"', 'set packager = "pattern", or remove '
                   "package_patterns")
        if merged.get("include_uncommitted") is not None and packager != "git":
            refuse("include_uncommitted", f'include_uncommitted is only used with packager = '
                   f'"git", not "{packager}"', "remove include_uncommitted")
        out += _copies_from_the_cluster(document, at, outputs)
    else:
        for key in (*SSH_KEYS, *PACKAGE_KEYS):
            if merged.get(key) is not None:
                refuse(key, f'{key} is only used with tunnel = "ssh", which is not set',
                       f'remove {key}, or set tunnel = "ssh" to submit through a login node')
    if not caps.containers:
        for key in CONTAINER_KEYS:
            if merged.get(key):
                refuse(key, f"the {executor} executor runs no containers, so {key} would be "
                       "ignored", f"remove {key}, or use a Slurm profile (pyxis runs the "
                       "container)")
    if not caps.startup_commands and merged.get("startup_commands"):
        refuse("startup_commands", f"the {executor} executor does not run startup_commands "
               "before the recipe, so they would be ignored", "remove startup_commands, or do "
               "that setup in the recipe (or its runtime_env)")
    nodes_path = _resources_path(document, at, "nodes")
    nodes = (resources or {}).get("nodes")
    if not caps.multi_node and isinstance(nodes, int) and not isinstance(nodes, bool) \
            and nodes > 1 and nodes_path is not None:
        out.append(Diagnostic.at(
            document.value_position(nodes_path), format_path(nodes_path),
            f"the {executor} executor starts one process group on one node, got nodes = "
            f"{nodes}", "use a Slurm profile for multi-node jobs, or nodes = 1", document))
    launch = recipe.get("launch")
    procs_path = _resources_path(document, at, "procs_per_node")
    procs = (resources or {}).get("procs_per_node")
    if launch in caps.one_process_launches and procs_path is not None and procs not in (None, 1):
        out.append(Diagnostic.at(
            document.value_position(procs_path), format_path(procs_path),
            f'launch = "{launch}" on {executor} starts one process per node, not {procs}',
            "leave procs_per_node out (Ray's workers use the node's cpus_per_task and "
            "gpus_per_node)", document))
    if launch in LAUNCHES and launch not in caps.launch_modes:  # others: the schema says
        hint = ('use a Ray profile (executor = "ray"; without an address runspec starts a '
                "local head)" if launch == "ray" else
                "use one of: " + ", ".join(sorted(caps.launch_modes)))
        position = document.value_position(at[:-1] + ("recipe", "launch"))
        out.append(Diagnostic.at(position, format_path(at[:-1] + ("recipe", "launch")),
                                 f'the {executor} executor cannot start launch = "{launch}"',
                                 hint, document))
    return out


def _resources_path(document: Document, at: KeyPath, key: str) -> KeyPath | None:
    """Where the manifest sets ``resources.KEY`` for the stage at ``at`` (the stage's own
    table wins over the top level), if it does."""
    stage = at[:-1] if at and at[-1] == "env" else at
    for path in (stage + ("resources", key), ("resources", key)):
        if path in document.positions:
            return path
    return None


def campaign_diagnostics(document: Document, at: KeyPath, campaign: Any) -> list[Diagnostic]:
    """A gap is idle time between one run's end and the next run's start: it needs one run
    at a time, so it cannot go with ``max_parallel > 1``."""
    if not isinstance(campaign, dict):
        return []
    gaps = [k for k in ("config_gap", "cycle_gap")
            if isinstance(campaign.get(k), int | float) and campaign[k] > 0]
    parallel = campaign.get("max_parallel")
    if gaps and isinstance(parallel, int) and parallel > 1:
        path = at + ("campaign", "max_parallel")
        return [Diagnostic.at(document.value_position(path), format_path(path),
                              f"{gaps[0]} is idle time between one run's end and the next "
                              f"run's start, which needs one run at a time, not {parallel}",
                              f"remove max_parallel (or set it to 1), or remove {gaps[0]}",
                              document)]
    return []
