"""The branch-and-bound pricing of the large-partition column generation against enumeration of every
group: per-size upper bounds must be valid (also when stopped early) and exact above the threshold,
the columns' reduced costs true, and the Lagrangian bound from them valid."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from planner.grouping.colgen import _members, _Values, lagrangian_bound
from planner.grouping.pricing import price_exact
from planner.grouping.problem import problem_from_affinity


def _case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 11))
    rule = ["pairwise_mean_by_size", "tag", "hoa"][seed % 3]
    diag = ["ignore", "include"][(seed // 3) % 2]
    tasks = [f"t{i}" for i in range(n)]
    kw = {}
    if seed % 4 == 1:
        kw = dict(task_resources={t: {"gpu": float(rng.integers(1, 4))} for t in tasks}, per_group_budgets={"gpu": 6.0})
    lo = 1 if rule != "tag" else 2
    hi = int(rng.integers(lo + 1, n + 1))
    p = problem_from_affinity(tasks, np.round(rng.normal(size=(n, n)), 3).tolist(), rule=rule, diagonal=diag,
                              max_groups=int(rng.integers(2, 5)), group_size=(lo + seed % 2, hi), **kw)
    V = _Values(p)
    pi = rng.normal(0, 0.5, size=n)
    mu = float(rng.normal(0, 0.3))
    return p, V, pi, mu


def _best_per_size(V, pi, mu):
    best = {}
    for s in V.sizes:
        b = -math.inf
        for c in itertools.combinations(range(V.n), s):
            idx = np.array(c)
            if V.fits(idx):
                b = max(b, V.value(idx) - pi[idx].sum() - mu)
        best[s] = b
    return best


@pytest.mark.parametrize("native", [None, False], ids=["C where it applies", "Python"])
@pytest.mark.parametrize("seed", range(24))
def test_branch_and_bound_pricing_against_enumeration(seed, native):
    _p, V, pi, mu = _case(seed)
    best = _best_per_size(V, pi, mu)
    for thr in (1e-7, -10.0):
        for spectral in (True, False):
            r = price_exact(V, pi, mu, threshold=thr, spectral=spectral, native=native)
            assert r.done
            for s in V.sizes:
                assert r.ub[s] >= best[s] - 1e-9
                if best[s] > thr + 1e-9:  # exact above the threshold
                    assert r.ub[s] == pytest.approx(best[s], abs=1e-9)
            for rc, m in r.columns:
                idx = _members(m, V.n)
                assert V.fits(idx) and len(idx) in V.sizes
                assert rc == pytest.approx(V.value(idx) - pi[idx].sum() - mu, abs=1e-9)
            top = max(best.values())
            if top > 1e-6:
                assert r.columns and r.columns[0][0] == pytest.approx(top, abs=1e-9)
    stopped = price_exact(V, pi, mu, node_limit=2, native=native)
    for s in V.sizes:  # open nodes keep the bound valid
        assert stopped.ub[s] >= best[s] - 1e-9


def test_compiled_tree_is_used_and_agrees_with_python_on_larger_instances():
    """Where a C compiler exists the tree runs in C; on 14-24 tasks, with and without budgets (too many
    to enumerate quickly, so the two implementations are each other's oracle) both give the same
    per-size bounds."""
    from planner_models.native import _compiler
    from planner.grouping.pricing import _native_lib

    if _compiler() is None:
        pytest.skip("no C compiler: the Python tree is used")
    assert _native_lib() is not None
    for seed in range(6):
        rng = np.random.default_rng(200 + seed)
        n = int(rng.integers(14, 25))
        S = rng.normal(size=(n, n))
        S = np.round((S + S.T) / 2, 4)
        np.fill_diagonal(S, 0.0)
        kw = {}
        if seed % 2:  # per-group budgets: the compiled tree handles non-negative resources too
            kw = dict(task_resources={f"t{i}": {"gpu": float(rng.integers(1, 4)), "hours": float(rng.random())}
                                      for i in range(n)}, per_group_budgets={"gpu": 14.0, "hours": 3.0})
        p = problem_from_affinity([f"t{i}" for i in range(n)], S.tolist(), max_groups=3, **kw)
        V = _Values(p)
        pi = rng.normal(0.3, 0.4, size=n)
        mu = float(rng.normal(1.0, 0.3))
        c = price_exact(V, pi, mu, native=None)
        py = price_exact(V, pi, mu, native=False)
        assert c.done and py.done
        for s in V.sizes:
            assert c.ub[s] == pytest.approx(py.ub[s], abs=1e-7)
        if py.columns:
            assert c.columns[0][0] == pytest.approx(py.columns[0][0], abs=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_size_lagrangian_bound_is_valid(seed):
    """sum pi + best size multiset of per-size bounds >= every partition's value (brute force)."""
    from planner.solve import solve
    from planner.status import SolveStatus

    p, V, pi, mu = _case(100 + seed)
    brute = solve(p, "brute", 60)
    if brute.status is not SolveStatus.OPTIMAL:
        return
    r = price_exact(V, pi, mu, threshold=-math.inf)
    K = p.max_groups if p.max_groups is not None else p.n
    sign = 1.0 if p.maximize else -1.0
    bound = lagrangian_bound(pi, mu, r.ub, p.n, min(K, p.n))
    assert bound >= sign * brute.objective / p.scale - 1e-7


@pytest.mark.parametrize("native", [None, False], ids=["C where it applies", "Python"])
@pytest.mark.parametrize("seed", range(12))
def test_enumeration_lists_every_group_above_the_threshold(seed, native):
    """enumerate_all: exactly the groups with rc > threshold (brute force), and 'not done' when more
    qualify than the list may hold."""
    _p, V, pi, mu = _case(300 + seed)
    allrc = {}
    for s in V.sizes:
        for c in itertools.combinations(range(V.n), s):
            idx = np.array(c)
            if V.fits(idx):
                allrc[sum(1 << int(i) for i in c)] = V.value(idx) - pi[idx].sum() - mu
    top = sorted(allrc.values(), reverse=True)
    thr = top[min(len(top) - 1, 25)] - 1e-9 if top else 0.0   # about 25 groups above it
    want = {m for m, rc in allrc.items() if rc > thr + 1e-12}
    r = price_exact(V, pi, mu, threshold=thr, keep=10_000, enumerate_all=True, native=native)
    assert r.done
    got = {m for _, m in r.columns}
    assert got == want
    for rc, m in r.columns:
        assert rc == pytest.approx(allrc[m], abs=1e-9)
    if len(want) > 3:
        short = price_exact(V, pi, mu, threshold=thr, keep=3, enumerate_all=True, native=native)
        assert not short.done and len(short.columns) == 3
