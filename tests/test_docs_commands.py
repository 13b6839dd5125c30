"""The doc-check: every command the docs show is exercised.

Two kinds of fenced blocks show commands in README.md and docs/*.md:

* ```` ```bash ```` blocks are *run*: per file, all its bash blocks in order, as one
  ``bash -euo pipefail`` script, from the root of a scratch copy of this repository with
  the project's virtualenv on PATH (so a reader can paste them the same way);
* ```` ```console ```` (and ```` ```text ````) blocks show commands after a ``$ `` prompt
  that cannot run here (a real cluster, CI, a GPU machine); their ``runspec`` commands are
  *parsed* by the real CLI, so a renamed command or option fails this test.

Docs are listed below with the reason they run or not; a new doc must be added.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import scratch_copy

from runspec.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_-]*)\s*\n(?P<body>.*?)^```\s*$", re.M | re.S)

# doc → (run its bash blocks?, why). make_test: README's `make test` is what runs this.
DOCS = {
    "README.md": False,        # `make demo` / `make test`: run by CI and test_make_demo
    "docs/guide.md": True,     # the tutorial: test_guide_word_for_word checks what it promises
    "docs/concepts.md": True,
    "docs/recipes.md": True,
    "docs/measurement.md": True,
    "docs/artifacts.md": True,
    "docs/backends.md": True,
    "docs/gitops.md": True,
    "docs/editors.md": True,
    "docs/benchmarks.md": True,
    "docs/cli.md": False,      # generated reference: usage lines, no commands to run
    "docs/manifest.md": False,  # generated reference
    # examples' READMEs: GPU machines, clusters and other repositories: parsed, not run
    "examples/gitops/README.md": False,
    "examples/megatron_bridge/README.md": False,
}


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in FENCE.finditer(path.read_text(encoding="utf-8"))]


def shown_commands(path: Path) -> list[str]:
    """``runspec …`` commands of bash blocks and of ``$ ``-prompted console lines."""
    commands = []
    for lang, body in blocks(path):
        for line in body.splitlines():
            if lang in ("console", "text"):
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            elif lang not in ("bash", "sh"):
                continue
            line = line.strip()
            if line.startswith("runspec ") or line.startswith("(runspec "):
                commands.append(line)
    return commands


def test_every_doc_is_listed():
    present = {"README.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")),
               *(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*/README.md"))}
    assert present == set(DOCS), "list new docs in DOCS with whether their bash blocks run"


def _parse(argv: list[str]) -> None:
    """Parse argv with the real CLI, down to the leaf command, without running anything."""
    command: click.Command = cli
    name, parent = "runspec", None
    while True:
        context = command.make_context(name, list(argv), parent=parent)
        if not isinstance(command, click.Group):
            return
        rest = [*context._protected_args, *context.args]
        if not rest:
            return
        name, command, argv = command.resolve_command(context, rest)
        parent = context


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_shown_runspec_commands_parse(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for line in shown_commands(ROOT / doc):
        argv = shlex.split(line.strip("()").split(" | ")[0].split(" && ")[0], comments=True)[1:]
        try:
            _parse(argv)
        except click.exceptions.Exit:  # --version, --help: eager options that parse and exit
            pass
        except click.BadParameter as error:
            if "does not exist" not in str(error.message):  # files the reader creates
                pytest.fail(f"{doc}: `{line}`: {error.format_message()}")
        except click.UsageError as error:
            pytest.fail(f"{doc}: `{line}`: {error.format_message()}")


def run_bash_blocks(doc: str, workdir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    script = "\n".join(body for lang, body in blocks(ROOT / doc) if lang == "bash")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "RUNSPEC_ARTIFACTS": str(tmp_path / "artifacts"), "HOME": str(tmp_path / "home"),
           "PYTHONUNBUFFERED": "1"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("doc", sorted(d for d, run in DOCS.items()
                                       if run and d != "docs/guide.md"))
def test_bash_blocks_run(doc, tmp_path):
    if not any(lang == "bash" for lang, _ in blocks(ROOT / doc)):
        return
    workdir = scratch_copy(tmp_path / "repo")
    done = run_bash_blocks(doc, workdir, tmp_path)
    assert done.returncode == 0, f"{doc}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


@pytest.mark.slow
def test_guide_word_for_word(tmp_path):
    """docs/guide.md's promise: a trained tiny model, a plan diff after changing lr, a
    results table with CIs over 3 cycles, a plot, energy labelled with its method."""
    workdir = scratch_copy(tmp_path / "repo")
    done = run_bash_blocks("docs/guide.md", workdir, tmp_path)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    out = done.stdout
    tutorial = workdir / "tutorial"
    assert "run.toml is valid" in out
    assert "Plan: 6 to create, 0 to replace, 0 to rerun, 0 to destroy, 0 unchanged." in out
    checkpoint = tutorial / "runs/tutorial/main/optim.lr=0.01/c1/checkpoint"
    assert (checkpoint / "model.pt").stat().st_size > 10_000
    assert "-/+ tutorial/main/optim.lr=0.03/c1" in out
    assert "# sweep changed: optim.lr 0.01 → 0.03 (was tutorial/main/optim.lr=0.01/c1)" in out
    assert "Plan: 0 to create, 3 to replace, 0 to rerun, 0 to destroy, 3 unchanged." in out
    assert "exit code 2: changes pending" in out
    assert "No changes." in out  # the second apply of the same manifest
    table = [line for line in out.splitlines() if line.startswith("main ")]
    loss_rows = [line.split() for line in table if " loss " in f" {line} "]
    assert len(loss_rows) >= 4 and all(row[3] == "3" for row in loss_rows)  # n = 3 cycles
    assert all(row[-2].startswith("[") for row in loss_rows)               # a 95% CI
    assert float(loss_rows[0][4]) < 3.5  # it learned: a uniform guess over 64 chars is 4.16
    assert "energy_kwh measured by codecarbon with cpu=" in out
    assert (tutorial / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tutorial-model:v" in out and "produced by tutorial/main/" in out
    lines = out.splitlines()
    lineage = [line for line in lines if line.startswith("tutorial-model:v")]
    assert len(lineage) == 1, lineage
    shown = lines[lines.index(lineage[0]):][:3]
    # what step 8 shows, word for word: the version, its run, the plain file and its digest
    guide = (ROOT / "docs/guide.md").read_text().splitlines()
    promised = guide[guide.index(lineage[0]):][:2] if lineage[0] in guide else guide[:0]
    assert shown[:2] == promised and len(promised) == 2, (shown, promised)
    assert re.fullmatch(r"└── data/hamlet\.txt  \[path\] sha256:[0-9a-f]{16}", shown[1])
    assert len(shown) < 3 or not shown[2].startswith(("├", "└", " ")), shown  # the only input
