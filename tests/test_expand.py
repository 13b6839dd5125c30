"""Sweep and campaign expansion: modes, include/exclude, orders, seeds."""

from __future__ import annotations

import pytest

from runspec.manifest.models import Campaign, Sweep
from runspec.plan.expand import ExpandError, campaign_slots, derived_seed, sweep_points


def sweep(**data):
    return Sweep.model_validate(data)


def test_grid_is_cartesian_in_declared_order():
    points = sweep_points(sweep(parameters={"a": [1, 2], "b": {"values": ["x", "y"]}}), "m")
    assert points == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"},
                      {"a": 2, "b": "y"}]


def test_zip_pairs_and_checks_lengths():
    assert sweep_points(sweep(mode="zip", parameters={"a": [1, 2], "b": [3, 4]}), "m") == [
        {"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ExpandError, match="zip needs lists of equal length, got a: 2, b: 3"):
        sweep_points(sweep(mode="zip", parameters={"a": [1, 2], "b": [3, 4, 5]}), "m")


def test_ranges_int_and_float():
    points = sweep_points(sweep(parameters={"a": {"range": [0, 3]}}), "m")
    assert [p["a"] for p in points] == [0, 1, 2] and isinstance(points[0]["a"], int)
    points = sweep_points(sweep(parameters={"a": {"range": [0, 1, 0.25]}}), "m")
    assert [p["a"] for p in points] == [0.0, 0.25, 0.5, 0.75]
    points = sweep_points(sweep(parameters={"a": {"range": [0, 0.3, 0.1]}}), "m")
    assert [p["a"] for p in points] == [0.0, 0.1, 0.2]


def test_random_is_seeded_and_reproducible():
    spec = {"mode": "random", "samples": 5, "seed": 0, "parameters": {
        "lr": {"distribution": "log_uniform", "min": 1e-5, "max": 1e-2},
        "n": {"distribution": "int_uniform", "min": 1, "max": 3},
        "d": {"distribution": "uniform", "min": 0, "max": 1},
        "opt": {"distribution": "choice", "values": ["adam", "sgd"]}}}
    first = sweep_points(sweep(**spec), "m")
    assert first == sweep_points(sweep(**spec), "m")
    assert len(first) == 5
    assert all(1e-5 <= p["lr"] <= 1e-2 and p["n"] in (1, 2, 3) and 0 <= p["d"] <= 1
               and p["opt"] in ("adam", "sgd") for p in first)
    other = sweep_points(sweep(**{**spec, "seed": 1}), "m")
    assert other != first


def test_unseeded_random_derives_the_seed_from_the_name():
    spec = {"mode": "random", "samples": 3, "parameters": {"x": [1, 2, 3, 4, 5, 6, 7, 8, 9]}}
    assert sweep_points(sweep(**spec), "alpha") == sweep_points(sweep(**spec), "alpha")
    assert derived_seed("alpha", "sweep") != derived_seed("beta", "sweep")


def test_random_needs_samples():
    with pytest.raises(ExpandError, match='mode = "random" needs samples'):
        sweep_points(sweep(mode="random", parameters={"x": [1, 2]}), "m")


def test_include_adds_full_points_and_extends_partial_ones():
    base = {"parameters": {"lr": [1, 2], "n": [10, 20]}}
    full = sweep_points(sweep(**base, include=[{"lr": 3, "n": 30}]), "m")
    assert full[-1] == {"lr": 3, "n": 30} and len(full) == 5
    partial = sweep_points(sweep(**base, include=[{"lr": 3}]), "m")
    assert partial[4:] == [{"lr": 3, "n": 10}, {"lr": 3, "n": 20}]
    duplicate = sweep_points(sweep(**base, include=[{"lr": 1, "n": 10}]), "m")
    assert len(duplicate) == 4


def test_exclude_drops_matching_points_and_empty_is_an_error():
    points = sweep_points(sweep(parameters={"lr": [1, 2], "n": [10, 20]},
                                exclude=[{"lr": 2, "n": 20}, {"lr": 1, "n": 10}]), "m")
    assert points == [{"lr": 1, "n": 20}, {"lr": 2, "n": 10}]
    with pytest.raises(ExpandError, match="the sweep is empty"):
        sweep_points(sweep(parameters={"lr": [1, 2]}, exclude=[{"lr": 1}, {"lr": 2}]), "m")


def test_no_sweep_is_one_empty_point():
    assert sweep_points(None, "m") == [{}]


POINTS = [{"p": "a"}, {"p": "b"}]


def labels(slots):
    return [f"{s.point['p']}{s.label}" for s in slots]


def test_grouped_interleaved_and_warmups():
    grouped = campaign_slots(POINTS, Campaign(cycles=2, warmup_runs=1, order="grouped"), "m")
    assert labels(grouped) == ["aw1", "ac1", "ac2", "bw1", "bc1", "bc2"]
    interleaved = campaign_slots(POINTS, Campaign(cycles=2, warmup_runs=1, order="interleaved"),
                                 "m")
    assert labels(interleaved) == ["aw1", "bw1", "ac1", "bc1", "ac2", "bc2"]
    assert [s.warmup for s in interleaved] == [1, 1, 0, 0, 0, 0]


def test_shuffled_is_seeded_and_seed_zero_is_a_real_seed():
    points = [{"p": str(i)} for i in range(8)]
    zero = campaign_slots(points, Campaign(cycles=3, order="shuffled", seed=0), "m")
    assert labels(zero) == labels(campaign_slots(points, Campaign(cycles=3, order="shuffled",
                                                                  seed=0), "m"))
    unseeded = campaign_slots(points, Campaign(cycles=3, order="shuffled"), "m")
    assert labels(unseeded) != labels(zero)  # no seed: derived from the name, not 0
    assert sorted(labels(zero)) == sorted(labels(campaign_slots(points, Campaign(cycles=3), "m")))
