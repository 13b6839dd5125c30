"""The one-line reason of a failed run (runspec/apply/failure.py), on real run files."""

from __future__ import annotations

import json

from runspec.apply.failure import LINE_CHARS, why_failed


def test_exit_code_and_the_last_line_of_stderr(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"exit_code": 1}))
    (tmp_path / "stderr.log").write_text("Traceback (most recent call last):\n  ...\n"
                                         "ValueError: lr must be positive\n\n")
    assert why_failed(tmp_path) == "exit code 1; stderr: ValueError: lr must be positive"


def test_a_signal_a_recorded_error_and_a_long_line(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"exit_code": 137}))
    (tmp_path / "stderr.log").write_text("x" * 1000 + "\x1b[31m\n")
    said = why_failed(tmp_path, "output model is missing")
    assert said.startswith("output model is missing; exit code 137 (signal 9); stderr: xxx")
    assert said.endswith("…") and len(said.split("stderr: ")[1]) == LINE_CHARS


def test_nothing_written(tmp_path):
    assert why_failed(tmp_path) == "it wrote no result"
