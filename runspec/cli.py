"""The ``runspec`` command line: click commands wired to library functions, nothing more."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runspec import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people; json: [{file, line, col, path, message, hint}].")
def validate(paths: tuple[Path, ...], fmt: str) -> None:
    """Check manifests and env.toml files against the schema and runspec's rules.

    PATHS are files or directories; in a directory every run.toml, *.run.yaml, env.toml and
    any TOML/YAML whose `schema` is "runspec/v1" is checked. Prints every problem with
    file:line:col, the key path, what was expected and a did-you-mean; exits 1 if there is
    any error, 0 (quietly) otherwise.
    """
    from runspec.console import diagnostics_json, print_diagnostics, summary
    from runspec.manifest.validate import validate_paths

    files, diagnostics = validate_paths(paths)
    errors = sum(d.severity == "error" for d in diagnostics)
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


if __name__ == "__main__":
    main()
