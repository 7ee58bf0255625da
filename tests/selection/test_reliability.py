"""planner/reliability.py against data with planted variance components."""
import math

import numpy as np
import pytest

from planner.reliability import (
    crossed_reliability,
    rankdata,
    repeated_kfold,
    spearman,
    spearman_brown,
    spearman_of_pearson,
    variance_components,
)


def _plant(m, r, sb, sw, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.normal(0.3, sb, m)
    runs = true[:, None] + rng.normal(0, sw, (m, r))
    return true, runs


def test_components_recover_planted_values():
    true, runs = _plant(2000, 3, 1.0, 0.5)
    vc = variance_components({i: list(v) for i, v in enumerate(runs)})
    assert vc.seed_var == pytest.approx(0.25, rel=0.05)
    assert vc.between_var == pytest.approx(1.0, rel=0.08)
    assert vc.reliability == pytest.approx(0.8, abs=0.02)
    assert vc.seed_share == pytest.approx(0.2, abs=0.02)
    assert (vc.df_between, vc.df_within, vc.n_runs) == (1999, 4000, 6000)
    assert vc.pearson_ceiling == pytest.approx(math.sqrt(vc.reliability))


def test_unequal_replicates_and_single_runs():
    rng = np.random.default_rng(1)
    true = rng.normal(0, 0.6, 3000)
    groups = [list(t + rng.normal(0, 0.3, int(rng.integers(1, 5)))) for t in true]
    vc = variance_components(groups)
    assert vc.seed_var == pytest.approx(0.09, rel=0.06)
    assert vc.between_var == pytest.approx(0.36, rel=0.08)
    assert vc.reliability == pytest.approx(0.8, abs=0.03)


def test_edges_clip():
    _, noise_only = _plant(500, 2, 0.0, 1.0, seed=2)
    assert variance_components(list(noise_only)).reliability < 0.1
    exact = [[v, v] for v in np.linspace(0, 1, 10)]
    vc = variance_components(exact)
    assert vc.seed_var == 0 and vc.reliability == 1.0
    assert math.isnan(variance_components([[1.0], [2.0]]).seed_var)      # no replicates: no seed noise estimate
    assert math.isnan(variance_components([[1.0, 2.0]]).between_var)   # one subset: no between-subset spread


def test_ceilings_match_simulation():
    true, runs = _plant(20000, 2, 1.0, 0.75, seed=3)
    vc = variance_components(list(runs))
    single = runs[:, 0]
    assert spearman(single, true) == pytest.approx(vc.spearman_ceiling, abs=0.02)
    assert np.corrcoef(single, true)[0, 1] == pytest.approx(vc.pearson_ceiling, abs=0.02)
    # two independent single-seed copies: the held-out ceiling
    assert spearman(runs[:, 0], runs[:, 1]) == pytest.approx(vc.heldout_spearman_ceiling, abs=0.02)
    # the mean of two seeds (Spearman-Brown)
    assert np.corrcoef(runs.mean(1), true)[0, 1] ** 2 == pytest.approx(spearman_brown(vc.reliability, 2), abs=0.02)


def test_rank_helpers():
    assert list(rankdata(np.array([3.0, 1.0, 3.0, 2.0]))) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert spearman_of_pearson(1.0) == pytest.approx(1.0)


def _ls_fit(X, y):
    A = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return lambda Z: np.hstack([Z, np.ones((len(Z), 1))]) @ coef


def test_repeated_kfold_known_noise():
    rng = np.random.default_rng(4)
    X = (rng.random((300, 10)) < 0.3).astype(float)
    theta = np.linspace(-1, 1, 10)
    clean = X @ theta
    exact = repeated_kfold(X, clean, _ls_fit, k=5, repeats=3, seed=0)
    assert exact.spearman_mean > 0.99 and exact.mse_mean < 1e-20   # float rounding may order ties
    noisy = clean + rng.normal(0, 0.5, 300)
    cv = repeated_kfold(X, noisy, _ls_fit, k=5, repeats=6, seed=0)
    assert cv.mse_mean == pytest.approx(0.25, rel=0.25)       # the planted noise variance (plus fit error)
    assert 0 < cv.spearman_sd < 0.1 and len(cv.spearman) == 6
    again = repeated_kfold(X, noisy, _ls_fit, k=5, repeats=6, seed=0)
    assert np.array_equal(cv.spearman, again.spearman)


class _Obj:
    def __init__(self, X, y):
        self.m = float(np.mean(y))

    def predict(self, X):
        return np.full(len(X), self.m)


def test_repeated_kfold_accepts_objects():
    X = np.eye(6)
    cv = repeated_kfold(X, np.arange(6.0), _Obj, k=3, repeats=2)
    assert cv.mse_mean > 0 and cv.to_dict()["k"] == 3
    with pytest.raises(ValueError):
        repeated_kfold(X, np.arange(6.0), _Obj, k=7)


@pytest.mark.parametrize("icc, m, r", [(0.3, 20, 2), (0.7, 20, 2), (0.5, 40, 3)])
def test_reliability_interval_covers_the_truth(icc, m, r):
    """Oracle: runs drawn from the random-effects model with a known ICC; the 90% interval must hold it in
    about 90% of 600 draws (binomial spread: +-0.03), and the point estimate must lie inside it."""
    rng = np.random.default_rng([int(icc * 100), m, r])
    hits = 0
    for _ in range(600):
        F = rng.normal(0, math.sqrt(icc), m)
        runs = {i: F[i] + rng.normal(0, math.sqrt(1 - icc), r) for i in range(m)}
        comp = variance_components(runs)
        lo, hi = comp.reliability_interval(0.9)
        assert lo <= comp.reliability + 1e-12 and comp.reliability <= hi + 1e-12
        hits += lo <= icc <= hi
    assert 0.85 <= hits / 600 <= 0.95


def test_reliability_interval_edges():
    comp = variance_components({0: [1.0, 1.0], 1: [2.0, 2.0]})      # no seed noise at all
    assert comp.reliability == 1.0 and comp.reliability_interval() == (1.0, 1.0)
    comp = variance_components({0: [1.0], 1: [2.0]})                # no replicates: no interval
    assert all(math.isnan(v) for v in comp.reliability_interval())


@pytest.mark.parametrize("rel, m, k", [(0.5, 40, 4), (0.9, 40, 4), (0.3, 20, 2)])
def test_crossed_reliability_covers_the_truth_and_ignores_measurers_offsets(rel, m, k):
    """Oracle: every subset measured by the same k measurers, each with its own large offset (as the
    gradient estimate's base networks); the reliability of the k-measurer mean is known. The 90% interval
    must hold it in about 90% of 600 draws; the one-way figure, which counts the offsets as noise, reads
    far lower."""
    rng = np.random.default_rng([int(rel * 100), m, k])
    noise_var = k * (1 - rel) / rel          # subset variance 1: rel = 1 / (1 + noise_var / k)
    hits, points, one_way = 0, [], []
    for _ in range(600):
        x = rng.normal(0, 1, (m, 1)) + rng.normal(0, 3.0, (1, k)) + rng.normal(0, math.sqrt(noise_var), (m, k))
        r, lo, hi = crossed_reliability(x)
        assert lo <= r + 1e-12 and r <= hi + 1e-12
        hits += lo <= rel <= hi
        points.append(r)
        one_way.append(variance_components({i: list(v) for i, v in enumerate(x)}).reliability_of_mean(k))
    assert 0.85 <= hits / 600 <= 0.95
    assert abs(float(np.median(points)) - rel) < 0.06
    assert float(np.median(one_way)) < rel - 0.2


def test_crossed_reliability_edges():
    assert crossed_reliability(np.tile([[1.0], [2.0], [3.0]], (1, 3))) == (1.0, 1.0, 1.0)   # measurers agree
    assert crossed_reliability(np.tile([[1.0, 2.0, 3.0]], (4, 1))) == (0.0, 0.0, 0.0)       # offsets only
    assert all(math.isnan(v) for v in crossed_reliability(np.ones((1, 3))))
    assert all(math.isnan(v) for v in crossed_reliability(np.ones((5, 1))))
