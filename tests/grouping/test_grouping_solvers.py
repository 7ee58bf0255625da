"""Grouping backends against naive oracles; invariances; matrix orientation; diagonal; time limits."""
from __future__ import annotations

import copy
import itertools
import random

import numpy as np
import pytest

from planner.instance import parse_instance
from planner.grouping.problem import problem_from_affinity
from planner.grouping.schema import instance_from_affinity
from planner.solve import solve
from planner.status import SolveStatus, SolverUnavailable

EXACT = ["brute", "highs", "cpsat"]
TOL = 1e-6


# ---------------------------------------------------------------------- naive oracles (independent of the backends)
def oracle_cover(data: dict) -> float | None:
    """Every subset of candidates (up to max_groups) that covers all tasks within the budgets."""
    p = parse_instance(data)
    cands = p.candidate_list()
    K = p.max_groups or len(cands)
    best = None
    for k in range(1, min(K, len(cands)) + 1):
        for combo in itertools.combinations(cands, k):
            if any(sum(c.resource(r) for c in combo) > cap + 1e-9 for r, cap in p.budgets):
                continue
            vals = []
            for t in p.tasks:
                vs = [c.value_of(t) for c in combo if t in c.members]
                if not vs:
                    break
                vals.append(max(vs) if p.maximize else min(vs))
            else:
                v = sum(vals) * p.scale
                if best is None or p.better(v, best):
                    best = v
    return best


def set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        yield [[first]] + part
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]


def oracle_partition(data: dict) -> float | None:
    p = parse_instance(data)
    best = None
    for part in set_partitions(list(p.tasks)):
        if p.max_groups is not None and len(part) > p.max_groups:
            continue
        options = []
        for block in part:
            if p.derived:
                c = p.derived_candidate(block)
                opts = [c] if c is not None and p.admissible(c) else []
            else:
                opts = [c for c in p.candidate_list() if set(c.members) == set(block)]
            if not opts:
                break
            options.append(opts)
        else:
            for combo in itertools.product(*options):
                if any(sum(c.resource(r) for c in combo) > cap + 1e-9 for r, cap in p.budgets):
                    continue
                v = sum(c.total for c in combo) * p.scale
                if best is None or p.better(v, best):
                    best = v
    return best


def random_candidates(rng: random.Random, n: int, m: int, mode: str, sense: str) -> dict:
    tasks = [f"t{i}" for i in range(n)]
    cands = []
    for i in range(m):
        mem = rng.sample(tasks, rng.randint(1, min(4, n)))
        cands.append({"id": f"c{i}", "members": mem,
                      "value": {t: round(rng.uniform(-1, 1), 2) for t in mem},
                      "resources": {"mem": rng.randint(1, 4), "hours": round(rng.uniform(0.5, 2), 1)}})
    for t in tasks:  # singletons keep most instances feasible
        cands.append({"id": f"s_{t}", "members": [t], "value": {t: round(rng.uniform(-0.5, 0.5), 2)},
                      "resources": {"mem": 1, "hours": 0.5}})
    data = {"schema": 1, "kind": "grouping", "name": "rand", "sense": sense, "mode": mode,
            "aggregate": rng.choice(["sum", "mean"]), "tasks": tasks, "candidates": cands,
            "constraints": {"max_groups": rng.randint(2, n),
                            "budgets": [{"resource": "mem", "max": rng.randint(n, 3 * n)}],
                            "per_group_budgets": [{"resource": "hours", "max": rng.choice([1.5, 2.5, 9.0])}],
                            "group_size": {"min": 1, "max": rng.choice([2, 3, 4])}}}
    return data


def agree(data: dict, expected: float | None, solvers=EXACT) -> None:
    p = parse_instance(data)
    for s in solvers:
        r = solve(p, s, time_limit=30)
        if expected is None:
            assert r.status is SolveStatus.INFEASIBLE, (s, r.status, r.message)
            continue
        assert r.status.has_solution, (s, r.status, r.message)
        assert r.objective == pytest.approx(expected, abs=TOL), (s, r.message)
        if r.status is SolveStatus.OPTIMAL:
            assert r.bound == pytest.approx(expected, abs=1e-5)
        else:  # CP-SAT with rounded values reports feasible with a bound on the right side
            assert s == "cpsat"
            assert p.better(r.bound + (1e-9 if p.maximize else -1e-9), r.objective) or abs(r.bound - r.objective) < 1e-5


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["cover", "partition"])
def test_exact_backends_match_oracle_on_random_candidates(seed, mode):
    rng = random.Random(1000 * seed + (mode == "cover"))
    data = random_candidates(rng, n=rng.randint(3, 6), m=rng.randint(4, 9), mode=mode, sense=rng.choice(["min", "max"]))
    expected = oracle_cover(data) if mode == "cover" else oracle_partition(data)
    agree(data, expected)


def random_matrix(rng: np.random.Generator, n: int, symmetric: bool = False) -> list[list[float]]:
    M = np.round(rng.normal(size=(n, n)), 3)
    if symmetric:
        M = np.round((M + M.T) / 2, 3)
    return M.tolist()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rule", ["pairwise_mean_by_size", "tag", "hoa"])
def test_partition_with_derived_values_matches_oracle(seed, rule):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 8))
    tasks = [f"t{i}" for i in range(n)]
    res = {t: {"gpu": float(rng.integers(1, 4))} for t in tasks}
    data = instance_from_affinity(
        tasks, random_matrix(rng, n), rule=rule, sense=str(rng.choice(["min", "max"])),
        max_groups=int(rng.integers(2, 4)), group_size=(1 if rule != "tag" else 2, int(rng.integers(3, n + 1))),
        task_resources=res, per_group_budgets={"gpu": 7.0}, diagonal=str(rng.choice(["ignore", "include"])),
    )
    expected = oracle_partition(data)
    agree(data, expected)
    # the column-generation path and the CP-SAT slot model agree with the oracle too
    p = parse_instance(data)
    if expected is not None:
        r = solve(p, "highs", 30, {"column_limit": 0})
        assert r.objective == pytest.approx(expected, abs=TOL), r.message
        assert r.status is SolveStatus.OPTIMAL
        r = solve(p, "cpsat", 30, {"column_limit": 0})
        assert r.objective == pytest.approx(expected, abs=1e-3), r.message


@pytest.mark.parametrize("rule", ["tag", "hoa"])
def test_cover_with_derived_values_matches_oracle(rule):
    rng = np.random.default_rng(7)
    tasks = [f"t{i}" for i in range(6)]
    data = instance_from_affinity(tasks, random_matrix(rng, 6), mode="cover", rule=rule, sense="max",
                                  aggregate="mean", max_groups=2)
    agree(data, oracle_cover(data))


def test_compact_clique_model_matches_oracle_on_a_small_instance():
    rng = np.random.default_rng(3)
    data = instance_from_affinity([f"t{i}" for i in range(6)], random_matrix(rng, 6, symmetric=True), max_groups=3)
    r = solve(parse_instance(data), "highs", 30, {"column_limit": 0, "cg_max_tasks": 0, "large_partition": "compact"})
    assert r.status is SolveStatus.OPTIMAL
    assert r.objective == pytest.approx(oracle_partition(data), abs=TOL)


# ---------------------------------------------------------------------- invariances
def _objective(data, solver="highs"):
    r = solve(parse_instance(data), solver, 30)
    return r.objective


@pytest.mark.parametrize("mode", ["cover", "partition"])
def test_task_and_candidate_order_and_duplicates_change_nothing(mode):
    rng = random.Random(42 if mode == "cover" else 43)
    data = random_candidates(rng, n=5, m=8, mode=mode, sense="max")
    base = _objective(data)
    shuffled = copy.deepcopy(data)
    rng.shuffle(shuffled["tasks"])
    rng.shuffle(shuffled["candidates"])
    for c in shuffled["candidates"]:
        rng.shuffle(c["members"])
    assert _objective(shuffled) == pytest.approx(base, abs=TOL)
    dup = copy.deepcopy(data)
    dup["candidates"] += [dict(c, id=c["id"] + "_copy") for c in data["candidates"]]
    for s in EXACT:
        assert _objective(dup, s) == pytest.approx(base, abs=TOL)


def test_permuting_an_affinity_matrix_with_its_tasks_changes_nothing():
    rng = np.random.default_rng(5)
    n = 7
    tasks = [f"t{i}" for i in range(n)]
    M = np.array(random_matrix(rng, n))
    base = solve(problem_from_affinity(tasks, M.tolist(), max_groups=3), "highs").objective
    perm = rng.permutation(n)
    P = M[np.ix_(perm, perm)]
    again = solve(problem_from_affinity([tasks[i] for i in perm], P.tolist(), max_groups=3), "highs").objective
    assert again == pytest.approx(base, abs=TOL)


def test_matrix_orientation():
    """An asymmetric matrix: 'from' with the transpose equals 'onto' with the matrix, and the
    transpose under the same convention is a different problem with a different answer."""
    tasks = ["a", "b", "c", "d"]
    # b helps a a lot, a hurts b a lot (onto: M[a][b] = effect of b onto a)
    M = [[0, 5, -1, -1], [-6, 0, 1, 0], [-1, 1, 0, 2], [0, -1, 2, 0]]
    T = [list(r) for r in zip(*M)]
    onto = problem_from_affinity(tasks, M, mode="cover", rule="tag", max_groups=2)
    frm = problem_from_affinity(tasks, T, mode="cover", rule="tag", max_groups=2, convention="from")
    swapped = problem_from_affinity(tasks, T, mode="cover", rule="tag", max_groups=2)
    r1, r2, r3 = (solve(p, "brute") for p in (onto, frm, swapped))
    assert r1.objective == pytest.approx(r2.objective)
    assert r1.solution["groups"] == r2.solution["groups"]
    assert r3.objective != pytest.approx(r1.objective)
    # value of a in {a, b} is M[a][b] = 5 in the onto orientation
    assert onto.task_value("a", ["a", "b"]) == 5
    assert swapped.task_value("a", ["a", "b"]) == -6


def test_diagonal_policy():
    tasks = ["a", "b", "c"]
    M = [[10, 1, 0], [1, 10, 0], [0, 0, 10]]
    ignore = problem_from_affinity(tasks, M, rule="pairwise_mean_by_size", max_groups=3)
    include = problem_from_affinity(tasks, M, rule="pairwise_mean_by_size", max_groups=3, diagonal="include")
    g = ["a", "b"]
    assert ignore.derived_candidate(g).total == pytest.approx(2 / 2)
    assert include.derived_candidate(g).total == pytest.approx((2 + 20) / 2)
    # ignore: singletons are worth 0; include: a singleton is worth its diagonal
    assert ignore.derived_candidate(["c"]).total == 0
    assert include.derived_candidate(["c"]).total == 10
    # tag ignores the diagonal and has no singletons; with include a singleton is worth M[a][a]
    tag = problem_from_affinity(tasks, M, mode="cover", rule="tag", max_groups=2)
    assert tag.derived_candidate(["c"]) is None
    tag_inc = problem_from_affinity(tasks, M, mode="cover", rule="tag", max_groups=2, diagonal="include")
    assert tag_inc.task_value("c", ["c"]) == 10
    for p in (ignore, include, tag, tag_inc):
        vals = {s: solve(p, s).objective for s in EXACT}
        assert max(vals.values()) - min(vals.values()) < 1e-5, vals


def test_hoa_rule_uses_single_task_loss_for_singletons():
    tasks = ["a", "b", "c"]
    M = [[0.5, 0.4, 0.7], [0.3, 0.2, 0.25], [0.9, 0.8, 0.6]]
    p = problem_from_affinity(tasks, M, mode="cover", rule="hoa", sense="min", max_groups=3)
    assert p.task_value("a", ["a"]) == 0.5
    assert p.task_value("a", ["a", "b", "c"]) == pytest.approx((0.4 + 0.7) / 2)


# ---------------------------------------------------------------------- limits and statuses
def test_time_limit_is_never_reported_optimal():
    rng = np.random.default_rng(11)
    n = 40
    M = rng.normal(size=(n, n))
    p = problem_from_affinity([f"t{i}" for i in range(n)], ((M + M.T) / 2).tolist(), max_groups=5)
    for s in ("highs", "cpsat", "local"):
        r = solve(p, s, time_limit=1.0)
        assert r.status in (SolveStatus.FEASIBLE, SolveStatus.NO_SOLUTION), (s, r.status)
        if r.status is SolveStatus.FEASIBLE:
            assert r.bound is None or r.bound >= r.objective - 1e-9


def test_brute_refuses_large_inputs():
    p = problem_from_affinity([f"t{i}" for i in range(14)], np.zeros((14, 14)).tolist(), max_groups=3)
    with pytest.raises(SolverUnavailable, match="brute force"):
        solve(p, "brute")


def test_infeasible_instances():
    data = {"schema": 1, "kind": "grouping", "name": "x", "sense": "max", "mode": "cover", "tasks": ["a", "b", "c"],
            "candidates": [{"id": "ab", "members": ["a", "b"], "value": {"a": 1, "b": 1}},
                           {"id": "c", "members": ["c"], "value": {"c": 1}}],
            "constraints": {"max_groups": 1}}
    for s in EXACT:
        assert solve(parse_instance(data), s).status is SolveStatus.INFEASIBLE
    tag = problem_from_affinity(["a", "b", "c"], np.ones((3, 3)).tolist(), rule="tag", max_groups=3, group_size=(None, 1))
    for s in EXACT:
        assert solve(tag, s).status is SolveStatus.INFEASIBLE


def test_heuristics_are_feasible_with_a_valid_bound():
    rng = np.random.default_rng(2)
    n = 12
    M = rng.normal(size=(n, n))
    p = problem_from_affinity([f"t{i}" for i in range(n)], ((M + M.T) / 2).tolist(), max_groups=4, group_size=(2, 5))
    exact = solve(p, "highs", 30)
    assert exact.status is SolveStatus.OPTIMAL
    for s in ("local", "spectral"):
        r = solve(p, s, time_limit=1.0)
        assert r.status is SolveStatus.FEASIBLE
        assert r.objective <= exact.objective + 1e-9
        assert r.bound >= exact.objective - 1e-9
        assert r.gap is not None


def test_evaluate_rejects_broken_solutions():
    from planner.status import InfeasibleSolution

    data = random_candidates(random.Random(3), n=4, m=5, mode="partition", sense="max")
    p = parse_instance(data)
    r = solve(p, "highs")
    sol = r.solution
    with pytest.raises(InfeasibleSolution, match="not in any group"):
        p.evaluate({"groups": sol["groups"][1:]} if len(sol["groups"]) > 1 else {"groups": []})
    with pytest.raises(InfeasibleSolution, match="unknown task"):
        p.evaluate({"groups": sol["groups"] + [["zz"]]})
    with pytest.raises(InfeasibleSolution):
        p.evaluate({"groups": sol["groups"] + [sol["groups"][0]]})
