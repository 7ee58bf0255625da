"""Column generation with MIP pricing (large derived partitions) against brute force and the
exact column generation with enumerated pricing; its bound must be valid."""
from __future__ import annotations

import math

import numpy as np
import pytest

from planner.grouping.colgen import _ScaledPricing, _Values, _members, price_heuristic
from planner.instance import parse_instance
from planner.grouping.problem import problem_from_affinity
from planner.grouping.schema import instance_from_affinity
from planner.solve import solve
from planner.status import SolveStatus

COLGEN = {"column_limit": 0, "cg_max_tasks": 0}  # force the large-instance path on small instances


def _sym(rng, n):
    A = rng.normal(size=(n, n))
    S = np.round((A + A.T) / 2, 3)
    np.fill_diagonal(S, 0.0)
    return S.tolist()


@pytest.mark.parametrize("seed", range(6))
def test_colgen_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(5, 10))
    rule = ["pairwise_mean_by_size", "tag", "hoa"][seed % 3]
    tasks = [f"t{i}" for i in range(n)]
    res = {t: {"gpu": float(rng.integers(1, 4))} for t in tasks}
    data = instance_from_affinity(
        tasks, np.round(rng.normal(size=(n, n)), 3).tolist(), rule=rule, sense=["max", "min"][seed % 2],
        max_groups=int(rng.integers(2, 5)), group_size=(1 if rule != "tag" else 2, int(rng.integers(3, n + 1))),
        task_resources=res, per_group_budgets={"gpu": 8.0} if seed % 2 else None,
        diagonal=["ignore", "include"][(seed // 2) % 2])
    p = parse_instance(data)
    brute = solve(p, "brute", 60)
    r = solve(p, "highs", 60, COLGEN)
    if brute.status is SolveStatus.INFEASIBLE:
        assert r.status in (SolveStatus.INFEASIBLE, SolveStatus.NO_SOLUTION)
        return
    assert "pricing" in r.message
    assert r.status is SolveStatus.OPTIMAL, r.message
    assert r.objective == pytest.approx(brute.objective, abs=1e-6), r.message
    assert r.bound == pytest.approx(brute.objective, abs=1e-5)


@pytest.mark.parametrize("n,k", [(16, 3), (18, 5)])
def test_colgen_matches_enumerated_column_generation(n, k):
    rng = np.random.default_rng(n)
    p = problem_from_affinity([f"t{i}" for i in range(n)], _sym(rng, n), max_groups=k)
    exact = solve(p, "highs", 60)
    assert exact.status is SolveStatus.OPTIMAL
    r = solve(p, "highs", 60, COLGEN)
    assert "pricing" in r.message
    assert r.objective <= exact.objective + 1e-9
    assert r.bound >= exact.objective - 1e-7
    assert r.status is SolveStatus.OPTIMAL, r.message
    assert r.objective == pytest.approx(exact.objective, abs=1e-6)


def test_scaled_pricing_finds_the_best_column_and_bounds_it():
    """The one-BQP exact pricing against enumeration of every subset, for arbitrary duals."""
    import itertools

    rng = np.random.default_rng(5)
    n = 9
    for rule, diag in [("pairwise_mean_by_size", "ignore"), ("tag", "ignore"), ("hoa", "include")]:
        p = problem_from_affinity([f"t{i}" for i in range(n)], np.round(rng.normal(size=(n, n)), 3).tolist(),
                                  rule=rule, diagonal=diag, max_groups=3)
        V = _Values(p)
        pi = rng.normal(0.0, 0.4, size=n)
        mu = 0.1
        best = -math.inf
        for s in V.sizes:
            for combo in itertools.combinations(range(n), s):
                idx = np.array(combo)
                best = max(best, V.value(idx) - pi[idx].sum() - mu)
        cols, ub = _ScaledPricing(V, p).solve(pi, mu, 30.0)
        assert ub >= best - 1e-7
        if best > 1e-6:  # it maximises m(s) rc, so it finds an improving column, not always the best
            assert cols
        for rc, m in cols:  # the reported reduced costs are the true ones
            idx = _members(m, n)
            assert rc == pytest.approx(V.value(idx) - pi[idx].sum() - mu, abs=1e-9)
        for rc, m in price_heuristic(V, pi, mu, 10, np.random.default_rng(0)):
            assert rc <= best + 1e-9


def test_time_limited_bound_is_valid_and_not_optimal():
    n = 20
    rng = np.random.default_rng(20)
    p = problem_from_affinity([f"t{i}" for i in range(n)], _sym(rng, n), max_groups=4)
    exact = solve(p, "highs", 60)
    assert exact.status is SolveStatus.OPTIMAL
    r = solve(p, "highs", 0.5, dict(COLGEN, pricing_mip_seconds=0.05))
    assert r.status in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL)
    assert r.bound >= exact.objective - 1e-7
    assert r.objective <= exact.objective + 1e-9
    if r.status is SolveStatus.FEASIBLE:
        assert r.gap is not None


@pytest.mark.slow
def test_n30_result_is_consistent():
    n = 30
    rng = np.random.default_rng(30)
    p = problem_from_affinity([f"t{i}" for i in range(n)], _sym(rng, n), max_groups=3)
    r = solve(p, "highs", 30)
    local = solve(p, "local", 3)
    assert r.status in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL)
    assert r.bound >= r.objective - 1e-9
    assert r.bound >= local.objective - 1e-9


def test_reduced_cost_enumeration_settles_integrality_gaps():
    """Hidden triangles of strong affinity with groups of at most 2: the set-partitioning LP takes each
    triangle's three pairs at 1/2 and sits above every grouping. Column generation then lists every
    group whose reduced cost could still matter and proves the optimum (brute force agrees), for max
    and min senses, with and without per-group budgets (the compiled and the Python tree)."""
    hits = 0
    for seed in range(18):
        rng = np.random.default_rng(700 + seed)
        n = int(rng.integers(6, 11))
        tasks = [f"t{i}" for i in range(n)]
        S = rng.normal(scale=0.2, size=(n, n))
        S = (S + S.T) / 2
        perm = rng.permutation(n)
        for a in range(0, n - 2, 3):
            tri = perm[a:a + 3]
            S[np.ix_(tri, tri)] += 1.0
        np.fill_diagonal(S, 0.0)
        kw = {}
        if seed % 3 == 2:
            kw = dict(task_resources={t: {"gpu": float(rng.integers(1, 3))} for t in tasks}, per_group_budgets={"gpu": 4.0})
        sense = ["max", "min"][seed % 2]
        data = instance_from_affinity(tasks, np.round(S if sense == "max" else -S, 3).tolist(),
                                      rule="pairwise_mean_by_size", sense=sense,
                                      max_groups=None if seed % 4 else n - 1, group_size=(1, 2), **kw)
        p = parse_instance(data)
        brute = solve(p, "brute", 60)
        assert brute.status is SolveStatus.OPTIMAL
        r = solve(p, "highs", 60, COLGEN)
        assert r.status is SolveStatus.OPTIMAL, r.message
        assert r.objective == pytest.approx(brute.objective, abs=1e-6), r.message
        assert r.bound == pytest.approx(brute.objective, abs=1e-5)
        hits += "reduced-cost enumeration" in r.message
    assert hits >= 12  # the LP gap is there, and the enumeration closed it


def test_budgets_that_cannot_hold_all_tasks_are_infeasible_at_once():
    """Five tasks of 4 GB into at most 2 groups of 8 GB: no partition exists (20 > 2 x 8); brute force
    agrees, and the large-instance path says so without searching."""
    tasks = [f"t{i}" for i in range(5)]
    data = instance_from_affinity(tasks, _sym(np.random.default_rng(1), 5), max_groups=2,
                                  task_resources={t: {"gpu": 4.0} for t in tasks}, per_group_budgets={"gpu": 8.0})
    p = parse_instance(data)
    assert solve(p, "brute", 60).status is SolveStatus.INFEASIBLE
    r = solve(p, "highs", 60, COLGEN)
    assert r.status is SolveStatus.INFEASIBLE and "in all" in r.message
