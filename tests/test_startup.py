"""Importing the CLI must not load heavy libraries: they are imported only where used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "ray", "wandb", "codecarbon", "nemo_run", "matplotlib")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True, capture_output=True, text=True,
    ).stdout
    return set(out.split())


def test_importing_the_cli_loads_no_heavy_library():
    loaded = _modules_after("import runspec.cli")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_validate_does_not_build_pydantic_models(tmp_path):
    """validate reads the checked-in schemas; the models are for schema generation and plans.
    Only a script's [tool.runspec] block or a config's run: section, which apply where the
    plan is built, make validate build the plan (and load the models)."""
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "n"\n[recipe]\n'
                                       'command = ["echo", "hi"]\n[sweep.parameters]\n'
                                       'x = [1, 2]\n')
    code = (
        "import sys\n"
        "from runspec.manifest.validate import validate_paths\n"
        f"files, found = validate_paths([{str(tmp_path / 'run.toml')!r}])\n"
        "assert files and not found, found\n"
    )
    loaded = _modules_after(code)
    assert "runspec.manifest.models" not in loaded
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    with_block = _modules_after("from runspec.manifest.validate import validate_paths\n"
                                "validate_paths(['tests/fixtures/valid/minimal.toml'])\n")
    assert "runspec.plan.render" in with_block
    assert not {m for m in with_block if m.split(".")[0] in HEAVY}
    # jsonschema's import alone took longer than the rest of validate; the plan of a local
    # manifest builds the models it reads, not every executor's (nor imports their backends).
    for modules in (loaded, with_block):
        assert not {m for m in modules if m.split(".")[0] in ("jsonschema", "referencing")}
    assert not {m for m in with_block if m.startswith("runspec.backends.")} - {
        "runspec.backends.base", "runspec.backends.local"}


def test_the_in_job_wrapper_imports_only_what_it_needs_to_start_a_run():
    """``python -m runspec.measure`` starts with every run: no pydantic, YAML, click, and
    not even socket or tempfile (hostname and temporary files come from os)."""
    loaded = _modules_after("import runspec.measure.__main__")
    assert not loaded & {"pydantic", "ruamel", "click", "rich", "jinja2", "socket", "tempfile"}
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
