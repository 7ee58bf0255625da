"""The compact clique-partitioning model for partition problems with a derived value on many tasks
(``options["large_partition"] = "compact"``): pair variables instead of columns, warm-started by local
search (docs/formulations.md, "Grouping")."""
from __future__ import annotations

import numpy as np

from planner.grouping.common import Clock, result_from_chosen
from planner.grouping.heuristic import local_search
from planner.grouping.milp import _global_budget_violation, run_highs_pyomo
from planner.status import SolveResult, SolveStatus, SolverUnavailable


def build_partition_compact(problem):
    """Clique-partitioning model (no group labels, hence no symmetry to break).

    e[i,k] = 1 when tasks i < k share a group (triangle rows make "same group" transitive);
    u[i,s] = 1 when task i's group has s members; h[i] = task i's share of its group's value.
      size_def:    1 + sum_k e[i,k] = sum_s s u[i,s];   one_size: sum_s u[i,s] = 1
      group_count: sum_i sum_s u[i,s] / s <= K          (a group of s tasks counts s times 1/s)
      share[i,s]:  h[i] <= f(s) * (sum_k M[i][k] e[i,k] + d_i) + U[i,s] (1 - u[i,s])
    with f(s) = 1/s (pairwise_mean_by_size) or 1/(s-1) (tag / hoa), signed for min problems.
    """
    import pyomo.environ as pyo

    n = problem.n
    sign = 1.0 if problem.maximize else -1.0
    M = sign * np.asarray(problem.onto, dtype=float)
    include = problem.diagonal == "include"
    lo = max(problem.size_min, 2 if problem.rule == "tag" and not include else 1)
    hi = n if problem.size_max is None else min(n, problem.size_max)
    sizes = list(range(lo, hi + 1))
    if problem.max_groups is not None:
        sizes = [s for s in sizes if s * problem.max_groups >= 1]
    m = pyo.ConcreteModel(name=problem.name)
    m.TASKS = pyo.Set(initialize=range(n))
    m.PAIRS = pyo.Set(initialize=[(i, k) for i in range(n) for k in range(i + 1, n)], dimen=2)
    m.SIZES = pyo.Set(initialize=sizes)
    m.e = pyo.Var(m.PAIRS, domain=pyo.Binary)
    m.u = pyo.Var(m.TASKS, m.SIZES, domain=pyo.Binary)

    def e(i, k):
        return m.e[min(i, k), max(i, k)]

    def f(s):
        if problem.rule == "pairwise_mean_by_size" or include:
            return 1.0 / s
        return 1.0 / (s - 1) if s > 1 else 1.0

    def coeff_row(i):
        return [M[i][k] for k in range(n)]

    # share bounds: U[i,s] >= max over any group of h_i - f(s) * (its row sum at that group)
    pos = [sorted((M[i][k] for k in range(n) if k != i and M[i][k] > 0), reverse=True) for i in range(n)]
    neg = [sum(M[i][k] for k in range(n) if k != i and M[i][k] < 0) for i in range(n)]
    hmax = []
    for i in range(n):
        best = -np.inf
        for s in sizes:
            top = sum(pos[i][: s - 1])
            d = M[i][i] if (include or (problem.rule == "hoa" and s == 1)) else 0.0
            best = max(best, f(s) * (top + d) if s > 1 or include else d)
        hmax.append(best)
    m.h = pyo.Var(m.TASKS, bounds=lambda m, i: (None, hmax[i]))
    m.TRIPLES = pyo.Set(initialize=[(i, j, k) for i in range(n) for j in range(i + 1, n) for k in range(j + 1, n)], dimen=3)
    m.tri1 = pyo.Constraint(m.TRIPLES, rule=lambda m, i, j, k: m.e[i, j] + m.e[j, k] - m.e[i, k] <= 1)
    m.tri2 = pyo.Constraint(m.TRIPLES, rule=lambda m, i, j, k: m.e[i, j] + m.e[i, k] - m.e[j, k] <= 1)
    m.tri3 = pyo.Constraint(m.TRIPLES, rule=lambda m, i, j, k: m.e[i, k] + m.e[j, k] - m.e[i, j] <= 1)
    m.size_def = pyo.Constraint(m.TASKS, rule=lambda m, i: 1 + sum(e(i, k) for k in range(n) if k != i) == sum(s * m.u[i, s] for s in m.SIZES))
    m.one_size = pyo.Constraint(m.TASKS, rule=lambda m, i: sum(m.u[i, s] for s in m.SIZES) == 1)
    if problem.max_groups is not None:
        m.group_count = pyo.Constraint(expr=sum(m.u[i, s] / s for i in m.TASKS for s in m.SIZES) <= problem.max_groups)
    if problem.per_group_budgets:
        m.RES = pyo.Set(initialize=range(len(problem.per_group_budgets)))

        def group_res(m, i, r):
            name, cap = problem.per_group_budgets[r]
            amt = [dict(problem.task_resources[k]).get(name, 0.0) for k in range(n)]
            return amt[i] + sum(amt[k] * e(i, k) for k in range(n) if k != i) <= cap

        m.group_budget = pyo.Constraint(m.TASKS, m.RES, rule=group_res)

    def share(m, i, s):
        row = coeff_row(i)
        d = M[i][i] if (include or (problem.rule == "hoa" and s == 1)) else 0.0
        expr_min = f(s) * (neg[i] + d) if (s > 1 or include) else d
        big = hmax[i] - min(expr_min, 0.0 if s == 1 and not include else expr_min)
        big = max(big, 0.0) + 1e-6
        body = f(s) * (sum(row[k] * e(i, k) for k in range(n) if k != i) + d) if (s > 1 or include) else d
        return m.h[i] <= body + big * (1 - m.u[i, s])

    m.share = pyo.Constraint(m.TASKS, m.SIZES, rule=share)
    m.obj = pyo.Objective(expr=sum(m.h[i] for i in m.TASKS), sense=pyo.maximize)
    return m


def solve_partition_compact(problem, clock: Clock, options: dict) -> SolveResult:

    infeasible = _global_budget_violation(problem)
    if infeasible:
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs", message=infeasible)
    sign = 1.0 if problem.maximize else -1.0
    heur = None
    try:
        budget = clock.left()
        heur = local_search(problem, time_limit=min(5.0, 0.2 * budget) if budget is not None else 5.0, seed=0)
    except SolverUnavailable:
        heur = None
    m = build_partition_compact(problem)
    status, has_sol, bound, msg = run_highs_pyomo(m, clock, options)
    msg = "compact clique model; " + msg
    cands = []
    if has_sol and status.has_solution:
        groups = _groups_from_pairs(problem, m)
        cands = [problem.derived_candidate(g) for g in groups]
        if any(c is None for c in cands):
            cands = []
    if bound is not None:
        bound = sign * bound * problem.scale
    if heur is not None:
        hc = [problem.derived_candidate(g) for g in heur[0]]
        if not cands or problem.better(problem.evaluate(problem.make_solution(hc)), problem.evaluate(problem.make_solution(cands))):
            cands = hc
            if status is SolveStatus.OPTIMAL:
                status = SolveStatus.FEASIBLE  # pragma: no cover - an optimal MIP is never beaten
    if not cands:
        out_status = status if not status.has_solution else SolveStatus.NO_SOLUTION
        if status is SolveStatus.NO_SOLUTION or status is SolveStatus.UNKNOWN:
            out_status = status
        return SolveResult(out_status, bound=bound, solver="highs", message=msg)
    if status in (SolveStatus.NO_SOLUTION, SolveStatus.UNKNOWN):
        status = SolveStatus.FEASIBLE
    return result_from_chosen(problem, cands, status, bound, "highs", msg)


def _groups_from_pairs(problem, m) -> list[list[str]]:
    n = problem.n
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for (i, k) in m.PAIRS:
        if m.e[i, k].value is not None and m.e[i, k].value > 0.5:
            parent[find(i)] = find(k)
    groups: dict[int, list[str]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(problem.tasks[i])
    return list(groups.values())
