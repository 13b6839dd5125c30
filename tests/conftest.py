"""Shared test helpers: run the real CLI in-process from a chosen directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from runspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def invoke(*args: str, cwd: Path | None = None) -> Result:
    """``runspec ARGS`` in-process; messages use paths relative to ``cwd``."""
    with chdir(cwd or Path.cwd()):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def cli():
    return invoke


class TextSnapshotExtension(SingleFileSnapshotExtension):
    """One plain .txt file per snapshot: exactly what a person sees, readable in a diff."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"


class JsonTextSnapshotExtension(SingleFileSnapshotExtension):
    """The exact JSON text a command printed, as a .json file."""

    _write_mode = WriteMode.TEXT
    file_extension = "json"


@pytest.fixture
def text_snapshot(snapshot):
    return snapshot.use_extension(TextSnapshotExtension)
