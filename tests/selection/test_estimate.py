"""Sampling, surrogates, the resumable store, and the estimate/plan pipeline on small data."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from helpers import run_cli, write_tasks_csv
from planner.sampling import default_n_subsets, design, sample_fixed_size, subset_seed
from planner.selection.surrogate import (
    LinearSurrogate,
    PairwiseSurrogate,
    f1_transfer,
    fit_surrogate,
    masks_from_subsets,
    spearman,
)


# -- sampling -------------------------------------------------------------------------------
def test_fixed_size_subsets_are_distinct_seeded_and_prefix_stable():
    a = sample_fixed_size(12, 4, 100, seed=3)
    assert len(a) == 100 and len(set(a)) == 100
    assert all(len(s) == 4 and list(s) == sorted(s) and all(0 <= i < 12 for i in s) for s in a)
    assert a == sample_fixed_size(12, 4, 100, seed=3)
    assert a != sample_fixed_size(12, 4, 100, seed=4)
    assert sample_fixed_size(12, 4, 150, seed=3)[:100] == a  # more subsets extend the same draw
    with pytest.raises(ValueError, match="only 495 distinct"):
        sample_fixed_size(12, 4, 496, seed=0)


def test_fixed_size_sampling_is_uniform_over_tasks():
    counts = np.zeros(10)
    for s in sample_fixed_size(10, 3, 120, seed=0):  # all C(10,3) = 120 subsets
        counts[list(s)] += 1
    assert np.all(counts == 36)


def test_default_n_and_designs():
    assert default_n_subsets(50, 5) == 400
    assert default_n_subsets(6, 3) == 20
    d = design(6, 2, 5, seed=0, extra="both")
    assert len(d) == len(set(d)) and {(i,) for i in range(6)} <= set(d)
    assert subset_seed(0, (1, 2)) == subset_seed(0, (1, 2)) != subset_seed(0, (1, 3))


# -- surrogates -----------------------------------------------------------------------------
def test_linear_surrogate_recovers_scores_from_fixed_size_subsets_plus_baseline():
    rng = np.random.default_rng(0)
    k = 15
    theta = rng.normal(0, 0.1, k)
    subsets = sample_fixed_size(k, 5, 120, seed=1)
    X = np.vstack([masks_from_subsets(subsets, k), np.zeros((3, k))])
    y = 0.7 + X @ theta + rng.normal(0, 1e-3, len(X))
    m = LinearSurrogate().fit(X, y)
    assert np.max(np.abs(m.coef_ - theta)) < 0.01
    assert abs(m.intercept_ - 0.7) < 0.01


def test_pairwise_surrogate_finds_an_interaction_and_auto_prefers_it():
    # With one subset size, sum_j x_i x_j = (alpha - 1) x_i: pairwise terms are then identified only
    # up to that direction. Singletons and pairs (design extra="both") break the tie.
    rng = np.random.default_rng(1)
    k = 8
    subsets = design(k, 3, 40, seed=2, extra="both")
    X = masks_from_subsets(subsets, k)
    y = 0.5 + X @ np.linspace(-0.05, 0.05, k) + 0.3 * X[:, 0] * X[:, 1] + rng.normal(0, 1e-3, len(X))
    pw = PairwiseSurrogate(min_pair_count=3).fit(X, y)
    terms = {(i, j): v for i, j, v in pw.pairwise_}
    assert abs(terms[(0, 1)] - 0.3) < 0.05
    assert max(abs(v) for p, v in terms.items() if p != (0, 1)) < 0.05
    lin = LinearSurrogate().fit(X, y)
    assert pw.cv_mse_ < lin.cv_mse_
    assert isinstance(fit_surrogate(X, y, min_pair_count=3), PairwiseSurrogate)
    assert isinstance(fit_surrogate(X, y, kind="linear"), LinearSurrogate)


def test_f1_and_spearman_on_hand_examples():
    # predicted positive (below 1.0): a, b, c; measured positive: a, b, d -> tp 2, fp 1, fn 1 -> F1 = 4/6
    pred = np.array([0.5, 0.6, 0.9, 1.2, 1.5])
    meas = np.array([0.4, 0.8, 1.1, 0.9, 1.6])
    assert f1_transfer(pred, meas, 1.0) == pytest.approx(4 / 6)
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([10, 20, 30, 40.0])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([4, 3, 2, 1.0])) == pytest.approx(-1.0)


# -- the pipeline on small synthetic data ---------------------------------------------------
@pytest.fixture(scope="module")
def small_data():
    from planner_models.data import synthetic_classification

    return synthetic_classification(k=6, p=4, n_per_task=[80] + [120] * 6, seed=0)


def _cfg(**kw):
    from planner_models.train import TrainConfig

    base = dict(epochs=4, patience=None, hidden=(8,))
    base.update(kw)
    return TrainConfig(**base)


def _settings(**kw):
    from planner.selection.estimate import EstimateSettings

    base = dict(alpha=2, n_subsets=15, n_boot=20, repeats=2, seed=0, estimator="retrain", replicate_subsets=3,
                replicate_seeds=2)
    base.update(kw)
    return EstimateSettings(**base)


def test_resume_trains_only_what_is_missing_and_gives_the_same_result(tmp_path, small_data):
    from planner.selection.estimate import estimate

    store = str(tmp_path / "s.sqlite")
    full = estimate(small_data, "target", _settings(batch_size=4), _cfg(), store)
    assert full.trained == 15 + 2 + 3  # subsets, single-task replicates, 3 replicate subsets x 1 more seed
    again = estimate(small_data, "target", _settings(batch_size=4), _cfg(), store)
    assert again.trained == 0
    # lose some rows, as a killed run would (whole batches are atomic; any subset may be missing)
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs ORDER BY subset DESC LIMIT 7)")
    resumed = estimate(small_data, "target", _settings(batch_size=3), _cfg(), store)
    assert resumed.trained == 7
    assert json.dumps(resumed.instance_dict(), sort_keys=True) == json.dumps(full.instance_dict(), sort_keys=True)
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 20


def test_in_memory_run_equals_store_run(tmp_path, small_data):
    from planner.selection.estimate import estimate

    a = estimate(small_data, "target", _settings(batch_size=64), _cfg())
    b = estimate(small_data, "target", _settings(batch_size=5), _cfg(), str(tmp_path / "x.sqlite"))
    assert np.array_equal(a.f, b.f) and a.scores == b.scores


def test_store_refuses_other_settings(tmp_path, small_data):
    from planner.selection.estimate import estimate
    from planner.store import StoreError

    store = str(tmp_path / "s.sqlite")
    estimate(small_data, "target", _settings(n_boot=0), _cfg(), store)
    with pytest.raises(StoreError, match="epochs: stored 4, now 5"):
        estimate(small_data, "target", _settings(n_boot=0), _cfg(epochs=5), store)
    # another seed is another study, and may share the file
    estimate(small_data, "target", _settings(n_boot=0, seed=1), _cfg(), store)


def test_estimate_report_has_diagnostics_and_intervals(small_data):
    from planner.selection.estimate import estimate
    from planner.instance import parse_instance

    est = estimate(small_data, "target", _settings(), _cfg())
    inst = est.instance_dict()
    problem = parse_instance(inst, "est")  # a valid selection instance
    assert problem.baseline == pytest.approx(np.mean(est.stl_f))
    d = inst["meta"]["diagnostics"]
    assert d["n_fit"] == 15 and d["cv"] == {"folds": 5, "repeats": 10}
    assert d["noise_floor"] >= 0 and d["mse"] >= 0
    for t, (lo, hi) in est.interval.items():
        assert lo <= hi
    assert set(est.uncertain) == {t for t, (lo, hi) in est.interval.items() if lo < 0 < hi}
    assert all(0.0 <= v <= 1.0 for v in est.selection_frequency.values())


def test_good_sources_score_lower_and_are_selected_on_the_theorem_3_1_generator():
    """Synthetic check: the linear setting of Theorem 3.1 with a narrow shared
    encoder (3 units < p = 10, so sources compete for the representation)."""
    from planner_models.data import synthetic_linear
    from planner.selection.estimate import estimate
    from planner.instance import parse_instance
    from planner.solve import solve

    data = synthetic_linear(k=8, p=10, n_per_task=[100] + [300] * 8, a=0.1, b=2.0, sigma=0.3, seed=2)
    est = estimate(data, "target", _settings(alpha=3, n_subsets=56, n_boot=0, seed=2, surrogate="linear"),
                   _cfg(hidden=(3,), epochs=40, patience=8, lr=1e-2))
    good = {data.task_names[i] for i in data.info["good"]}
    bad = set(est.sources) - good
    assert max(est.scores[t] for t in good) < min(est.scores[t] for t in bad)
    chosen = set(solve(parse_instance(est.instance_dict(), "syn")).solution["selected"])
    assert chosen == good


# -- the CLI --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def csv_path(tmp_path_factory, small_data):
    d = small_data
    return write_tasks_csv(d, tmp_path_factory.mktemp("data") / "tasks.csv", "group", "label", ("no", "yes"))


def _run(*args):
    return run_cli(*args, catch_exceptions=False)


COMMON = ["--task-column", "group", "--label-column", "label", "--subsets", "12", "--alpha", "2",
          "--epochs", "3", "--bootstrap", "10", "--repeats", "2"]


def test_cli_estimate_writes_a_solvable_instance(tmp_path, csv_path):
    out = tmp_path / "inst.json"
    res = _run("estimate", "--data", csv_path, "--target", "target", *COMMON, "-o", out)
    assert res.exit_code == 0, res.output
    solved = _run("solve", out, "--json")
    assert solved.exit_code == 0 and json.loads(solved.stdout)["kind"] == "selection"


def test_cli_plan_json_report_follows_the_contract(tmp_path, csv_path):
    res = _run("plan", "--data", csv_path, "--target", "target", *COMMON, "--final-seeds", "2", "--max-size", "3",
               "--json", "--plots", tmp_path / "plots")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert {"schema", "target", "selected", "test", "metric", "higher_is_better", "scores", "interval", "surrogate",
            "seconds"} <= set(rep)
    assert set(rep["test"]) == {"plan", "stl", "pooled", "threshold"}
    assert {"reliability", "estimator", "spearman", "n_subsets"} <= set(rep["surrogate"])
    assert isinstance(rep["warnings"], list) and rep["version"] and rep["settings"]["seed"] == 0
    assert rep["metric"] == "accuracy" and rep["higher_is_better"] is True
    assert len(rep["selected"]) <= 3
    assert {"n_subsets", "spearman", "f1_transfer", "mse", "noise_floor"} <= set(rep["surrogate"])
    assert (tmp_path / "plots" / "scores.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "predicted_vs_measured.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--target", "nope"], "unknown task 'nope'"),
        (["--target", "target", "--label-column", "missing"], "missing"),
        (["--target", "target", "--exclude", "zzz"], "--exclude: unknown task 'zzz'"),
        (["--target", "target", "--hidden", "a,b"], "--hidden"),
        pytest.param(["--target", "target", "--device", "cuda"], "CUDA is not available",
                     marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is here")),
    ],
)
def test_cli_plan_bad_input_exit_2(csv_path, args, needle):
    base = ["plan", "--data", str(csv_path), "--task-column", "group", "--label-column", "label", "--subsets", "12"]
    # later options win in click, so the overrides come last
    res = _run(*base, *args)
    assert res.exit_code == 2, res.output
    assert needle in res.stderr and "Traceback" not in res.output


def test_cli_missing_data_file_exit_2(tmp_path):
    res = _run("estimate", "--data", tmp_path / "none.csv", "--task-column", "a", "--label-column", "b",
               "--target", "t", "-o", tmp_path / "o.json")
    assert res.exit_code == 2 and "none.csv" in res.stderr
