"""Selection as a MILP in Pyomo, solved by HiGHS.

Binary ``m.x[i]`` per source; each pairwise product x_i x_j becomes a continuous
``m.y[p]`` in [0, 1] with only the side of the McCormick envelope that the sign of theta_ij
needs (exact at binary x): theta_ij < 0 -> y <= x_i, y <= x_j; theta_ij > 0 -> y >= x_i + x_j - 1.
"""
from __future__ import annotations

import time

import pyomo.environ as pyo

from planner.pyomo_highs import run_highs
from planner.status import SolveResult, SolveStatus


def build_selection_model(problem, use_fixings: bool = True) -> pyo.ConcreteModel:
    m = pyo.ConcreteModel(name=f"selection:{problem.name}")
    k = problem.k
    pairs = [(i, j, v) for i, j, v in problem.pairwise if v != 0.0]
    idx = problem.index()
    fixed = {idx[t]: 1 for t in problem.must_include}
    fixed.update({idx[t]: 0 for t in problem.exclude})
    if use_fixings:
        forced_on, forced_off = problem.fixings()
        fixed.update({i: 1 for i in forced_on})
        fixed.update({i: 0 for i in forced_off})
        pairs = [(i, j, v) for i, j, v in pairs if i not in forced_off and j not in forced_off]
    m.TASKS = pyo.RangeSet(0, k - 1) if k else pyo.Set(initialize=[])
    m.PAIRS = pyo.RangeSet(0, len(pairs) - 1) if pairs else pyo.Set(initialize=[])

    def x_bounds(_m, i):
        return (fixed[i], fixed[i]) if i in fixed else (0, 1)

    m.x = pyo.Var(m.TASKS, domain=pyo.Binary, bounds=x_bounds)  # x_i = 1: source i is trained with the target
    m.y = pyo.Var(m.PAIRS, bounds=(0, 1))  # y_p = x_i * x_j for pair p
    m.pair_upper_i = pyo.Constraint(
        m.PAIRS, rule=lambda _m, p: _m.y[p] <= _m.x[pairs[p][0]] if pairs[p][2] < 0 else pyo.Constraint.Skip
    )
    m.pair_upper_j = pyo.Constraint(
        m.PAIRS, rule=lambda _m, p: _m.y[p] <= _m.x[pairs[p][1]] if pairs[p][2] < 0 else pyo.Constraint.Skip
    )
    m.pair_lower = pyo.Constraint(
        m.PAIRS,
        rule=lambda _m, p: _m.y[p] >= _m.x[pairs[p][0]] + _m.x[pairs[p][1]] - 1 if pairs[p][2] > 0 else pyo.Constraint.Skip,
    )
    size = sum(m.x[i] for i in m.TASKS) if k else 0
    if problem.min_size > 0:
        m.min_size = pyo.Constraint(expr=size >= problem.min_size)
    if problem.max_size is not None and k:
        m.max_size = pyo.Constraint(expr=size <= problem.max_size)
    if problem.costs is not None and k:
        m.budget_limit = pyo.Constraint(expr=sum(problem.costs[i] * m.x[i] for i in m.TASKS) <= problem.budget)
    m.g = pyo.Objective(
        expr=problem.intercept
        + sum(problem.linear[i] * m.x[i] for i in m.TASKS)
        + sum(pairs[p][2] * m.y[p] for p in m.PAIRS),
        sense=pyo.minimize,
    )
    return m


def solve_highs(problem, time_limit: float | None, options: dict) -> SolveResult:
    reason = problem.quick_infeasible_reason()
    if reason:
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs", message=reason)
    if problem.k == 0:
        return SolveResult(SolveStatus.OPTIMAL, solution=problem.make_solution([]), solver="highs",
                           bound=problem.intercept)
    start = time.perf_counter()
    m = build_selection_model(problem, use_fixings=bool(options.get("fixings", True)))
    if time_limit is not None:  # building a large model takes seconds: it counts against the limit
        time_limit = max(0.0, time_limit - (time.perf_counter() - start))
    out = run_highs(m, time_limit, "min", options)
    solution = None
    if out.has_solution and out.status.has_solution:
        solution = problem.make_solution([pyo.value(m.x[i]) for i in m.TASKS])
    return SolveResult(out.status, bound=out.bound, solution=solution, solver="highs", message=out.message)
