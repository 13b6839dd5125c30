"""Hostile documents end as one clear diagnostic, within seconds and bounded memory.

Each file in fixtures/hostile/ (an alias bomb, nesting hundreds deep, a ten-million-point
grid, absurd numbers, an over-long path segment…) goes through ``runspec validate`` and
``runspec plan`` in a child process limited to 2 GiB of address space and 20 s: a
regression then fails the test instead of swapping the machine to death. The bounds are
generous on purpose; nothing here measures speed. A property test throws generated
documents of the same kinds at validate and plan in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runspec.manifest.errors import ManifestError
from runspec.manifest.validate import validate_file
from runspec.plan.pipeline import make_plan
from runspec.state.store import StateError

HOSTILE = FIXTURES / "hostile"
TESTS = Path(__file__).resolve().parent
MEMORY = 2 * 1024**3
SECONDS = 20

# What each file must be told, besides exit 1, a file:line:col and no traceback.
EXPECTED = {
    "alias-bomb.yaml": "alias-bomb.yaml:9:8: error: f[0]: alias *e expands the document past "
                       "100,000 values",
    "deep.yaml": "deep.yaml:4:79: error: (file): nested deeper than 64 levels",
    "deep-inline.toml": "nested deeper than 64 levels",
    "grid-10e7.toml": "grid-10e7.toml:10:2: error: sweep: 10 × 10 × … × 10 = 10,000,000 points × "
                      "3 cycles = 30,000,000 runs, more than --max-runs 1,000,000",
    "cycles-1e30.toml": "cycles-1e30.toml:8:10: error: campaign.cycles: must be ≤",
    "procs-1e308.toml": "procs-1e308.toml:8:18: error: resources.procs_per_node: expected an "
                        'integer or "gpu", got number 1e+308',
    "long-segment.toml": "long-segment.toml:11:8: error: outputs.artifacts.checkpoint.path: a path "
                         "segment of 300 bytes with tag = ",
    "huge-range.yaml": "huge-range.yaml:4:1: error: sweep: 2,000,000,000 points (one run each), "
                       "more than --max-runs 1,000,000",
    "number-5000-digits.toml": "number-5000-digits.toml:8:10: error: (file): number too long "
                               "(5,000 digits)",
    # 5,000 brackets on one line: ruamel's scanner is quadratic there (5 s before failing)
    "deep-flow-line.yaml": "deep-flow-line.yaml:4:72: error: (file): nested deeper than 64 levels",
    # a 20,000-part dotted key: tomllib alone took 5 s and 1.5 GB
    "dotted-key-20000.toml": "dotted-key-20000.toml:3:129: error: k.k.k.….k.k (65 levels): nested "
                             "deeper than 64 levels",
    # invalid TOML that sent the duplicate-key finder round in circles
    "unclosed-list-in-table.toml": "unclosed-list-in-table.toml:3:23: error: (file): invalid TOML",
}
CASES = sorted(p.name for p in HOSTILE.iterdir() if p.suffix in (".toml", ".yaml"))

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from conftest import invoke
result = invoke(*sys.argv[2:])
sys.stdout.write(result.stdout)
sys.stderr.write(result.stderr)
sys.exit(result.exit_code)
"""


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def runspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``runspec ARGS`` through conftest's ``invoke`` in a child with 2 GiB and 20 s."""
    try:
        return subprocess.run([sys.executable, "-c", CHILD, str(TESTS), *args], cwd=cwd,
                              capture_output=True, text=True, timeout=SECONDS,
                              preexec_fn=_bounded, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"runspec {' '.join(args)} ran past {SECONDS} s")


def assert_one_clear_error(result: subprocess.CompletedProcess, name: str, expected: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "MemoryError" not in result.stderr
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(rf"^{re.escape(name)}:\d+:\d+: error: ", result.stderr, re.M), result.stderr
    assert expected in result.stderr, result.stderr[-3000:]


def test_every_hostile_file_has_an_expectation():
    assert set(CASES) == set(EXPECTED)


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("name", CASES)
def test_hostile_file_is_one_clear_error(name: str, command: str):
    result = runspec(command, name, cwd=HOSTILE)
    assert_one_clear_error(result, name, EXPECTED[name])


def _chain(tmp_path: Path, length: int) -> None:
    """A manifest extending a base extending a base … ``length`` files, and an env.toml
    whose profile p0 extends p1 … p``length - 1``, both written here, not committed."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text("")
    for i in range(length):
        name = "run.toml" if i == 0 else f"base{i}.toml"
        tail = f'extends = "base{i + 1}.toml"\n' if i < length - 1 else '[recipe]\nscript = "train.py"\n'
        (tmp_path / name).write_text(f'schema = "runspec/v1"\nname = "chain"\n{tail}')
    profiles = [f'[p{i}]\nextends = "p{i + 1}"\n' for i in range(length - 1)]
    (tmp_path / "env.toml").write_text("".join(profiles) + f'[p{length - 1}]\nexecutor = "local"\n')
    (tmp_path / "profiled.run.toml").write_text(
        'schema = "runspec/v1"\nname = "profiled"\n[recipe]\nscript = "train.py"\n'
        '[env]\nprofile = "p0"\n')


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_five_thousand_deep_extends_chain(tmp_path, command):
    _chain(tmp_path, 5000)
    result = runspec(command, "run.toml", cwd=tmp_path)
    assert_one_clear_error(result, "run.toml", "run.toml:3:11: error: extends: the extends chain "
                           "of run.toml is longer than 64 manifests: run.toml → base1.toml → ")
    assert result.stderr.count("error:") == 1


@pytest.mark.parametrize(("command", "name"), [("validate", "env.toml"),
                                                ("validate", "profiled.run.toml"),
                                                ("plan", "profiled.run.toml")])
def test_five_thousand_deep_profile_chain(tmp_path, command, name):
    _chain(tmp_path, 5000)
    result = runspec(command, name, cwd=tmp_path)
    assert_one_clear_error(result, "env.toml", 'env.toml:2:11: error: p0.extends: the extends '
                           'chain of profile "p0" is longer than 64 profiles: p0 → p1 → p2 → …')
    assert result.stderr.count("error:") == 1  # not once per profile of the chain


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_symlink_loop_as_the_manifest(tmp_path, command):
    (tmp_path / "run.toml").symlink_to("other.toml")
    (tmp_path / "other.toml").symlink_to("run.toml")
    result = runspec(command, *(["--yes"] if command == "apply" else []), "run.toml", cwd=tmp_path)
    assert_one_clear_error(result, "run.toml", "run.toml:1:1: error: (file): symlink loop")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_fifo_as_the_manifest_is_refused_unread(tmp_path, command):
    os.mkfifo(tmp_path / "run.toml")  # reading it would block until a writer came
    result = runspec(command, "run.toml", cwd=tmp_path)
    assert_one_clear_error(result, "run.toml", "a named pipe (FIFO), not a regular file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_endless_device_as_the_manifest_is_refused_unread(tmp_path, command):
    (tmp_path / "run.toml").symlink_to("/dev/zero")  # reading it whole never ends
    result = runspec(command, "run.toml", cwd=tmp_path)
    assert_one_clear_error(result, "run.toml", "a character device, not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_fifo_as_the_env_file_is_refused_unread(tmp_path):
    (tmp_path / "train.py").write_text("")
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "x"\n[recipe]\n'
                                       'script = "train.py"\n[env]\nprofile = "p"\nfile = "e.toml"\n')
    os.mkfifo(tmp_path / "e.toml")
    result = runspec("validate", "run.toml", cwd=tmp_path)
    assert "Traceback" not in result.stderr and result.returncode == 1
    assert 'run.toml:7:8: error: env.file: env file is not a regular file (a pipe or a device): ' \
        in result.stderr


def test_pep723_scan_of_a_huge_script_is_linear(tmp_path):
    """PEP 723's regex backtracks quadratically over unclosed ``# /// x`` lines: 250,000 of
    them took hours; validate must finish (bounded time, not a timing test)."""
    (tmp_path / "train.py").write_text("# /// a\n" * 250_000)
    (tmp_path / "run.toml").write_text('schema = "runspec/v1"\nname = "x"\n[recipe]\n'
                                       'script = "train.py"\n')
    result = runspec("validate", "run.toml", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr


# -- generated hostile documents, in-process ------------------------------------------------

HOSTILE_TEXT = ["a" * 300, "\u202e", "../..", "${sweep.x}", "$(x)", "\x00", "\x1b[2J", "\r\n",
                "\t", "\u2028", " ", "", ".", "..", "ü" * 130, "CON", "*", "+k", "a.b"]
text = st.characters(exclude_categories=["Cs"])  # a lone surrogate is only ever a parse error
names = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(text, max_size=40),
                  st.text(text, min_size=200, max_size=1200))
numbers = st.one_of(st.integers(-(10**40), 10**40), st.floats(), st.sampled_from(
    [1e308, -1e308, 2**63, 2**64, 10**30, 0, -1, 0.5, 2.0]))
scalars = st.one_of(numbers, names, st.booleans())
INT_KEYS = ["nodes", "procs_per_node", "gpus_per_node", "cpus_per_task"]
CAMPAIGN_KEYS = ["cycles", "warmup_runs", "max_parallel", "retries", "seed", "config_gap"]


@st.composite
def manifests(draw) -> dict:
    """A runnable manifest with hostile names, numbers and sizes in the places that count."""
    name = draw(st.one_of(st.just("ok"), st.just("ok"), st.just("ok"), names))  # mostly valid
    data: dict = {"schema": "runspec/v1", "name": name,
                  "recipe": {"script": "train.py"}}
    if draw(st.booleans()):
        data["resources"] = {k: draw(numbers) for k in draw(st.lists(st.sampled_from(INT_KEYS),
                                                                     max_size=3))}
    if draw(st.booleans()):
        data["campaign"] = {k: draw(numbers) for k in draw(st.lists(
            st.sampled_from(CAMPAIGN_KEYS), max_size=3))}
    if draw(st.booleans()):
        parameters = draw(st.dictionaries(names, st.one_of(
            st.lists(scalars, min_size=1, max_size=12),
            st.builds(lambda n: list(range(n)), st.sampled_from([10, 100, 1000])),
            st.builds(lambda a, b: {"range": [a, b]}, numbers, numbers)), min_size=1, max_size=8))
        data["sweep"] = {"mode": draw(st.sampled_from(["grid", "zip", "random"])),
                         "parameters": parameters}
        if data["sweep"]["mode"] == "random":
            data["sweep"]["samples"] = draw(numbers)
    if draw(st.booleans()):
        data["env"] = {"vars": draw(st.dictionaries(names, scalars, max_size=3))}
    if draw(st.booleans()):
        data["outputs"] = {"root": draw(names)}
    return data


def _toml(value, depth: int = 0) -> str:
    """TOML text of ``value``, inline tables throughout (inf, nan and huge ints included)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(value), repr(value))
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v, depth + 1) for v in value) + "]"
    return "{" + ", ".join(f"{_quoted(k)} = {_toml(v, depth + 1)}" for k, v in value.items()) + "}"


def _quoted(text: str) -> str:
    """A TOML basic string (JSON's escapes, but no surrogate pairs: TOML has none)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _nested(kind: str, depth: int, yaml: bool) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return ("{a: " if yaml else "{a = ") * depth + "1" + "}" * depth


def _aliases(width: int, depth: int) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]" for n in range(1, depth)]
    return "\n".join(lines) + "\n"


def _check(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "train.py").write_text("")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for d in validate_file(path):
        assert d.line >= 1 and d.col >= 1 and d.message
    with contextlib.suppress(ManifestError, StateError):  # the only ways out
        make_plan(path, max_runs=10_000)  # planning a million runs is slow, not hostile


HOSTILE_SETTINGS = settings(max_examples=60, deadline=timedelta(seconds=15),
                            suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow, HealthCheck.data_too_large])


@HOSTILE_SETTINGS
@given(data=manifests(), depth=st.sampled_from([0, 5, 63, 64, 65, 200, 400, 1200]),
       kind=st.sampled_from(["list", "table"]), key=names)
def test_generated_toml_documents_end_in_diagnostics(tmp_path_factory, data, depth, kind, key):
    text = "".join(f"{_quoted(k)} = {_toml(v)}\n" for k, v in data.items())
    if depth:
        text += f"{_quoted(key)} = {_nested(kind, depth, yaml=False)}\n"
    _check(tmp_path_factory.mktemp("toml"), "run.toml", text)


@HOSTILE_SETTINGS
@given(data=manifests(), depth=st.sampled_from([0, 5, 64, 65, 200, 400, 1200]),
       kind=st.sampled_from(["list", "table"]),
       bomb=st.sampled_from([None, None, None, (9, 9), (10, 4), (2, 40), (100, 3)]))
def test_generated_yaml_documents_end_in_diagnostics(tmp_path_factory, data, depth, kind, bomb):
    text = json.dumps(data) if not depth else json.dumps(data)[:-1] + \
        f', "deep": {_nested(kind, depth, yaml=True)}}}'
    if bomb:  # flow JSON first, then block aliases: one YAML mapping needs one style
        text = "".join(f"{json.dumps(k)}: {json.dumps(v)}\n" for k, v in data.items())
        text += _aliases(*bomb)
    _check(tmp_path_factory.mktemp("yaml"), "run.yaml", text)


@settings(max_examples=60, deadline=timedelta(seconds=15),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(0, 3000))
def test_nesting_of_any_depth_never_overflows(tmp_path_factory, depth):
    directory = tmp_path_factory.mktemp("deep")
    _check(directory, "run.toml", "x = " + "[" * depth + "1" + "]" * depth + "\n")
    _check(directory, "run.yaml", "x: " + "- " * depth + "1\n")


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("where", ["profile", "inline"])
def test_a_list_or_table_as_the_executor_is_an_error_not_a_crash(tmp_path, command, where):
    """Executor names are looked up in the backend registry (a dict): a mangled value that
    cannot be a key must still end as a diagnostic."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "env.toml").write_text('[p]\nexecutor = ["slurm"]\n')
    env = '[env]\nprofile = "p"\n' if where == "profile" else '[env]\nexecutor = { a = 1 }\n'
    (tmp_path / "run.toml").write_text(
        f'schema = "runspec/v1"\nname = "x"\n[recipe]\ncommand = ["true"]\n{env}')
    result = runspec(command, "run.toml", cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1, result.stderr
    assert ".executor: " in result.stderr


def test_a_million_cycles_of_a_recipe_with_a_block_validates_in_bounded_time(tmp_path):
    """validate builds the plan for a script with a [tool.runspec] block, but one cycle of
    it: repeating a point adds nothing to check (the full plan would take minutes)."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text(
        '# /// script\n# [tool.runspec]\n# schema = "1"\n# name = "t"\n'
        '# [tool.runspec.run]\n# launch = "torchrun"\n# [tool.runspec.resources]\n'
        '# gpus_per_node = "gpu"\n# ///\nprint("x")\n')
    (tmp_path / "env.toml").write_text('[c]\nexecutor = "slurm"\npartition = "p"\n')
    (tmp_path / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "x"\n[recipe]\nscript = "train.py"\n'
        '[env]\nprofile = "c"\n[campaign]\ncycles = 1000000\n')
    result = runspec("validate", "run.toml", cwd=tmp_path)  # bounded by the helper's timeout
    assert result.returncode == 1, result.stderr
    assert 'train.py:8:19: error: tool.runspec.resources.gpus_per_node: gpus_per_node = "gpu"' \
        in result.stderr  # found by building the plan, which validate did
