"""Bounded work: runs are counted before anything is expanded, and every limit of the
loader (size, nesting, aliases, extends chains, file kinds) is a diagnostic with a place."""

from __future__ import annotations

import itertools
import math

import pytest
from conftest import invoke
from hypothesis import given, settings
from hypothesis import strategies as st

from runspec.manifest import checks, load
from runspec.manifest.errors import ManifestError
from runspec.manifest.load import MAX_BYTES, load_document
from runspec.manifest.validate import validate_file
from runspec.plan.expand import ExpandError, _range, campaign_slots, sweep_points
from runspec.plan.pipeline import make_plan

# New names are looked up when a test runs (``checks.limit_runs``), not imported here, so
# that against the code before these limits every test fails on its own, not the module.

HEAD = 'schema = "runspec/v1"\nname = "bounds"\n\n[recipe]\nscript = "train.py"\n'


def manifest(tmp_path, body: str = "", name: str = "run.toml", head: str = HEAD):
    (tmp_path / "train.py").write_text("")
    path = tmp_path / name
    path.write_text(head + body)
    return path


def grid(params: int, values: int) -> str:
    return "\n[sweep.parameters]\n" + "".join(
        f"p{i} = [{', '.join(map(str, range(values)))}]\n" for i in range(params))


def errors(path) -> list[str]:
    """Error headlines, file names without their directory."""
    return [d.headline.replace(f"{path.parent}/", "") for d in validate_file(path)
            if d.severity == "error"]


# -- counting runs without expanding them ---------------------------------------------------

def test_the_default_limit():
    assert checks.MAX_RUNS == checks.run_limit() == 1_000_000
    with checks.limit_runs(5):
        assert checks.run_limit() == 5
    assert checks.run_limit() == checks.MAX_RUNS


@pytest.mark.parametrize(("sweep", "campaign", "runs"), [
    (None, {}, 1),
    ({"parameters": {"a": [1, 2, 3], "b": {"values": [1, 2]}, "c": {"range": [0, 10, 2]}}}, {}, 30),
    ({"mode": "zip", "parameters": {"a": [1, 2, 3], "b": [4, 5, 6]}}, {"cycles": 2}, 6),
    ({"mode": "random", "samples": 7, "parameters": {"a": {"distribution": "uniform"}}},
     {"warmup_runs": 1, "cycles": 3}, 28),
    ({"parameters": {"a": [1, 2], "b": [1, 2, 3]}, "include": [{"a": 9, "b": 9}, {"a": 8}]}, {}, 10),
    ({"parameters": {"a": [1, 2]}, "exclude": [{"a": 1}]}, {}, 2),  # an upper bound
    ({"parameters": {"a": [1, 2]}}, {"cycles": 10**30}, 2),  # the schema reports the cycles
])
def test_counts_match_what_plan_would_make(sweep, campaign, runs):
    data = {"recipe": {"script": "x"}, "campaign": campaign, **({"sweep": sweep} if sweep else {})}
    assert checks.count_runs(data)[()].runs == runs


def test_stages_fan_out_over_upstream_runs():
    data = {"stages": {
        "prep": {"recipe": {"script": "p.py"}, "sweep": {"parameters": {"a": list(range(10))}}},
        "train": {"needs": ["prep"], "recipe": {"script": "t.py",
                                                 "args": ["${stage.prep.outputs.data}"]},
                  "sweep": {"parameters": {"b": list(range(5))}}},
        "pick": {"needs": ["train"], "recipe": {"script": "e.py"},
                 "artifacts": {"m": {"uri": "${stage.train.outputs.model}",
                                     "select": {"metric": "loss"}}}}},
        "campaign": {"cycles": 2}}
    counts = checks.count_runs(data)
    assert counts[("stages", "prep")].runs == 20
    assert counts[("stages", "train")].runs == 5 * 20 * 2
    assert counts[("stages", "pick")].runs == 2  # select consumes the best run only


@settings(max_examples=300, deadline=None)
@given(start=st.integers(-50, 50), stop=st.integers(-50, 50), step=st.integers(-7, 7),
       scale=st.sampled_from([1, 0.5, 0.1, 0.25, 3]))
def test_range_size_is_the_length_of_the_range(start, stop, step, scale):
    bounds = [start * scale, stop * scale, step * scale]
    if step == 0 or (stop - start) * step <= 0:
        return
    assert checks.range_size(bounds) == len(_range(bounds))


def test_range_size_of_absurd_ranges_is_counted_not_listed():
    assert checks.range_size([0, 1e300]) == 10**18  # saturated: more than any limit
    assert checks.range_size([0, 1e9, 0.5]) == 2 * 10**9
    assert checks.range_size([0, math.inf]) == 1  # not finite: reported by the checks


def test_ten_million_point_grid_is_refused_at_the_sweep(tmp_path):
    path = manifest(tmp_path, "\n[campaign]\ncycles = 3\n" + grid(7, 10))
    assert errors(path) == [
        "run.toml:10:2: error: sweep: 10 × 10 × … × 10 = 10,000,000 points × 3 cycles = "
        "30,000,000 runs, more than --max-runs 1,000,000 — use fewer sweep values (or "
        '`mode = "random"` with samples) or fewer cycles, or raise the limit with --max-runs N']


def test_warmups_count_and_a_small_limit_applies(tmp_path):
    path = manifest(tmp_path, "\n[campaign]\ncycles = 3\nwarmup_runs = 1\n" + grid(2, 10))
    assert errors(path) == []
    with checks.limit_runs(399):
        (message,) = errors(path)
    assert "10 × 10 = 100 points × (3 cycles + 1 warmup) = 400 runs, more than --max-runs 399" \
        in message


def test_stages_that_add_up_past_the_limit(tmp_path):
    body = "".join(f'\n[stages.s{i}.recipe]\nscript = "train.py"\n[stages.s{i}.sweep.parameters]\n'
                   f"a = [{', '.join(map(str, range(100)))}]\n" for i in range(3))
    path = manifest(tmp_path, body, head='schema = "runspec/v1"\nname = "bounds"\n')
    with checks.limit_runs(250):
        (message,) = errors(path)
    assert "stages: the stages add up to 300 runs (s0: 100, s1: 100, s2: 100), more than " \
        "--max-runs 250" in message


def test_cli_max_runs_on_validate_plan_and_apply(tmp_path):
    manifest(tmp_path, grid(2, 10))
    assert invoke("validate", "--max-runs", "100", "run.toml", cwd=tmp_path).exit_code == 0
    for command in (["validate"], ["plan"], ["apply", "--yes"]):
        result = invoke(*command, "--max-runs", "99", "run.toml", cwd=tmp_path)
        assert result.exit_code == 1, command
        assert "100 points (one run each), more than --max-runs 99" in result.stderr
        assert "Traceback" not in result.stderr
    assert invoke("plan", "--max-runs", "0", "run.toml", cwd=tmp_path).exit_code == 2


def test_plan_refuses_before_expanding_from_python(tmp_path):
    """The Python entry of plan counts first: a 10^9-point grid would take all memory."""
    path = manifest(tmp_path, grid(9, 10))
    with pytest.raises(ManifestError) as caught:
        make_plan(path)
    assert "1,000,000,000 points (one run each), more than --max-runs 1,000,000" in str(caught.value)
    with pytest.raises(ManifestError) as caught:
        make_plan(manifest(tmp_path, grid(2, 10)), max_runs=50)
    assert "more than --max-runs 50" in str(caught.value)


def test_expansion_itself_refuses_past_the_limit():
    """Below validate, expand counts too: a caller that skipped validation gets an error,
    not a machine out of memory."""
    from runspec.manifest.models import Campaign, Sweep

    huge = Sweep.model_validate({"parameters": {f"p{i}": list(range(10)) for i in range(9)}})
    with pytest.raises(ExpandError, match="more than --max-runs 1,000,000"):
        sweep_points(huge, "x")
    with pytest.raises(ExpandError, match="3,000,000 runs, more than --max-runs 1,000,000"):
        campaign_slots([{}] * 1000, Campaign(cycles=3000), "x")
    with checks.limit_runs(10):
        assert len(sweep_points(Sweep.model_validate({"parameters": {"a": [1, 2]}}), "x")) == 2


@pytest.mark.parametrize("key", ["cycles", "warmup_runs", "max_parallel", "retries"])
def test_absurd_campaign_numbers_are_refused(tmp_path, key):
    path = manifest(tmp_path, f"\n[campaign]\n{key} = {10**30}\n")
    (message,) = errors(path)
    assert f"campaign.{key}: must be ≤" in message


def test_absurd_sample_count_is_refused(tmp_path):
    path = manifest(tmp_path, '\n[sweep]\nmode = "random"\nsamples = 1e30\n[sweep.parameters]\n'
                              'a = {distribution = "uniform", min = 0, max = 1}\n')
    assert any("sweep.samples: expected an integer" in m for m in errors(path))


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("procs_per_node", "1e+308", 'expected an integer or "gpu", got number 1e+308'),
    ("nodes", "2.0", "expected an integer, got number 2.0 — write 2"),
    ("gpus_per_node", "100000", "must be ≤ 1024"),
])
def test_integers_must_be_integers_within_bounds(tmp_path, key, value, expected):
    path = manifest(tmp_path, f"\n[resources]\n{key} = {value}\n")
    assert any(f"resources.{key}: {expected}" in m for m in errors(path)), errors(path)
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"resources.{key}: " in result.stderr


def test_a_pydantic_error_at_plan_is_a_diagnostic(tmp_path):
    from runspec.manifest.models import Resources
    from runspec.plan.resolve import _model

    document = load_document(manifest(tmp_path, "\n[resources]\nnodes = 3\n"))
    with pytest.raises(ManifestError) as caught:
        _model(Resources, {"nodes": "many"}, document, ("resources",))
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.path) == (8, "resources.nodes")
    assert "integer" in diagnostic.message


@pytest.mark.parametrize(("spec", "expected"), [
    ("{range = [0, inf]}", "has a bound that is not a finite number"),
    ("{range = [nan, 3]}", "has a bound that is not a finite number"),
])
def test_ranges_must_be_finite(tmp_path, spec, expected):
    path = manifest(tmp_path, f"\n[sweep.parameters]\na = {spec}\n")
    assert any(expected in m for m in errors(path))
    assert invoke("plan", "run.toml", cwd=tmp_path).exit_code == 1


def test_distribution_bounds_must_be_finite(tmp_path):
    path = manifest(tmp_path, '\n[sweep]\nmode = "random"\nsamples = 2\n[sweep.parameters]\n'
                              'a = {distribution = "uniform", min = -inf, max = inf}\n')
    assert any("min must be a finite number, got -inf" in m for m in errors(path))


# -- path segments --------------------------------------------------------------------------

def test_a_300_character_file_name_is_a_diagnostic(tmp_path):
    path = manifest(tmp_path, f'config = "{"c" * 300}.yaml"\n')
    message = errors(path)[-1]
    assert message.startswith("run.toml:6:10: error: recipe.config: a path segment of 305 bytes, "
                              "more than 255")


def test_a_sweep_value_that_makes_a_long_segment(tmp_path):
    path = manifest(tmp_path, '\n[sweep.parameters]\ntag = ["ok", "' + "t" * 300 + '"]\n'
                              '[outputs.artifacts.model]\npath = "${run.dir}/${sweep.tag}"\n')
    (message,) = errors(path)
    assert "outputs.artifacts.model.path: a path segment of 300 bytes with tag = " in message


def test_a_name_too_long_for_its_state_file(tmp_path):
    path = manifest(tmp_path, head=f'schema = "runspec/v1"\nname = "{"n" * 260}"\n[recipe]\n'
                                   'script = "train.py"\n')
    assert any("the state file" in m and "265 bytes, more than 255" in m for m in errors(path))


# -- the loader's limits --------------------------------------------------------------------

def test_limits():
    from runspec.manifest.document import MAX_DEPTH

    assert (MAX_DEPTH, load.MAX_EXTENDS, load.MAX_VALUES, MAX_BYTES) == (64, 64, 100_000,
                                                                          2 * 1024 * 1024)


@pytest.mark.parametrize(("suffix", "text", "where"), [
    (".toml", "x = " + "[" * 65 + "]" * 65 + "\n", (1, 69)),
    (".toml", "x = " + "{a = " * 65 + "1" + "}" * 65 + "\n", (1, 321)),
    (".toml", "[" + ".".join(["t"] * 65) + "]\n", (1, 130)),
    (".yaml", "x: " + "[" * 65 + "]" * 65 + "\n", (1, 68)),
    (".yaml", "x: " + "[" * 400 + "]" * 400 + "\n", (1, 68)),
    (".yaml", "x:\n" + "".join("  " * i + "a:\n" for i in range(1, 300)) + "  " * 300 + "b: 1\n",
     (66, 131)),
])
def test_nesting_deeper_than_the_limit_is_refused_where_it_gets_too_deep(tmp_path, suffix, text,
                                                                          where):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.message == "nested deeper than 64 levels"
    assert (diagnostic.line, diagnostic.col) == where


def test_brackets_that_are_text_are_not_nesting(tmp_path):
    """The fast scan for deep YAML flow nesting skips what is text: quoted scalars,
    comments, block scalars and words (a false alarm would refuse a good manifest)."""
    many = "[" * 300
    path = tmp_path / "run.yaml"
    path.write_text(f'a: |\n  {many}\n  more\nb: "{many}"\nc: \'{many}\'\nd: 1 # {many}\n'
                    f"e: don't {many}\nf: >-\n    {many}\ng: [x, '{many}', \"{many}\"]\n")
    data = load_document(path).data
    assert data["a"] == f"{many}\nmore\n" and data["e"] == f"don't {many}"
    assert data["g"] == ["x", many, many]


@pytest.mark.parametrize(("suffix", "text"), [(".yaml", "x: " + "[" * 64 + "]" * 64 + "\n"),
                                              (".toml", "x = " + "[" * 64 + "]" * 64 + "\n")])
def test_nesting_at_the_limit_loads(tmp_path, suffix, text):
    path = tmp_path / f"ok{suffix}"
    path.write_text(text)
    node, depth = load_document(path).data["x"], 1
    while node:
        node, depth = node[0], depth + 1
    assert depth == 64


def test_alias_bomb_points_at_the_alias(tmp_path):
    lines = ["a: &a [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in itertools.pairwise("abcdefghi")]
    path = tmp_path / "run.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.headline.startswith(
        f"{path}:6:8: error: f[0]: alias *e expands the document past 100,000 values")


def test_aliases_within_the_budget_still_expand(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("base: &b {x: 1, y: [1, 2]}\none: *b\ntwo: {<<: *b, x: 2}\n")
    data = load_document(path).data
    assert data["one"] == {"x": 1, "y": [1, 2]} and data["two"]["x"] == 2


def test_an_anchored_long_string_repeated_is_bounded(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"s: &s {'z' * 1_000_000}\nt: [" + ", ".join(["*s"] * 20) + "]\n")
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    assert caught.value.diagnostics[0].headline.startswith(
        f"{path}:2:65: error: t[15]: alias *s expands the document past 16,777,216 characters")


def test_a_config_alias_bomb_at_validate_is_bounded(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
            f"{n}: &{n} [" + ",".join([f"*{p}"] * 10) + "]\n" for p, n in itertools.pairwise("abcdefg")))
    path = manifest(tmp_path, 'config = "config.yaml"\n')
    assert any("the document holds more than 100,000 values" in m for m in errors(path))


def test_a_set_alias_bomb_is_bounded(tmp_path):
    # --set values are YAML only for a YAML manifest (a TOML one reads them as TOML)
    manifest(tmp_path, name="run.yaml",
             head="schema: runspec/v1\nname: bounds\nrecipe:\n  script: train.py\n")
    value = "[&a [1,1,1,1,1,1,1,1,1,1]" + "".join(
        f", &{n} [" + ",".join([f"*{p}"] * 10) + "]" for p, n in itertools.pairwise("abcdefg")) + "]"
    result = invoke("plan", "--set", f"recipe.overrides.x={value}", "run.yaml", cwd=tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "--set:1:1: error: recipe.overrides.x" in result.stderr


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_a_number_of_thousands_of_digits(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    path.write_text(("n = " if suffix == ".toml" else "n: ") + "7" * 5000 + "\n")
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.col, diagnostic.message) == (
        1, 4 if suffix == ".yaml" else 5, "number too long (5,000 digits)")


def test_an_invalid_header_is_not_called_a_duplicate(tmp_path):
    """The duplicate finder used to rescan an unclosed header as a second definition."""
    path = manifest(tmp_path, head='schema = "runspec/v1"\nname = "x"\n[recipe\nscript = "a.py"\n')
    (message,) = errors(path)
    assert "duplicate" not in message
    assert "invalid TOML: expected ']' at the end of a table declaration" in message


def test_an_extends_chain_of_the_limit_loads_and_one_more_is_refused(tmp_path):
    def chain(length: int) -> None:
        for i in range(length):
            tail = (f'extends = "b{i + 1}.toml"\n' if i < length - 1
                    else '[recipe]\nscript = "train.py"\n')
            (tmp_path / f"b{i}.toml").write_text(f'schema = "runspec/v1"\nname = "c"\n{tail}')

    (tmp_path / "train.py").write_text("")
    chain(64)
    assert errors(tmp_path / "b0.toml") == []
    chain(65)
    (message,) = errors(tmp_path / "b0.toml")
    assert "extends: the extends chain of" in message and "longer than 64 manifests" in message


def test_read_bytes_reads_at_most_the_limit(tmp_path):
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * (MAX_BYTES * 3))
    assert load.read_bytes(path, limit=10, truncate=True) == b"#" * 10
    with pytest.raises(ManifestError, match="file is too large for a manifest"):
        load.read_bytes(path)


def test_a_directory_and_a_missing_base(tmp_path):
    (tmp_path / "base").mkdir()
    path = manifest(tmp_path, head='schema = "runspec/v1"\nname = "x"\nextends = "base"\n')
    (message,) = errors(path)
    assert 'run.toml:3:11: error: extends: base manifest "base": is a directory' in message


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_script_is_not_read(tmp_path):
    import os

    from runspec.manifest.pep723 import read_script_spec

    os.mkfifo(tmp_path / "train.py")
    with pytest.raises(ManifestError, match="a named pipe"):
        read_script_spec(tmp_path / "train.py")
    path = tmp_path / "run.toml"
    path.write_text(HEAD)
    assert any("train.py" in m for m in errors(path))  # never blocks on the pipe
