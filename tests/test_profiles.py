"""env.toml profiles: Nemotron's format, extends chains, strict per-executor keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES, invoke

from runspec.manifest.errors import ManifestError
from runspec.manifest.profiles import find_env_file, load_env_file, resolve_profile

VALID = FIXTURES / "valid"

NEMOTRON_ENV = '''\
[wandb]
project = "nemotron"
entity = "my-team"

[artifacts]
backend = "file"
root = "/lustre/users/me/artifacts"

[my-cluster]
executor = "slurm"
account = "my-account"
partition = "batch"
run_partition = "interactive"
batch_partition = "batch"
time = "04:00:00"
tunnel = "ssh"
host = "login.cluster.com"
user = "me"
remote_job_dir = "/lustre/users/me/run"

[pretrain]
extends = "my-cluster"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
mem = "0"
exclusive = true
mounts = ["/lustre:/lustre"]

[pretrain-large]
extends = "pretrain"
nodes = 8
time = "08:00:00"
'''


def _env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.toml"
    path.write_text(text)
    return path


def test_nemotron_env_file_is_valid_and_chains_merge(tmp_path):
    path = _env(tmp_path, NEMOTRON_ENV)
    assert invoke("validate", "env.toml", cwd=tmp_path).exit_code == 0
    profile = resolve_profile(load_env_file(path), "pretrain-large")
    assert profile.chain == ["pretrain-large", "pretrain", "my-cluster"]
    assert profile.data["nodes"] == 8 and profile.data["partition"] == "batch"
    assert profile.data["time"] == "08:00:00" and "extends" not in profile.data
    # positions point at the line that defined each key, in the file that defined it
    assert profile.positions[("nodes",)].key.line == 32
    assert profile.positions[("partition",)].key.line == 12


def test_extends_cycle_and_unknown_parent(tmp_path):
    _env(tmp_path, '[a]\nextends = "b"\n[b]\nextends = "a"\n[c]\nextends = "nope"\n')
    result = invoke("validate", "env.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert "env.toml:4:11: error: b.extends: profile extends cycle: a → b → a" in result.stderr
    assert 'profile "c" extends unknown profile "nope"' in result.stderr


def test_unsupported_executor_is_named(tmp_path):
    _env(tmp_path, '[pbs]\nexecutor = "pbs"\n')
    result = invoke("validate", "env.toml", cwd=tmp_path)
    assert ('env.toml:2:12: error: pbs.executor: executor "pbs" is not supported'
            in result.stderr)
    assert ('runspec runs "local", "slurm", "ray", "nemo-run", "docker", "dgxcloud", "lepton" '
            'or "skypilot"') in result.stderr


def test_child_error_points_into_parent_when_inherited(tmp_path):
    _env(tmp_path, '[base]\nexecutor = "local"\npartition = "x"\n[child]\nextends = "base"\n')
    result = invoke("validate", "env.toml", cwd=tmp_path)
    assert "env.toml:3:1: error: base.partition: unknown key" in result.stderr
    assert "env.toml:3:1: error: child.partition: unknown key" in result.stderr


def test_reserved_tables_are_checked(tmp_path):
    _env(tmp_path, '[wandb]\nprojekt = "x"\n[local]\nexecutor = "local"\n')
    result = invoke("validate", "env.toml", cwd=tmp_path)
    assert 'wandb.projekt: unknown key — did you mean "project"?' in result.stderr


def test_builtin_local_profile_needs_no_env_file(tmp_path):
    (tmp_path / ".git").mkdir()  # stops the env.toml search here
    (tmp_path / "t.py").write_text("print(1)\n")
    (tmp_path / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "x"\n[recipe]\nscript = "t.py"\n[env]\nprofile = "local"\n')
    assert invoke("validate", "run.toml", cwd=tmp_path).exit_code == 0
    assert find_env_file(tmp_path) is None


def test_manifest_inline_keys_checked_against_profile_executor(tmp_path):
    (tmp_path / "t.py").write_text("print(1)\n")
    _env(tmp_path, '[box]\nexecutor = "local"\n')
    (tmp_path / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "x"\n[recipe]\nscript = "t.py"\n'
        '[env]\nprofile = "box"\npartition = "gpu"\n')
    result = invoke("validate", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert ('run.toml:7:1: error: env.partition: unknown key — "partition" is a setting of '
            'executor "slurm" or "nemo-run", but profile "box" uses executor "local"'
            ) in result.stderr


def test_inline_executor_must_agree_with_profile(tmp_path):
    (tmp_path / "t.py").write_text("print(1)\n")
    _env(tmp_path, '[box]\nexecutor = "slurm"\n')
    (tmp_path / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "x"\n[recipe]\nscript = "t.py"\n'
        '[env]\nprofile = "box"\nexecutor = "ray"\n')
    result = invoke("validate", "run.toml", cwd=tmp_path)
    assert 'executor "ray" contradicts profile "box" (executor "slurm")' in result.stderr


def test_resolve_unknown_profile_lists_available():
    env = load_env_file(VALID / "env.toml")
    with pytest.raises(ManifestError) as caught:
        resolve_profile(env, "clustr")
    assert caught.value.diagnostics[0].hint == 'did you mean "cluster"?'
