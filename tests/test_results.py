"""`runspec results`: history, comparisons, tables, plots and strict counting, on real local
applies of a tiny recipe that reports fixed values per cycle (so every figure is exact).

The expected statistics were computed once with scipy 1.17 (scipy is not a dependency):
``scipy.stats.ttest_ind(B, A, equal_var=False)`` for t, p and df, its
``confidence_interval(0.95)`` for the CI of B − A, and ``scipy.stats.t.cdf/sf/ppf`` and
``scipy.special.betainc`` for the distribution functions.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, invoke

from runspec.measure.stats import (
    CIMethod,
    betainc,
    bootstrap_interval,
    summarize,
    t_cdf,
    t_critical,
    t_ppf,
    t_sf,
    welch_of,
)

RESULT_SCHEMA = json.loads((ROOT / "schemas/result.schema.json").read_text())

# What the recipe reports, per variant and cycle (c1 … c5).
TABLE = {
    "a": {"latency_ms": [20.1, 19.8, 20.4, 20.0, 19.9],
          "tokens_per_s": [500.0, 510.0, 495.0, 505.0, 498.0],
          "score": [1.0, 1.001, 0.999, 1.0005, 0.9995]},
    "b": {"latency_ms": [18.2, 18.9, 18.5, 18.1, 18.6],
          "tokens_per_s": [501.0, 509.0, 497.0, 506.0, 499.0],
          "score": [1.01, 1.011, 1.009, 1.0105, 1.0095]},
}
# What runspec "measured" (set in result.json after the runs, so tables are reproducible).
WALL = {"a": [10.0, 10.2, 9.9, 10.1, 10.0], "b": [12.0, 12.3, 11.8, 12.1, 12.2]}
ENERGY = {"a": [0.0020, 0.0021, 0.0019, 0.0020, 0.0020],
          "b": [0.0021, 0.0020, 0.0020, 0.0019, 0.0021]}
RSS = [100.0, 101.0, 99.0, 100.0, 100.0]

# scipy.stats.ttest_ind(B, A, equal_var=False): statistic, pvalue, df; confidence_interval(0.95)
SCIPY = {
    "latency_ms": (-8.944988569742355, 3.572614582231838e-05, 7.254732448949172,
                   -1.9947212288900302, -1.1652787711099806),
    "tokens_per_s": (0.23074789781509125, 0.8234752515412166, 7.763047181013685,
                     -7.237563166210002, 8.837563166209911),
    "score": (20.000000000000885, 4.073918328673498e-08, 8.000000000000002,
              0.008846997932397975, 0.011153002067602042),
    "wall_s": (20.40000000000004, 3.8681279599200516e-07, 6.501950585175542,
               1.7998157109261368, 2.280184289073865),
    "energy_kwh": (0.40824829046386435, 0.694090482335157, 7.783783783783785,
                   -9.351923157237785e-05, 0.00013351923157237794),
}
VERDICTS = {"latency_ms": "better",             # the primary, goal "min": lower is better
            "tokens_per_s": "no significant change",   # p = 0.82
            "score": "no significant change",   # p = 4e-8, but +1.0% < measure.noise (2%)
            "wall_s": "slower",
            "peak_rss_mb": "no significant change",
            "energy_kwh": "no significant change",
            "emissions_kg": "no significant change"}

RECIPE = textwrap.dedent(f'''\
    import json, os, sys
    TABLE = {TABLE!r}
    variant = sys.argv[1] if len(sys.argv) > 1 else os.environ["VARIANT"]
    cycle = int(os.environ["RUNSPEC_RUN_KEY"].rsplit("/", 1)[1][1:])
    values = {{name: column[cycle - 1] for name, column in TABLE[variant].items()}}
    with open(os.environ["RUNSPEC_METRICS"], "a") as f:
        f.write(json.dumps({{**values, "train_loss": 2.5}}) + "\\n")
    ''')

MEASURE = textwrap.dedent('''\
    [measure]
    metrics = ["latency_ms", "tokens_per_s", "score"]
    primary = "latency_ms"
    goal = "min"
    ''')


def manifest(sweep: str = 'variant = ["a", "b"]', cycles: int = 5, extra: str = "",
             command: str = '["python", "recipe.py", "${sweep.variant}"]') -> str:
    return textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "cmp"
        [recipe]
        command = {command}
        ''') + (f"[sweep.parameters]\n{sweep}\n" if sweep else "") + \
        f"[campaign]\ncycles = {cycles}\n" + MEASURE + extra


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "recipe.py").write_text(RECIPE)
    return tmp_path


def apply(project: Path) -> None:
    done = invoke("apply", "--yes", "run.toml", cwd=project)
    assert done.exit_code == 0, done.output


def settle(project: Path, variant: str | None = None) -> None:
    """Give every current result.json fixed wall time, memory and energy (as codecarbon
    writes it), so the tables do not depend on this machine's speed."""
    for path in project.glob("runs/**/result.json"):
        cycle = int(path.parent.name[1:])
        which = variant or re.search(r"variant=(\w+)", str(path)).group(1)
        result = json.loads(path.read_text())
        energy = ENERGY[which][cycle - 1]
        result.update(wall_s=WALL[which][cycle - 1], peak_rss_mb=RSS[cycle - 1], energy={
            "country": "USA", "tracker": "codecarbon.OfflineEmissionsTracker",
            "tracking_mode": "machine", "power_interval_s": 1.0, "overhead_s": 0.5,
            "energy_kwh": energy, "cpu_kwh": energy * 0.8, "ram_kwh": energy * 0.2,
            "gpu_kwh": None, "emissions_kg": energy * 0.4,
            "method": {"cpu": "cpu_load_tdp", "gpu": "none", "ram": "estimate"},
            "cpu_model": "test CPU", "cpu_tdp_w": 65.0, "error": None})
        jsonschema.validate(result, RESULT_SCHEMA)
        path.write_text(json.dumps(result))


def run(project: Path, *args: str):
    return invoke("results", *args, "run.toml", cwd=project)


def comparisons(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {c["metric"]: c for c in json.loads(result.stdout)["comparisons"]}


def assert_matches_scipy(found: dict[str, dict]) -> None:
    for metric, (t, p, df, low, high) in SCIPY.items():
        c = found[metric]
        assert c["t"] == pytest.approx(t, rel=1e-6), metric
        assert c["p"] == pytest.approx(p, rel=1e-6), metric
        assert c["df"] == pytest.approx(df, rel=1e-6), metric
        assert (c["ci95_low"], c["ci95_high"]) == pytest.approx((low, high), rel=1e-6), metric
    assert {m: c["verdict"] for m, c in found.items()} == VERDICTS


# -- the Student t distribution and the tests, against scipy ------------------------------------

def test_t_distribution_matches_scipy_for_fractional_degrees_of_freedom():
    # scipy.stats.t.ppf(q, df)
    for df, q, expected in [(3.3, 0.975, 3.024874461840807), (7.77, 0.9, 1.4005318776445574),
                            (1.5, 0.995, 17.820310514462804), (12.25, 0.025, -2.173891388392063),
                            (7.254732448949172, 0.975, 2.347896615222001)]:
        assert t_ppf(q, df) == pytest.approx(expected, rel=1e-9)
    # scipy.stats.t.cdf(t, df), scipy.stats.t.sf(t, df)
    for df, t, cdf, sf in [(3.3, 2.1, 0.9408569598540462, 0.05914304014595388),
                           (7.77, -0.4, 0.34996364301586713, 0.6500363569841329),
                           (1.5, 12.0, 0.9909789853629861, 0.009021014637013932),
                           (25.5, 3.0, 0.9970199571288991, 0.002980042871100856)]:
        assert t_cdf(t, df) == pytest.approx(cdf, rel=1e-9)
        assert t_sf(t, df) == pytest.approx(sf, rel=1e-9)
    # scipy.special.betainc(a, b, x)
    assert betainc(2.5, 0.5, 0.3) == pytest.approx(0.018927124071945658, rel=1e-9)
    assert betainc(0.7, 3.2, 0.9) == pytest.approx(0.9996598967697762, rel=1e-9)
    assert t_critical(2) == pytest.approx(4.302652729749464, rel=1e-9)   # t.ppf(0.975, 2)
    assert t_ppf(0.5, 4.2) == 0.0 and t_ppf(0.0, 3) != t_ppf(0.0, 3)     # nan outside (0, 1)


def test_welch_on_fixed_samples_matches_scipy():
    for metric, (t, p, df, low, high) in SCIPY.items():
        a = TABLE["a"].get(metric) or {"wall_s": WALL, "energy_kwh": ENERGY}[metric]["a"]
        b = TABLE["b"].get(metric) or {"wall_s": WALL, "energy_kwh": ENERGY}[metric]["b"]
        test = welch_of(a, b)
        assert (test.t, test.p, test.df) == pytest.approx((t, p, df), rel=1e-6), metric
        assert (test.ci_low, test.ci_high) == pytest.approx((low, high), rel=1e-6), metric
    assert welch_of([1.0], [2.0, 3.0]) is None   # one value: nothing to test
    same = welch_of([2.0, 2.0], [2.0, 2.0])
    assert (same.p, same.ci_low, same.ci_high) == (1.0, 0.0, 0.0)


def test_bootstrap_interval_is_seeded_and_stays_within_the_values():
    values = [0.1, 5.0, 0.2]
    first = bootstrap_interval(values)
    assert first == bootstrap_interval(values)  # random.Random(0): the same every time
    assert 0.1 <= first[0] < first[1] <= 5.0
    t = summarize(values)
    assert t.ci95_low < 0  # the t-interval crosses the bound the bootstrap respects
    boot = summarize(values, CIMethod.BOOTSTRAP)
    assert (boot.ci95_low, boot.ci95_high) == first and boot.ci_method == "bootstrap"
    numpy = pytest.importorskip("numpy")
    import random

    rng = random.Random(0)
    means = [sum(rng.choices(values, k=3)) / 3 for _ in range(10_000)]
    assert first == pytest.approx(tuple(numpy.percentile(means, [2.5, 97.5])), rel=1e-12)


# -- comparing two configurations, 5 cycles each -------------------------------------------------

def test_compare_two_sweep_values_matches_scipy(project, text_snapshot):
    (project / "run.toml").write_text(manifest())
    apply(project)
    settle(project)
    for variant in ("a", "b"):  # the samples, read back from the result files
        results = [json.loads((project / f"runs/cmp/main/variant={variant}/c{c}/result.json")
                              .read_text()) for c in range(1, 6)]
        for metric, column in TABLE[variant].items():
            assert [r["metrics"][metric] for r in results] == column
    found = comparisons(run(project, "--compare", "variant=a..b", "--format", "json"))
    assert_matches_scipy(found)
    assert found["energy_kwh"]["unit"] == "kWh" and found["latency_ms"]["a"]["n"] == 5
    assert found["score"]["relative"] == pytest.approx(0.01, rel=1e-6)
    assert "train_loss" not in found  # undeclared: not compared either
    table = run(project, "--compare", "variant=a..b")
    assert table.stdout == text_snapshot(name="table")
    assert run(project, "--compare", "variant=a..b", "--format", "md").stdout == \
        text_snapshot(name="md")
    (project / "run.toml").write_text(manifest(extra="noise = 0.005\n"))
    tighter = comparisons(run(project, "--compare", "variant=a..b", "--format", "json"))
    assert tighter["score"]["verdict"] == "higher"  # +1.0% is beyond a 0.5% noise
    assert tighter["score"]["noise"] == 0.005


def test_compare_with_the_previous_configuration_from_the_history(project, text_snapshot):
    (project / "run.toml").write_text(manifest(
        sweep="", command='["python", "recipe.py"]', extra='[env.vars]\nVARIANT = "a"\n'))
    apply(project)
    settle(project, "a")
    (project / "run.toml").write_text((project / "run.toml").read_text().replace(
        'VARIANT = "a"', 'VARIANT = "b"'))
    apply(project)
    settle(project, "b")
    assert_matches_scipy(comparisons(run(project, "--compare", "@previous", "--format", "json")))
    current = json.loads(run(project, "--format", "json").stdout)["rows"]
    assert {r["n"] for r in current} == {5} and "config" not in current[0]
    everything = run(project, "--all")
    assert everything.exit_code == 0, everything.output
    rows = everything.stdout.splitlines()
    assert rows[1].split()[2:4] == ["current", "5"]
    assert "same config; command, code or environment  5" in rows[2]
    assert everything.stdout == text_snapshot(name="all")
    exported = json.loads(run(project, "--all", "--format", "json").stdout)["rows"]
    assert {(r["current"], r["n"]) for r in exported} == {(True, 5), (False, 5)}


def test_compare_with_an_export_of_another_checkout(project):
    """What CI does: results of main as JSON, then the PR's runs compared with them."""
    (project / "run.toml").write_text(manifest(sweep='variant = ["a"]'))
    apply(project)
    settle(project, "a")
    exported = run(project, "--format", "json")
    (project / "main.json").write_text(exported.stdout)
    (project / "recipe.py").write_text(RECIPE.replace('TABLE[variant]', 'TABLE["b"]'))
    (project / "run.toml").write_text(manifest(sweep='variant = ["a"]', extra="# PR\n"))
    assert invoke("apply", "--yes", "--replace", "*", "run.toml", cwd=project).exit_code == 0
    settle(project, "b")
    assert_matches_scipy(comparisons(run(project, "--compare", "main.json", "--format", "json")))
    md = run(project, "--compare", "main.json", "--format", "md").stdout
    assert md.startswith("**cmp**: `runspec results --compare main.json`")
    assert "| latency_ms | a | 20.04 (5) | 18.46 (5) | -1.58 | [-1.99, -1.17] |" in md


def test_compare_spec_errors_say_what_was_expected(project):
    (project / "run.toml").write_text(manifest(cycles=2))
    apply(project)
    cases = {
        "varient=a..b": 'varient is not a sweep parameter of cmp (its parameters: variant) — '
                        'did you mean "variant"?',
        "variant=a": "expected PARAM=A..B (e.g. optim.lr=0.01..0.03), @previous, or a file "
                     "that `runspec results --format json` wrote — write the two values with "
                     "two dots: variant=A..B",
        "variant=a..c": "no run has variant=c (its values: a, b) — a value that ran before is "
                        "in the history: add --all",
        "@prev": 'unknown reference (expected PARAM=A..B (e.g. optim.lr=0.01..0.03), '
                 '@previous, or a file that `runspec results --format json` wrote) — did you '
                 'mean "@previous"?',
        "@previous": "no current point of cmp has a previous configuration in its history",
        "missing.json": "no such file",
        "variant=a..a": "A and B are the same value",
    }
    for spec, message in cases.items():
        result = run(project, "--compare", spec)
        assert result.exit_code == 1, spec
        assert f"error: --compare {spec}: {message}" in result.stderr, result.stderr
        assert "Traceback" not in result.output
    for rows in ('[{"stage": "main"}]',
                 '[{"stage": "main", "metric": "score", "n": null, "mean": 1.0}]',
                 '[{"stage": "main", "metric": "score", "n": 3, "mean": "high"}]'):
        (project / "other.json").write_text(f'{{"rows": {rows}}}')
        bad = run(project, "--compare", "other.json")
        assert bad.exit_code == 1 and "Traceback" not in bad.output, bad.output
        assert "not the output of `runspec results --format json`" in bad.stderr, rows
    unwritable = run(project, "--plot", str(project / "no/such/dir/p.png"))
    assert unwritable.exit_code == 1 and "Traceback" not in unwritable.output
    assert "error: --plot " in unwritable.stderr and "cannot write it" in unwritable.stderr
    assert run(project, "--compare", "variant=a..b", "--format", "csv").exit_code == 1


def test_compare_keeps_other_parameters_and_group_by_pools_them(project):
    (project / "run.toml").write_text(manifest(sweep='variant = ["a", "b"]\nsize = [1, 2]',
                                               cycles=2))
    apply(project)
    kept = json.loads(run(project, "--compare", "variant=a..b", "--format", "json").stdout)
    latency = [c for c in kept["comparisons"] if c["metric"] == "latency_ms"]
    assert [(c["size"], c["a"]["n"], c["b"]["n"]) for c in latency] == [(1, 2, 2), (2, 2, 2)]
    pooled = json.loads(run(project, "--group-by", "variant", "--compare", "variant=a..b",
                            "--format", "json").stdout)
    latency = [c for c in pooled["comparisons"] if c["metric"] == "latency_ms"]
    assert [("size" in c, c["a"]["n"], c["b"]["n"]) for c in latency] == [(False, 4, 4)]
    not_grouped = run(project, "--group-by", "size", "--compare", "variant=a..b")
    assert not_grouped.exit_code == 1
    assert ("variant is not grouped on (--group-by size) — add variant to --group-by"
            in not_grouped.stderr)
    typo = run(project, "--group-by", "sizes")
    assert typo.exit_code == 1
    assert ('error: --group-by sizes: not a sweep parameter of cmp (its parameters: size, '
            'variant) — did you mean "size"?') in typo.stderr


# -- tables ---------------------------------------------------------------------------------

def test_default_table_a_row_per_point_with_units_and_column_precision(project, text_snapshot):
    (project / "run.toml").write_text(manifest())
    apply(project)
    settle(project)
    table = run(project)
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[0]
    for column in ("variant", "n", "latency_ms", "wall s", "peak RSS MB", "energy Wh",
                   "emissions g CO₂e"):
        assert column in header
    assert "train_loss" not in header and "not shown: train_loss" in table.stdout
    assert "e+" not in table.stdout and "e-" not in table.stdout
    rows = [line for line in table.stdout.splitlines() if line.startswith("main ")]
    assert [r.split()[1] for r in rows] == ["b", "a"]  # lower latency first (goal = "min")
    energy = [re.findall(r"\d+\.\d+ ± \d+\.\d+", r)[-2] for r in rows]
    assert energy == ["2.020 ± 0.104", "2.000 ± 0.088"]  # Wh, one precision for the column
    assert table.stdout == text_snapshot(name="table")
    everything = run(project, "--metrics", "all")
    assert "train_loss" in everything.stdout.splitlines()[0]
    long = run(project, "--long")
    assert long.stdout.splitlines()[0].split()[:4] == ["stage", "point", "metric", "n"]
    assert long.stdout == text_snapshot(name="long")
    assert run(project, "--format", "md").stdout == text_snapshot(name="md")


def test_csv_and_json_have_a_column_per_sweep_parameter(project):
    (project / "run.toml").write_text(manifest(sweep='variant = ["a", "b"]\nsize = [1]'))
    apply(project)
    settle(project)
    csv_text = run(project, "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("stage,size,variant,metric,unit,n,mean,std")
    assert "main,1,a,latency_ms,,5,20.04," in csv_text
    data = json.loads(run(project, "--format", "json").stdout)
    assert data["parameters"] == ["size", "variant"]
    row = next(r for r in data["rows"] if r["variant"] == "a" and r["metric"] == "energy_kwh")
    assert (row["size"], row["unit"], row["n"]) == (1, "kWh", 5)
    assert row["mean"] == pytest.approx(0.002) and row["ci_crosses_bound"] is False
    assert {r["metric"] for r in data["rows"]} == {
        "latency_ms", "tokens_per_s", "score", "wall_s", "peak_rss_mb", "energy_kwh",
        "emissions_kg"}
    assert data["hidden_metrics"] == ["train_loss"]


def test_a_ci_below_zero_for_a_non_negative_metric_is_flagged(project):
    spread = RECIPE.replace('"train_loss": 2.5', '"gap": [0.1, 5.0, 0.2][cycle - 1]')
    (project / "recipe.py").write_text(spread)
    (project / "run.toml").write_text(manifest(sweep='variant = ["a"]', cycles=3).replace(
        '"score"]', '"score", "gap"]'))
    apply(project)
    table = run(project, "--metrics", "all")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if line.startswith("main "))
    assert re.search(r"1\.8 ± 7\.0!", row), row  # mean 1.77, t-interval [-5.2, 8.7]
    assert "! the 95% CI reaches below 0, which this quantity cannot" in table.stdout
    boot = run(project, "--ci", "bootstrap")
    assert "!" not in boot.stdout.splitlines()[1] and "percentile bootstrap" in boot.stdout
    data = json.loads(run(project, "--format", "json").stdout)
    gap = next(r for r in data["rows"] if r["metric"] == "gap")
    assert gap["ci_crosses_bound"] is True and gap["ci95_low"] < 0


# -- plots ----------------------------------------------------------------------------------

def test_plot_shows_every_cycle_the_mean_and_ci_without_joining_categories(project):
    pytest.importorskip("matplotlib", reason="the plot extra is installed by `make test`")
    from runspec.apply.inspect import tracked
    from runspec.measure.plot import figure
    from runspec.measure.results import collect
    from runspec.measure.samples import read_samples

    (project / "run.toml").write_text(manifest())
    apply(project)
    settle(project)
    results = collect("cmp", read_samples(tracked(project / "run.toml")), primary="latency_ms",
                      goal="min", declared=["latency_ms", "tokens_per_s", "score"])
    drawn = figure(results, ["latency_ms", "energy_kwh"])
    axes = drawn.axes
    assert len(axes) == 2
    dots = sum(len(c.get_offsets()) for c in axes[0].collections if hasattr(c, "get_offsets")
               and len(c.get_offsets()) == 5)
    assert dots == 10  # every cycle of both points
    assert [t.get_text() for t in axes[1].get_xticklabels()] == ["b", "a"]
    assert all(line.get_linestyle() == "None" for line in axes[0].lines if len(line.get_xdata()) > 1)
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["latency_ms (n=5)"]
    assert axes[1].get_ylabel() == "energy Wh"
    energy = next(line for line in axes[1].lines if line.get_marker() == "o")
    assert sorted(energy.get_ydata()) == pytest.approx([2.0, 2.02])
    written = run(project, "--plot", "p.png", "--metric", "latency_ms", "--metric", "wall_s")
    assert written.exit_code == 0, written.output
    assert (project / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wrong = run(project, "--plot", "q.png", "--logx")
    assert wrong.exit_code == 1 and "--logx needs positive numbers on the x axis" in wrong.stderr
    unknown = run(project, "--plot", "q.png", "--metric", "latency")
    assert unknown.exit_code == 1 and 'did you mean "latency_ms"?' in unknown.stderr


def test_plot_joins_means_of_a_numeric_parameter(project):
    pytest.importorskip("matplotlib", reason="the plot extra is installed by `make test`")
    from runspec.apply.inspect import tracked
    from runspec.measure.plot import figure
    from runspec.measure.results import collect
    from runspec.measure.samples import read_samples

    (project / "run.toml").write_text(manifest(
        sweep="size = [1, 10, 100]", cycles=2, command='["python", "recipe.py", "a"]'))
    apply(project)
    results = collect("cmp", read_samples(tracked(project / "run.toml")))
    drawn = figure(results, ["score"], logx=True, logy=True)
    joined = [line for line in drawn.axes[0].lines if line.get_marker() == "o"]
    assert joined and joined[0].get_linestyle() == "-"
    assert list(joined[0].get_xdata()) == [1, 10, 100]
    assert drawn.axes[0].get_xscale() == "log" and drawn.axes[0].get_yscale() == "log"


# -- strict ---------------------------------------------------------------------------------

def test_strict_names_planned_runs_that_were_never_applied(project):
    (project / "run.toml").write_text(manifest(cycles=2).replace(
        "cycles = 2\n", "cycles = 2\nwarmup_runs = 1\n"))
    done = invoke("apply", "--yes", "--target", "cmp/main/variant=a/*", "run.toml", cwd=project)
    assert done.exit_code == 0, done.output
    strict = run(project)
    assert strict.exit_code == 1
    assert ("error: 2 run(s) have no complete result: cmp/main/variant=b/c1 (planned, never "
            "applied), cmp/main/variant=b/c2 (planned, never applied)") in strict.stderr
    assert "variant=b/w1" not in strict.stderr  # a warmup is not a measurement
    assert strict.stdout.splitlines()[1].split()[:3] == ["main", "a", "2*"]  # n < 3 flagged
    lenient = run(project, "--no-strict")
    assert lenient.exit_code == 0 and "warning: 2 run(s)" in lenient.stderr
    apply(project)
    assert run(project).exit_code == 0
