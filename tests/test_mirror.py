"""Mirroring a remote run directory (runspec/backends/mirror.py): the agent runs here with
this interpreter against a directory standing in for the cluster's, so what is fetched,
and from where, can be checked byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runspec.backends import mirror


def fetch(pairs: list[tuple[str, Path]]) -> int:
    argv = [sys.executable, *mirror.agent_argv()[1:]]
    done = subprocess.run(argv, input=mirror.request(pairs), capture_output=True, check=True)
    return mirror.store(pairs, mirror.parse(done.stdout))


def test_only_what_is_new_comes_back(tmp_path):
    remote, local = tmp_path / "remote", tmp_path / "local"
    remote.mkdir()
    (remote / "stdout.log").write_text("step 1\n")
    (remote / "started.json").write_text('{"attempt": 1}')
    pairs = [(str(remote), local)]
    assert fetch(pairs) == len("step 1\n") + len('{"attempt": 1}')
    assert fetch(pairs) == 0  # nothing changed: nothing sent
    with (remote / "stdout.log").open("a") as out:
        out.write("step 2\n")
    (remote / "result.json").write_text('{"exit_code": 0}')
    assert fetch(pairs) == len("step 2\n") + len('{"exit_code": 0}')
    assert (local / "stdout.log").read_text() == "step 1\nstep 2\n"
    assert json.loads((local / "result.json").read_text()) == {"exit_code": 0}
    assert not (local / "launch.sh").exists()  # only the files the job writes


def test_a_log_bigger_than_a_chunk_comes_over_several_refreshes(tmp_path, monkeypatch):
    monkeypatch.setattr(mirror, "MAX_CHUNK", 1000)
    remote, local = tmp_path / "remote", tmp_path / "local"
    remote.mkdir()
    text = "".join(f"line {i}\n" for i in range(600))
    (remote / "stderr.log").write_text(text)
    pairs = [(str(remote), local)]
    sizes = [fetch(pairs) for _ in range(6)]
    assert sizes[:4] == [1000, 1000, 1000, 1000] and sum(sizes) == len(text)
    assert (local / "stderr.log").read_text() == text


def test_a_new_remote_directory_appends_to_the_local_logs(tmp_path):
    first, second, local = tmp_path / "a", tmp_path / "b", tmp_path / "local"
    for directory, line in ((first, "attempt 1\n"), (second, "attempt 2\n")):
        directory.mkdir()
        (directory / "stdout.log").write_text(line)
    fetch([(str(first), local)])
    fetch([(str(second), local)])
    assert (local / "stdout.log").read_text() == "attempt 1\nattempt 2\n"


def test_a_truncated_stream_writes_only_whole_chunks(tmp_path):
    local = tmp_path / "local"
    header = {"i": 0, "f": "stdout.log", "size": 10, "mtime": 1, "off": 0, "n": 10}
    stream = json.dumps(header).encode() + b"\n" + b"01234"  # the connection dropped
    assert mirror.store([("/r", local)], mirror.parse(stream)) == 0
    assert not (local / "stdout.log").exists()
