"""The ``runspec`` command line: click commands wired to library functions, nothing more."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runspec import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _max_runs(ctx, param, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter("must be at least 1")
    return value


_MAX_RUNS = click.option("--max-runs", type=int, default=None, metavar="N", callback=_max_runs,
                         help="Refuse a manifest that plans more than N runs (sweep points × "
                              "(cycles + warmups)), counted before anything is expanded "
                              "[default: 1,000,000].")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="runspec",
                      message="%(prog)s %(version)s")
def main() -> None:
    """Turn one checked-in manifest (run.toml / run.yaml) into ML training and benchmark
    launches: validate it, plan what will run, and apply the plan locally, on Slurm or on Ray.

    \b
    Shell completion (bash; use zsh_source / fish_source for other shells):
      eval "$(_RUNSPEC_COMPLETE=bash_source runspec)"
    """


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people; json: [{file, line, col, path, message, hint}].")
@_MAX_RUNS
def validate(paths: tuple[Path, ...], fmt: str, max_runs: int) -> None:
    """Check manifests and env.toml files against the schema and runspec's rules.

    PATHS are files or directories (default: the current directory); in a directory every
    run.toml, *.run.yaml, env.toml and any TOML/YAML whose `schema` is "runspec/v1" is
    checked. Prints every problem with file:line:col, the key path, what was expected and a
    did-you-mean; exits 1 if there is any error, 0 (quietly) otherwise.
    """
    from runspec.manifest.checks import limit_runs
    from runspec.manifest.validate import validate_paths

    paths = paths or (Path("."),)
    with limit_runs(max_runs):
        files, diagnostics = validate_paths(paths)
    errors = sum(d.severity == "error" for d in diagnostics)
    if fmt == "json" or diagnostics:  # a clean run imports no output code
        from runspec.console import diagnostics_json, print_diagnostics, summary
    if fmt == "json":
        click.echo(diagnostics_json(diagnostics))
    elif diagnostics:
        print_diagnostics(diagnostics)
        click.echo(summary(errors, len(diagnostics) - errors, len(files)), err=True)
    if not files:
        click.echo("error: no manifests found in " + ", ".join(map(str, paths)), err=True)
        sys.exit(1)
    sys.exit(1 if errors else 0)


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to write into (default: the schemas/ directory runspec reads).")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 if the files differ from what the models generate.")
def schema(out_dir: Path | None, check: bool) -> None:
    """Generate run.schema.json and env.schema.json from the models.

    Editors use them for completion and inline errors: see docs/editors.md.
    """
    from runspec.manifest import schema as schemas

    target = out_dir or schemas.schema_dir()
    if check:
        stale = schemas.stale(target)
        for path in stale:
            click.echo(f"{path}: out of date; run `runspec schema` to regenerate", err=True)
        sys.exit(1 if stale else 0)
    for path in schemas.write(target):
        click.echo(f"wrote {path}")


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["toml", "yaml"]), default="toml",
              show_default=True, help="Manifest format.")
@click.option("--name", default=None, help="Manifest name (default: the directory's name).")
@click.option("--force", is_flag=True, help="Overwrite an existing manifest.")
def init(directory: Path, fmt: str, name: str | None, force: bool) -> None:
    """Write a starter manifest (and train.py) into DIRECTORY, linked to the schema for editors."""
    from runspec.manifest.starter import init as write_starter

    result = write_starter(directory, fmt, name, force)
    for path in result.written:
        click.echo(f"wrote {path}")
    for path in result.skipped:
        click.echo(f"kept existing {path}" + (" (use --force to overwrite)"
                                                if path.suffix != ".py" else ""))
    click.echo(f"next: runspec validate {directory}")


def _manifest_here() -> Path:
    """The manifest a command means when none is named: run.toml (or run.yaml) here."""
    for name in ("run.toml", "run.yaml", "run.yml"):
        if Path(name).is_file():
            return Path(name)
    raise click.UsageError("no run.toml or run.yaml in this directory: name the manifest")


def _run_apply():
    """The full apply (it imports the planner and the engine: only when needed)."""
    from runspec.apply.session import run_apply

    return run_apply


def _selection(target, exclude, replace, sets):
    from runspec.plan.selection import Selection

    return Selection(list(target), list(exclude), list(replace), list(sets))


def _fail(error) -> None:
    """Print a ManifestError's diagnostics or a StateError's message, and exit 1."""
    from runspec.console import print_diagnostics
    from runspec.manifest.errors import ManifestError

    if isinstance(error, ManifestError):
        print_diagnostics(error.diagnostics)
    else:
        click.echo(f"error: {error}", err=True)
    sys.exit(1)


_SET = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                    help="Override a manifest value, e.g. --set campaign.cycles=1 or "
                         "--set recipe.overrides.optim.lr=0.1 (sets that key; the config's "
                         "other keys stay). VALUE is written in the manifest's language "
                         "(TOML for a .toml manifest, YAML for a .yaml one); an unquoted "
                         "word is a string.")
_TARGET = click.option("--target", multiple=True, metavar="GLOB",
                       help="Only runs whose key matches (repeatable).")
_EXCLUDE = click.option("--exclude", multiple=True, metavar="GLOB",
                        help="Leave out runs whose key matches (repeatable).")
_REPLACE = click.option("--replace", multiple=True, metavar="GLOB",
                        help="Replace matching runs even if unchanged (repeatable).")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path),
                callback=lambda ctx, param, value: value or (_manifest_here(),))
@_TARGET
@_EXCLUDE
@_REPLACE
@_SET
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 with no changes, 1 on error, 2 with changes (for CI gates).")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON plan format.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan (with the state's lineage and serial) for `apply PLAN.json`.")
@click.option("--show-unchanged", is_flag=True, help="List unchanged runs too.")
@_MAX_RUNS
def plan(paths, target, exclude, replace, sets, detailed_exitcode, as_json, out_file,
         show_unchanged, max_runs) -> None:
    """Show what apply would launch, and what changed since the last apply.

    PATHS are manifests (default: run.toml, or run.yaml, in the current directory).

    Reads the manifest(s), env.toml and the stored state; writes and submits nothing.
    Runs are grouped by stage: + create, -/+ replace (with the reason and a diff),
    ↻ rerun (failed or lost last time), - destroy (gone from the manifest). Unchanged runs
    are counted, and hidden unless --show-unchanged.
    """
    from runspec.backends.base import BackendError
    from runspec.console import print_plan
    from runspec.manifest.errors import ManifestError
    from runspec.manifest.validate import discover, is_manifest
    from runspec.plan import report
    from runspec.plan.pipeline import make_plan
    from runspec.state.store import StateError

    manifests = [p for p in discover(paths) if p.name != "env.toml" and (
        p.exists() is False or is_manifest(p) or p in paths)]
    if not manifests:
        click.echo("error: no manifests found in " + ", ".join(map(str, paths)), err=True)
        sys.exit(1)
    if out_file and len(manifests) > 1:
        click.echo("error: --out saves the plan of one manifest; name exactly one", err=True)
        sys.exit(1)
    selection = _selection(target, exclude, replace, sets)
    try:
        results = [make_plan(path, selection, max_runs) for path in manifests]
        report.check_unique_names(results)
    except (ManifestError, StateError, BackendError) as error:
        _fail(error)
    from runspec.console import print_diagnostics

    for result in results:  # what the plan does differently from what a file asks
        print_diagnostics(list(dict.fromkeys(result.plan.notes)))
    if as_json:
        report.write_plan_json(results, sys.stdout)
    else:
        for index, result in enumerate(results):
            print_plan(("\n" if index else "") + report.plan_text(result, show_unchanged))
    for result in results:
        if result.lock_note:
            click.echo(result.lock_note, err=True)
    if out_file:
        from runspec.apply.session import save_error, write_saved_plan

        try:
            write_saved_plan(results[0], selection, out_file)
        except OSError as error:
            _fail(save_error(error, out_file))
        click.echo(f"Saved the plan to {out_file}; apply it with `runspec apply {out_file}`.",
                   err=True)
    changed = any(result.changes.has_changes for result in results)
    sys.exit(2 if detailed_exitcode and changed else 0)


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path),
                callback=lambda ctx, param, value: value or _manifest_here())
@click.option("--yes", "-y", is_flag=True, help="Apply without asking (needed without a terminal).")
@click.option("--detach", is_flag=True,
              help="Local runs: continue in a background process instead of waiting.")
@click.option("--wait", is_flag=True,
              help="Slurm and Ray: follow the jobs until they finish (also runs an earlier "
                   "apply left queued or running).")
@click.option("--prune", is_flag=True, help="Cancel running runs that left the manifest.")
@_TARGET
@_EXCLUDE
@_REPLACE
@_SET
@_MAX_RUNS
def apply(path, yes, detach, wait, prune, target, exclude, replace, sets, max_runs) -> None:
    """Launch what the plan shows: only runs to create, replace or rerun.

    PATH is a manifest (default: run.toml or run.yaml here), or a plan saved with
    `runspec plan --out plan.json` (applied without asking, and refused if the manifest or
    the state moved on since). For a manifest it shows the plan and asks for confirmation
    on a terminal. Holds the state lock throughout and records every submission at once.
    Local runs are waited for (Ctrl-C cancels them cleanly); Slurm and Ray return after
    submitting unless --wait. An unchanged manifest prints "No changes." and makes no
    backend call.
    """
    from runspec.apply.noop import quick_no_op
    from runspec.apply.outcome import ApplyAborted, ApplyOptions
    from runspec.backends.base import BackendError
    from runspec.console import apply_reporter, confirm_plan
    from runspec.manifest.checks import limit_runs
    from runspec.manifest.errors import ManifestError
    from runspec.state.store import StateError

    selection = _selection(target, exclude, replace, sets)
    # A saved plan was reviewed when it was made: like Terraform, apply it without asking.
    if not yes and not sys.stdin.isatty() and path.suffix != ".json":
        click.echo("error: apply needs confirmation and there is no terminal: pass --yes", err=True)
        sys.exit(1)
    options = ApplyOptions(detach=detach, wait=wait, prune=prune)
    try:
        with apply_reporter() as reporter, limit_runs(max_runs):
            outcome = (quick_no_op(path, selection, options, reporter.event)
                       or _run_apply()(path, selection, options, confirm_plan(yes), reporter,
                                       quick=False))
    except (ManifestError, StateError) as error:
        _fail(error)
    except (ApplyAborted, BackendError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    if outcome.no_changes:
        still = (f" ({outcome.still_active} run{'s' * (outcome.still_active != 1)} still "
                 "queued or running)") if outcome.still_active else ""
        click.echo(f"No changes. Everything planned was applied; nothing to launch{still}.")
        return
    click.echo(outcome.summary())
    sys.exit(0 if outcome.ok else 1)


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path),
                callback=lambda ctx, param, value: value or _manifest_here())
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON.")
@click.option("--watch", is_flag=True, help="Refresh every few seconds until every run ended.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between --watch refreshes.")
def status(path, as_json, watch, interval) -> None:
    """Refresh what apply launched from the backends and show one row per run.

    PATH is the manifest (default: run.toml, or run.yaml, in the current directory)."""
    import json
    import time

    from runspec.apply import inspect
    from runspec.console import print_status
    from runspec.manifest.errors import ManifestError
    from runspec.state.status import ACTIVE
    from runspec.state.store import StateError

    def warn(text: str) -> None:
        click.echo(text, err=True)

    try:
        target = inspect.tracked(path)
        while True:
            written = inspect.refresh(target, warn)
            members = inspect.select(target.state, None)
            if as_json:
                from dataclasses import asdict

                click.echo(json.dumps([{k: v for k, v in asdict(m).items() if k != "request"}
                                       for m in members], indent=2))
            else:
                print_status(target.name, members)
                if not written:
                    click.echo("(an apply holds the state lock: shown fresh, not written)",
                               err=True)
            # An apply still holding the state may start more runs (the next after a gap).
            if not watch or (written and not any(m.status in ACTIVE for m in members)):
                break
            time.sleep(interval)
    except (ManifestError, StateError) as error:
        _fail(error)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("key", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@click.option("--attempt", type=click.IntRange(min=1), default=None, metavar="N",
              help="Show attempt N (1, 2, …: retries, reruns, requeues) instead of the last.")
def logs(path, key, follow, attempt) -> None:
    """Print runs' output (stdout, then stderr) of their last attempt. KEY is a run key or
    a glob; without it, every run of PATH, each under a ``==> key <==`` header. --follow
    needs one run."""
    from runspec.apply import inspect
    from runspec.manifest.errors import ManifestError
    from runspec.state.store import StateError

    try:
        for chunk in inspect.logs(inspect.tracked(path), key, follow, attempt):
            click.echo(chunk, nl=False)
    except (ManifestError, StateError) as error:
        _fail(error)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("glob", required=False)
def cancel(path, glob) -> None:
    """Cancel running runs of PATH (those whose key matches GLOB, or all of them).

    Works while an apply runs: the apply holding the state is asked to stop just those runs
    (and not to start matching ones it has not started yet); it records them as cancelled
    and goes on with the others."""
    from runspec.apply import inspect
    from runspec.backends.base import BackendError
    from runspec.manifest.errors import ManifestError
    from runspec.state.store import StateError

    try:
        cancelled = inspect.cancel(inspect.tracked(path), glob,
                                   lambda text: click.echo(text, err=True))
    except (ManifestError, StateError) as error:
        _fail(error)
    except BackendError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    for key in cancelled:
        click.echo(f"cancelled {key}")
    if not cancelled:
        click.echo("Nothing to cancel: no run of " + path.name + " is running"
                   + (f" that matches {glob}" if glob else "") + ".")


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path),
                callback=lambda ctx, param, value: value or _manifest_here())
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "md"]),
              default="table", show_default=True,
              help="table and md: a row per point, mean ± CI per metric; csv and json: a row "
                   "per point and metric, a column per sweep parameter.")
@click.option("--long", "long_format", is_flag=True,
              help="table and md: a row per point and metric, with std, CV, min and max.")
@click.option("--group-by", default=None, metavar="PARAM,…",
              help="Group by these sweep parameters only (default: the whole point).")
@click.option("--all", "everything", is_flag=True,
              help="Include the runs of earlier configurations (from the history: replaced, "
                   "rerun, destroyed), each marked by its config.")
@click.option("--compare", "compare_spec", metavar="SPEC",
              help="Compare per metric (Welch's t-test, 95% CI, verdict against measure.noise): "
                   "PARAM=A..B, @previous (each point's previous configuration), or a "
                   "FILE.json written by `runspec results --format json`.")
@click.option("--metrics", "metric_set", type=click.Choice(["declared", "all"]),
              default="declared", show_default=True,
              help="declared: measure.metrics, the primary and what runspec measures; all: "
                   "also what the recipe reported beyond them.")
@click.option("--ci", "ci_method", type=click.Choice(["t", "bootstrap"]), default="t",
              show_default=True,
              help="95% CI of a mean: Student t, or a percentile bootstrap (10,000 resamples, "
                   "seeded).")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: each cycle's value, mean and 95% CI against the first sweep "
                   "parameter.")
@click.option("--metric", "plot_metrics", multiple=True, metavar="NAME",
              help="A metric to plot (repeatable, one subplot each; default: the primary).")
@click.option("--logx", is_flag=True, help="Plot with a logarithmic x axis.")
@click.option("--logy", is_flag=True, help="Plot with a logarithmic y axis.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Exit 1 if any planned run has no result (never applied included), or lacks "
                   "a metric measure.metrics declares (--no-strict: warn).")
def results(path, fmt, long_format, group_by, everything, compare_spec, metric_set, ci_method,
            plot_file, plot_metrics, logx, logy, strict) -> None:
    """Summarize what the runs measured: per sweep point, over cycles (warmups left out),
    the mean and 95% CI of every declared metric, wall time, peak RSS, energy and
    emissions; or compare two sets of runs (--compare). Best first by measure.primary (and
    measure.goal); n < 3 and CIs below a physical bound are flagged; the energy measurement
    methods are named under the table. PATH defaults to run.toml (or run.yaml) in the
    current directory."""
    from runspec.manifest.errors import ManifestError
    from runspec.measure.command import Options, results_command
    from runspec.measure.stats import CIMethod
    from runspec.state.store import StateError

    options = Options(path, fmt, group_by.split(",") if group_by else None, everything,
                      compare_spec, long_format, metric_set == "all", CIMethod(ci_method),
                      plot_file, list(plot_metrics), logx, logy, strict)
    try:
        outcome = results_command(options)
    except (ManifestError, StateError) as error:
        _fail(error)
    click.echo(outcome.out, nl=False)
    for message in outcome.messages:
        click.echo(message, err=True)
    sys.exit(outcome.code)


@main.group()
@click.option("--root", default=None, metavar="PATH|URL",
              help="Registry root (default: $RUNSPEC_ARTIFACTS, else env.toml's [artifacts] "
                   "root, else the project's .runspec/artifacts: beside env.toml, else at the "
                   "git root, else here).")
@click.option("-C", "directory", default=None, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Find the project's registry from DIR instead of the current directory.")
@click.pass_context
def artifacts(ctx, root, directory) -> None:
    """The artifact registry: what runs produced, their versions, aliases and lineage."""
    from runspec.artifacts.registry import Registry, registry_root
    from runspec.manifest.errors import ManifestError
    from runspec.manifest.profiles import find_env_file, load_env_file

    if root is None:
        start = (directory or Path.cwd()).resolve()
        env_path = find_env_file(start)
        env_path = env_path if env_path is not None and env_path.is_file() else None
        try:
            data = load_env_file(env_path).document.data if env_path else None
        except ManifestError as error:
            _fail(error)
        root = registry_root(data, env_path, start)
    ctx.obj = _or_fail(lambda: Registry(root))


@artifacts.command("list")
@click.pass_obj
def artifacts_list(registry) -> None:
    """Every artifact with its versions and aliases."""
    from runspec.artifacts.report import listing

    click.echo(listing(registry), nl=False)


@artifacts.command("show")
@click.argument("ref", metavar="NAME[:vN|:ALIAS]")
@click.pass_obj
def artifacts_show(registry, ref) -> None:
    """One version's metadata (the latest without a version)."""
    import json

    from runspec.artifacts.report import resolve_ref

    version = _or_fail(lambda: resolve_ref(registry, ref))
    click.echo(json.dumps(version.metadata, indent=2))


@artifacts.command("publish")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--type", "type_", default="artifact", show_default=True,
              help="Artifact type, e.g. dataset or model.")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS",
              help="Aliases to move to the new version (repeatable; latest always moves).")
@click.option("--mode", type=click.Choice(["copy", "reference"]), default=None,
              help="copy: into the registry (content-addressed); reference: keep PATH, "
                   "checked against its digests when pinned (default: copy up to 256 MiB).")
@click.pass_obj
def artifacts_publish(registry, name, path, type_, aliases, mode) -> None:
    """Register PATH (a file or directory) as NAME's next version."""
    from runspec.artifacts.registry import Mode

    version = _or_fail(lambda: registry.publish(name, path, type_, mode=Mode(mode or "auto"),
                                                aliases=("latest", *aliases)))
    how = "copied" if version.metadata["mode"] == Mode.COPY else "referenced"
    click.echo(f"published {version.label} ({type_}, {how}) → {version.path}")


@artifacts.command("alias")
@click.argument("ref", metavar="NAME:vN")
@click.argument("alias")
@click.pass_obj
def artifacts_alias(registry, ref, alias) -> None:
    """Point ALIAS (best, prod, …) at version NAME:vN; plans pinning NAME:ALIAS then replace
    their runs (``# input NAME: v3 → v4``)."""
    from runspec.artifacts.report import resolve_ref

    version = _or_fail(lambda: resolve_ref(registry, ref))
    before = _or_fail(lambda: registry.set_alias(version.name, alias, version.number))
    was = "" if before is None else (" (unchanged)" if before == version.number
                                     else f" (was v{before})")
    click.echo(f"{version.name}:{alias} → v{version.number}{was}")


@artifacts.command("lineage")
@click.argument("ref", metavar="NAME[:vN|:ALIAS]")
@click.pass_obj
def artifacts_lineage(registry, ref) -> None:
    """The tree of runs and input versions that produced a version."""
    from runspec.artifacts.report import lineage_tree, resolve_ref

    version = _or_fail(lambda: resolve_ref(registry, ref))
    click.echo(lineage_tree(registry.lineage(version)), nl=False)


def _or_fail(action):
    from runspec.artifacts.uri import ArtifactError

    try:
        return action()
    except ArtifactError as error:
        click.echo(f"error: {error.message}" + (f" — {error.hint}" if error.hint else ""), err=True)
        sys.exit(1)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the rendered files into.")
@_SET
def render(path, out_dir, sets) -> None:
    """Write every rendered file of PATH's plan into a directory, for inspection.

    Per run: config.yaml, job.yaml and the backend's request (local.json, launch.sh,
    ray.json); per stage: the launch files (job.sbatch for Slurm).
    """
    from runspec.backends.base import BackendError
    from runspec.manifest.errors import ManifestError
    from runspec.plan.export import write_rendered
    from runspec.plan.render import build_plan
    from runspec.plan.resolve import resolve

    try:
        resolved = resolve(path, list(sets))
        built = build_plan(resolved)
        written = write_rendered(built, out_dir, {s.name: s.campaign for s in resolved.stages})
    except (ManifestError, BackendError) as error:
        _fail(error)
    click.echo(f"wrote {len(written)} files for {len(built.runs)} runs under {out_dir}")


@main.command("force-unlock")
@click.argument("lock_id")
@click.option("--manifest", "path", default="run.toml", show_default=True,
              type=click.Path(path_type=Path), help="The manifest whose state is locked.")
def force_unlock(lock_id: str, path: Path) -> None:
    """Break a state lock left behind (for example by a killed apply).

    LOCK_ID is the id printed in the lock error; it must match, so a typo cannot break
    somebody else's lock. A lock whose holder cannot be read (an empty or damaged lock
    file) is broken with the id `unknown`; what is known of the file (size, time, content)
    is printed.
    """
    from runspec.manifest.errors import ManifestError
    from runspec.state.lock import describe_file
    from runspec.state.lock import force_unlock as unlock
    from runspec.state.store import StateError
    from runspec.state.where import state_file_for

    try:
        state_file = state_file_for(path)
        known = describe_file(state_file)  # before it is gone
        info = unlock(state_file, lock_id)
    except (ManifestError, StateError) as error:
        _fail(error)
    click.echo(f"Unlocked: {info.describe()}" if info else
               f"Unlocked a lock whose holder could not be read: {known}")


if __name__ == "__main__":
    main()
