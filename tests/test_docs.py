"""docs/ stays true: the generated references match the code, and the README's commands exist."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from runspec import docs


@pytest.mark.parametrize("kind", sorted(docs.DOCS))
def test_generated_reference_is_current(kind):
    path = ROOT / "docs" / docs.DOCS[kind]
    assert path.read_text(encoding="utf-8") == docs.render(kind), (
        f"{path} is stale: run `make generate`")


def test_manifest_reference_covers_every_model():
    text = docs.render("manifest")
    for heading in ("### Recipe", "### Sweep", "### Campaign", "### Measure", "### SlurmProfile",
                    "### SlurmEnv", "### Stage"):
        assert heading in text


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_docs_link_to_files_that_exist():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
