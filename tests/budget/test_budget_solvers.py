"""Budget solvers: dp == brute == highs on random small instances, coupled highs == brute,
monotone in the budget, the greedy counterexample, cost units, refusals and time limits."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.budget.dp import concave_runs, cost_units, dp_sweep, maxplus_concave
from planner.instance import load_instance, parse_instance
from planner.budget.baselines import greedy
from planner.solve import solve
from planner.status import SolveStatus, SolverUnavailable

ROOT = Path(__file__).resolve().parents[2]
NO_BASELINES = {"baselines": False}


def random_instance(rng: np.random.Generator, size: int, coupled: bool = False, budget: float | None = None):
    tasks = []
    for i in range(size):
        model = rng.choice(["geometric", "power", "table"])
        n0 = int(rng.integers(0, 5))
        if model == "geometric":
            info = {"model": "geometric", "beta": float(rng.uniform(0.3, 0.99))}
        elif model == "power":
            info = {"model": "power", "a": float(rng.uniform(0.5, 5)), "b": float(rng.uniform(0.1, 2))}
            n0 = max(n0, 1)
        else:  # any shape, concave or not, rising or falling
            xs = np.cumsum(rng.uniform(0.5, 4, size=int(rng.integers(1, 5))))
            ys = rng.uniform(-1, 3, size=len(xs))
            info = {"model": "table", "points": [[0, 0]] + [[float(x), float(y)] for x, y in zip(xs, ys)]}
        task = {"id": f"t{i}", "cost": float(rng.choice([1, 2, 3, 0.5, 1.5, 4])), "initial": n0,
                "info": info, "weight": float(rng.uniform(0, 2))}
        if rng.random() < 0.3:
            task["max"] = int(rng.integers(0, 6))
        tasks.append(task)
    data = {"schema": 1, "kind": "budget", "name": "random",
            "budget": float(rng.integers(0, 15)) if budget is None else budget, "tasks": tasks}
    if coupled:
        r = rng.uniform(0, 1.2, size=(size, size)) * (rng.random((size, size)) < 0.6)
        if rng.random() < 0.3:
            r = np.round(r)  # whole-number coupling: e_i integral, the secant cuts apply
        np.fill_diagonal(r, 1)
        data["relatedness"] = r.tolist()
    return parse_instance(data)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9)


def test_dp_equals_brute_and_milp_on_random_small_instances():
    rng = np.random.default_rng(20230823)
    for _ in range(60):
        p = random_instance(rng, int(rng.integers(1, 5)))
        oracle = solve(p, "brute", options=NO_BASELINES)
        assert oracle.status is SolveStatus.OPTIMAL
        for name in ("dp", "highs"):
            res = solve(p, name, options=NO_BASELINES)
            assert res.status is SolveStatus.OPTIMAL, (name, res.message)
            assert close(res.objective, oracle.objective), (name, res.solution, oracle.solution)
            assert res.bound >= res.objective - 1e-12


def test_coupled_milp_equals_brute():
    rng = np.random.default_rng(7)
    for _ in range(40):
        p = random_instance(rng, int(rng.integers(2, 5)), coupled=True)
        oracle = solve(p, "brute", options=NO_BASELINES)
        res = solve(p, "highs", options=NO_BASELINES)
        assert res.status is SolveStatus.OPTIMAL, res.message
        assert close(res.objective, oracle.objective), (res.solution, oracle.solution)
        assert res.bound >= res.objective and res.gap <= 1e-6


def test_dp_equals_milp_on_a_larger_instance():
    rng = np.random.default_rng(3)
    tasks = [{"id": f"t{i}", "cost": int(rng.integers(1, 9)), "initial": int(rng.integers(1, 30)),
              "info": ({"model": "geometric", "beta": float(rng.uniform(0.95, 0.999))} if i % 2 else
                       {"model": "power", "a": float(rng.uniform(1, 4)), "b": float(rng.uniform(0.2, 1))})}
             for i in range(6)]
    p = parse_instance({"schema": 1, "kind": "budget", "budget": 900, "tasks": tasks})
    dp = solve(p, "dp", options=NO_BASELINES)
    milp = solve(p, "highs", options=NO_BASELINES)
    assert dp.status is milp.status is SolveStatus.OPTIMAL
    assert math.isclose(dp.objective, milp.objective, rel_tol=1e-7)
    assert dp.objective >= milp.objective - 1e-12  # the DP is exact


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), coupled=st.booleans())
def test_optimum_never_falls_as_the_budget_grows(seed, coupled):
    rng = np.random.default_rng(seed)
    p = random_instance(rng, int(rng.integers(1, 4)), coupled=coupled, budget=0.0)
    solver = "highs" if coupled else "dp"
    previous = -math.inf
    for b in (0, 1.5, 3, 4, 7.5, 12):
        value = solve(p.with_budget(b), solver, options=NO_BASELINES).objective
        assert value >= previous - 1e-9 * max(1.0, abs(previous))
        previous = value


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_permuting_tasks_changes_nothing(seed):
    rng = np.random.default_rng(seed)
    p = random_instance(rng, 3, coupled=bool(seed % 2))
    data = p.to_dict()
    order = rng.permutation(3)
    data["tasks"] = [data["tasks"][k] for k in order]
    if "relatedness" in data:
        r = np.asarray(data["relatedness"])
        data["relatedness"] = r[np.ix_(order, order)].tolist()
    q = parse_instance(data)
    solver = "dp" if p.separable else "highs"
    assert close(solve(p, solver, options=NO_BASELINES).objective, solve(q, solver, options=NO_BASELINES).objective)


def test_greedy_counterexample_costs_4_8_5_budget_45():
    p = load_instance(ROOT / "instances" / "budget_greedy_counterexample.json")
    assert [t.cost for t in p.tasks] == [4, 8, 5] and p.budget == 45
    g = greedy(p)
    res = solve(p)
    assert res.solver == "dp" and res.status is SolveStatus.OPTIMAL
    assert g.tolist() == [4, 2, 2]
    assert res.solution["allocation"] == {"a": 2, "b": 4, "c": 1}
    assert p.objective(g) < res.objective - 1.0  # 21.504 against 22.792
    assert math.isclose(res.extra["baselines"]["greedy"]["objective"], p.objective(g))
    assert solve(p, "brute").objective == pytest.approx(res.objective)


def test_dp_reports_unit_and_unspent_money():
    p = parse_instance({"schema": 1, "kind": "budget", "budget": 10.3, "tasks": [
        {"id": "x", "cost": 0.5, "info": {"model": "geometric", "beta": 0.9}},
        {"id": "y", "cost": 0.75, "max": 3, "info": {"model": "geometric", "beta": 0.5}}]})
    units = cost_units(p)
    assert units.unit == 0.25 and units.costs == [2, 3] and units.capacity == 41
    res = solve(p, "dp")
    sol = res.solution
    assert sol["unit"] == 0.25 and sol["budget_units"] == 41
    assert math.isclose(sol["unspent"], 10.3 - sol["spent"])
    assert sol["unspent"] >= 0.05 - 1e-12  # 10.3 is not a multiple of 0.25: at least 0.05 stays
    assert close(res.objective, solve(p, "brute").objective)


def test_result_carries_baselines_and_is_never_worse():
    p = load_instance(ROOT / "instances" / "budget_geometric.json")
    res = solve(p)
    assert set(res.extra["baselines"]) == {"equal_money", "equal_count", "all_to_one", "greedy"}
    for entry in res.extra["baselines"].values():
        assert entry["objective"] <= res.objective + 1e-9
    out = res.to_dict(p.name, p.kind)
    assert out["solution"]["allocation"].keys() == set(p.task_ids)
    assert "baselines" in out


def test_auto_chooses_dp_for_separable_and_highs_for_coupled():
    assert solve(load_instance(ROOT / "instances" / "budget_table.json")).solver == "dp"
    res = solve(load_instance(ROOT / "instances" / "budget_coupled.json"))
    assert res.solver == "highs" and res.status is SolveStatus.OPTIMAL


def test_dp_refuses_coupled_and_huge_tables():
    coupled = load_instance(ROOT / "instances" / "budget_coupled.json")
    with pytest.raises(SolverUnavailable, match="separable"):
        solve(coupled, "dp")
    p = parse_instance({"schema": 1, "kind": "budget", "budget": 1e9, "tasks": [
        {"id": "x", "cost": 1, "info": {"model": "geometric", "beta": 0.9}}]})
    with pytest.raises(SolverUnavailable, match="cells"):
        solve(p, "dp")
    res = solve(p)  # auto falls back to highs
    assert res.solver == "highs" and res.status is SolveStatus.OPTIMAL and "dp" in res.message


def test_brute_refuses_large_cases():
    p = load_instance(ROOT / "instances" / "budget_geometric.json")
    with pytest.raises(SolverUnavailable, match="brute force would enumerate"):
        solve(p, "brute")


def test_time_limit_is_never_optimal():
    rng = np.random.default_rng(5)
    p = random_instance(rng, 4, coupled=True, budget=40.0)
    for name in ("highs", "brute", "dp"):
        q = p if name != "dp" else parse_instance({**p.to_dict(), "relatedness": None})
        res = solve(q, name, time_limit=0.0, options=NO_BASELINES)
        assert res.status is not SolveStatus.OPTIMAL
        if res.status.has_solution:
            q.evaluate(res.solution)


def test_zero_budget_and_zero_weight():
    p = parse_instance({"schema": 1, "kind": "budget", "budget": 0, "tasks": [
        {"id": "x", "cost": 1, "info": {"model": "geometric", "beta": 0.9}},
        {"id": "y", "cost": 1, "weight": 0, "info": {"model": "geometric", "beta": 0.9}}]})
    for name in ("dp", "highs", "brute"):
        res = solve(p, name)
        assert res.objective == 0 and res.solution["allocation"] == {"x": 0, "y": 0}
    q = p.with_budget(3)
    res = solve(q, "dp")
    assert res.solution["allocation"] == {"x": 3, "y": 0}  # no money wasted on a worthless task


def test_maxplus_matches_direct_convolution():
    rng = np.random.default_rng(11)
    for _ in range(30):
        size, step = int(rng.integers(1, 60)), int(rng.integers(1, 6))
        values = np.maximum.accumulate(rng.normal(size=size))
        g = np.cumsum(np.sort(rng.uniform(-0.5, 2, size=int(rng.integers(1, 20))))[::-1])
        g = np.r_[0.0, g]
        klo = int(rng.integers(0, len(g)))
        khi = int(rng.integers(klo, len(g)))
        best, choice = maxplus_concave(values, step, g, klo, khi)
        for c in range(size):
            cands = [values[c - k * step] + g[k] for k in range(klo, min(khi, c // step) + 1)]
            if not cands:
                assert best[c] == -np.inf
            else:
                assert math.isclose(best[c], max(cands), abs_tol=1e-12)
                assert math.isclose(values[c - choice[c] * step] + g[choice[c]], best[c], abs_tol=1e-12)


def test_concave_runs():
    g = np.asarray([0, 2, 3, 3.5, 6, 7, 7.2])  # slope rises at index 3
    assert concave_runs(g) == [(0, 3), (3, 6)]
    assert concave_runs(np.asarray([0, 1, 1.5])) == [(0, 2)]


def test_sweep_from_one_table_equals_separate_solves():
    p = load_instance(ROOT / "instances" / "budget_power.yaml")
    budgets = [0, 1, 2.5, 100, 777.5, 1500, 2000]
    values, labels, _ = dp_sweep(p, budgets)
    for b, v, n in zip(budgets, values, labels):
        res = solve(p.with_budget(b), "dp", options=NO_BASELINES)
        assert math.isclose(res.objective, v, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(p.objective(n), v, rel_tol=1e-12, abs_tol=1e-12)
        assert p.spent(n) <= b


def test_highs_warnings_stay_off_stdout():
    """HiGHS prints a warning on stdout (C level) when a cut with coefficients below 1e-9 is added to a
    persistent model, as the outer approximation can do; solves go through solve_quietly, so stdout
    keeps only what the program prints (``--json``: exactly one object)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import pyomo.environ as pe
        from pyomo.contrib.appsi.solvers import Highs
        from planner.pyomo_highs import solve_quietly
        m = pe.ConcreteModel()
        m.x = pe.Var(range(3), bounds=(0, 1))
        m.c = pe.Constraint(expr=m.x[1] + m.x[2] <= 1)
        m.o = pe.Objective(expr=m.x[0] + m.x[1], sense=pe.maximize)
        opt = Highs()
        opt.config.load_solution = False
        solve_quietly(opt, m)
        m.cuts = pe.ConstraintList()
        m.cuts.add(1e-10 * m.x[0] + 5e-11 * m.x[2] + m.x[1] <= 1)
        print("result", solve_quietly(opt, m).termination_condition.name)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "result optimal"
    assert "WARNING" in r.stderr  # HiGHS did warn: the test would notice a change there
