"""Selection: every backend against the brute-force oracle, invariances, time limits."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.generators import random_selection_dict
from planner.instance import parse_instance
from planner.solve import solve
from planner.status import SolveStatus

TOL = 1e-6


@st.composite
def selection_instances(draw, max_k: int = 8):
    k = draw(st.integers(min_value=0, max_value=max_k))
    sources = [f"t{i}" for i in range(k)]
    coef = st.floats(min_value=-5, max_value=5, allow_nan=False, allow_infinity=False)
    linear = {t: draw(coef) for t in sources}
    density = draw(st.sampled_from([0.0, 0.2, 0.6, 1.0]))
    pairs = []
    for i in range(k):
        for j in range(i + 1, k):
            if draw(st.floats(0, 1)) < density:
                pairs.append([sources[i], sources[j], draw(coef)])
    data = {"schema": 1, "kind": "selection", "name": "h", "target": "T", "tasks": ["T", *sources],
            "surrogate": {"intercept": draw(coef), "linear": linear, "pairwise": pairs}}
    cons: dict = {}
    if k and draw(st.booleans()):
        cons["min_size"] = draw(st.integers(0, k))
    if k and draw(st.booleans()):
        cons["max_size"] = draw(st.integers(cons.get("min_size", 0), k + 1))
    if k and draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(sources), unique=True, max_size=k))
        split = draw(st.integers(0, len(chosen)))
        if chosen[:split]:
            cons["must_include"] = chosen[:split]
        if chosen[split:]:
            cons["exclude"] = chosen[split:]
    if k and draw(st.booleans()):
        cons["costs"] = {t: draw(st.sampled_from([0, 0.5, 1, 2, 3.25, 7])) for t in sources}
        cons["budget"] = draw(st.sampled_from([0, 1, 2.5, 4, 10]))
    if cons:
        data["constraints"] = cons
    return data


def _same_answer(a, b):
    assert a.status == b.status, (a.status, b.status, a.message, b.message)
    if a.status is SolveStatus.OPTIMAL:
        assert math.isclose(a.objective, b.objective, rel_tol=1e-7, abs_tol=1e-6), (a.objective, b.objective)


@pytest.mark.parametrize("backend", ["highs", "cpsat"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=selection_instances())
def test_backend_matches_brute_force(backend, data):
    problem = parse_instance(data, "h")
    oracle = solve(problem, "brute")
    got = solve(problem, backend)
    _same_answer(oracle, got)
    if got.status is SolveStatus.OPTIMAL:
        assert got.bound <= got.objective + TOL
        assert got.bound >= oracle.objective - 1e-5  # a valid lower bound, and tight
        assert problem.violations(got.solution["selected"]) == []


@settings(max_examples=60, deadline=None)
@given(data=selection_instances(max_k=7), seed=st.integers(0, 2**16))
def test_permuting_task_ids_changes_nothing(data, seed):
    problem = parse_instance(data, "h")
    rng = np.random.default_rng(seed)
    sources = list(problem.sources)
    perm = list(rng.permutation(len(sources)))
    rename = {t: f"r{n}" for n, t in zip(perm, sources)}
    renamed = dict(data)
    renamed["tasks"] = ["T"] + [rename[t] for t in reversed(sources)]
    renamed["surrogate"] = {
        "intercept": data["surrogate"]["intercept"],
        "linear": {rename[t]: v for t, v in reversed(list(data["surrogate"]["linear"].items()))},
        "pairwise": [[rename[b], rename[a], v] for a, b, v in data["surrogate"]["pairwise"]],
    }
    if "constraints" in data:
        c = dict(data["constraints"])
        for key in ("must_include", "exclude"):
            if key in c:
                c[key] = [rename[t] for t in c[key]]
        if "costs" in c:
            c["costs"] = {rename[t]: v for t, v in c["costs"].items()}
        renamed["constraints"] = c
    other = parse_instance(renamed, "h2")
    for backend in ("highs", "brute"):
        a, b = solve(problem, backend), solve(other, backend)
        _same_answer(a, b)


@settings(max_examples=60, deadline=None)
@given(data=selection_instances(max_k=8), extra=st.sampled_from([0.5, 1, 3, 100]))
def test_larger_budget_is_never_worse(data, extra):
    if "constraints" not in data or "budget" not in data["constraints"]:
        data.setdefault("constraints", {})
        data["constraints"]["costs"] = {t: 1 for t in data["surrogate"]["linear"]}
        data["constraints"]["budget"] = 1
        if not data["surrogate"]["linear"]:
            return
    small = parse_instance(data, "a")
    data["constraints"]["budget"] = data["constraints"]["budget"] + extra
    large = parse_instance(data, "b")
    a, b = solve(small, "highs"), solve(large, "highs")
    if a.status is SolveStatus.OPTIMAL:
        assert b.status is SolveStatus.OPTIMAL
        assert b.objective <= a.objective + TOL


@pytest.mark.parametrize("backend", ["highs", "cpsat", "brute"])
def test_zero_time_limit_is_never_optimal(backend):
    problem = parse_instance(random_selection_dict(16, 0.3, seed=3), "z")
    result = solve(problem, backend, time_limit=0)
    assert result.status is not SolveStatus.OPTIMAL
    assert result.status in (SolveStatus.FEASIBLE, SolveStatus.NO_SOLUTION)


def test_time_limited_hard_instance_reports_gap_not_optimal():
    # Dense, strongly coupled: HiGHS cannot prove this in 0.5 s.
    problem = parse_instance(random_selection_dict(120, 1.0, pair_scale=0.5, seed=1), "hard")
    result = solve(problem, "highs", time_limit=0.5)
    assert result.status in (SolveStatus.FEASIBLE, SolveStatus.NO_SOLUTION)
    if result.status is SolveStatus.FEASIBLE:
        assert result.bound < result.objective
        assert result.gap > 0


@pytest.mark.parametrize("tiny", [1.1125369292536007e-308, 5e-324, 1e-12])
def test_tiny_coefficients_do_not_break_cpsat_scaling(tiny):
    # found by hypothesis: 1e9 / 1e-308 overflowed to infinity
    data = {"schema": 1, "kind": "selection", "target": "T", "tasks": ["T", "a", "b"],
            "surrogate": {"intercept": 0.0, "linear": {"a": tiny, "b": -tiny}, "pairwise": [["a", "b", tiny]]}}
    problem = parse_instance(data, "tiny")
    for backend in ("cpsat", "highs", "brute"):
        result = solve(problem, backend)
        assert result.status is SolveStatus.OPTIMAL
        assert result.objective == pytest.approx(solve(problem, "brute").objective, abs=1e-9)


def test_brute_force_refuses_large_inputs():
    from planner.status import SolverUnavailable

    problem = parse_instance(random_selection_dict(40, 0.1, seed=0), "big")
    with pytest.raises(SolverUnavailable, match="refuses more than"):
        solve(problem, "brute")
    # auto never picks it there
    assert solve(problem).solver == "highs"


def test_threshold_rule_is_algorithm_1():
    data = random_selection_dict(10, 0.0, seed=5)
    data["threshold"] = 0.1
    problem = parse_instance(data, "t")
    result = solve(problem)
    expected = sorted(t for t, v in data["surrogate"]["linear"].items() if v < 0.1)
    assert sorted(result.solution["threshold"]["selected"]) == expected
    # with no pairwise terms and no constraints, the optimum is the set of negative scores
    assert sorted(result.solution["selected"]) == sorted(t for t, v in data["surrogate"]["linear"].items() if v < 0)


def test_fixings_hold_in_every_optimum():
    rng = np.random.default_rng(0)
    for seed in range(30):
        data = random_selection_dict(10, 0.4, pair_scale=0.4, seed=seed)
        problem = parse_instance(data, "f")
        on, off = problem.fixings()
        best = solve(problem, "brute")
        x = problem.mask_of(best.solution["selected"])
        assert all(x[i] == 1 for i in on) and all(x[i] == 0 for i in off)
        off_result = solve(problem, "highs", options={"fixings": False})
        assert math.isclose(off_result.objective, best.objective, abs_tol=1e-9)
    del rng


def test_objective_is_recomputed_and_infeasible_plans_are_caught():
    from planner.solve import _verified
    from planner.status import InfeasibleSolution, SolveResult

    problem = parse_instance(random_selection_dict(5, 0.5, seed=2, constraints={"max_size": 1}), "v")
    lying = SolveResult(SolveStatus.OPTIMAL, objective=-1e9, solution={"selected": list(problem.sources[:2])}, solver="x")
    with pytest.raises(InfeasibleSolution, match="max_size"):
        _verified(problem, lying)
    honest = SolveResult(SolveStatus.OPTIMAL, objective=-1e9, solution={"selected": [problem.sources[0]]}, solver="x")
    checked = _verified(problem, honest)
    assert checked.objective == pytest.approx(problem.predict([problem.sources[0]]))


def test_infeasible_instance_is_proven_by_every_backend():
    data = random_selection_dict(6, 0.2, seed=4, constraints={"min_size": 3, "costs": {f"s{i:03d}": 2 for i in range(6)}, "budget": 5})
    problem = parse_instance(data, "inf")
    for backend in ("brute", "highs", "cpsat"):
        assert solve(problem, backend).status is SolveStatus.INFEASIBLE


def test_same_seed_same_result():
    problem = parse_instance(random_selection_dict(60, 0.1, seed=9), "s")
    a, b = solve(problem, "highs"), solve(problem, "highs")
    assert a.solution["selected"] == b.solution["selected"] and a.objective == b.objective
