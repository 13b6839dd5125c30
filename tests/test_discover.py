"""Which files ``runspec validate DIR`` checks, and where it never looks."""

from __future__ import annotations

import os
from pathlib import Path

from runspec.manifest.validate import SKIP_DIRS, discover

VALID = 'schema = "runspec/v1"\nname = "n"\n[recipe]\ncommand = ["echo", "hi"]\n'


def test_a_directory_walk_never_enters_run_or_state_directories(tmp_path, monkeypatch):
    """A project's runs/ holds a directory per run (thousands after a sweep): listing them
    all made validating a project take longer than validating its manifests."""
    (tmp_path / "run.toml").write_text(VALID)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "run.toml").write_text(VALID)
    for skipped in ("runs/r1", ".runspec/state", ".venv/lib", "node_modules/pkg", "sub/runs/r"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "run.toml").write_text("not = [valid")
    listed: list[Path] = []
    scandir = os.scandir

    def recording(path: str | os.PathLike[str] = ".") -> object:
        listed.append(Path(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", recording)
    assert discover([tmp_path]) == [tmp_path / "run.toml", tmp_path / "sub" / "run.toml"]
    assert listed
    assert not [p for p in listed if set(p.relative_to(tmp_path).parts) & SKIP_DIRS]
