"""Pyomo + HiGHS models for grouping (docs/formulations.md, "Grouping"): budgeted facility location
for cover (:func:`build_cover`), set partitioning over candidate columns (:func:`build_partition_columns`),
with the shared
:func:`run_highs_pyomo` that maps HiGHS's outcome to the project's status."""
from __future__ import annotations

import math

from planner import interrupt
from planner.grouping.common import Clock, result_from_chosen, stdout_to_stderr
from planner.status import SolveResult, SolveStatus


def build_cover(problem, cands):
    """Budgeted facility location: y[c] opens candidate c, x[a,c] serves task a from c.

    max/min  scale * sum_{(a,c)} v[a,c] x[a,c]
    s.t.     sum_c x[a,c] = 1 (serve_once), x[a,c] <= y[c] (open_only),
             sum_c y[c] <= K (max_groups), sum_c r[c,res] y[c] <= B[res] (budget_limit).
    """
    import pyomo.environ as pyo

    m = pyo.ConcreteModel(name=problem.name)
    m.TASKS = pyo.Set(initialize=range(problem.n))
    m.CANDS = pyo.Set(initialize=range(len(cands)))
    pairs = [(problem.index[t], c) for c, cand in enumerate(cands) for t in cand.members]
    value = {(problem.index[t], c): v for c, cand in enumerate(cands) for t, v in zip(cand.members, cand.values)}
    m.PAIRS = pyo.Set(initialize=pairs, dimen=2)
    m.y = pyo.Var(m.CANDS, domain=pyo.Binary)
    m.x = pyo.Var(m.PAIRS, bounds=(0, 1))
    by_task: dict[int, list[int]] = {}
    for a, c in pairs:
        by_task.setdefault(a, []).append(c)
    missing = [problem.tasks[a] for a in range(problem.n) if a not in by_task]
    if missing:
        m._infeasible_reason = f"no admissible candidate contains task {missing[0]!r}"
        return m
    m.serve_once = pyo.Constraint(m.TASKS, rule=lambda m, a: sum(m.x[a, c] for c in by_task[a]) == 1)
    m.open_only = pyo.Constraint(m.PAIRS, rule=lambda m, a, c: m.x[a, c] <= m.y[c])
    _common_rows(m, problem, cands)
    sense = pyo.maximize if problem.maximize else pyo.minimize
    m.obj = pyo.Objective(expr=problem.scale * sum(value[p] * m.x[p] for p in pairs), sense=sense)
    return m


def build_partition_columns(problem, cands):
    """Set partitioning: y[c] = 1 when candidate c is a group; every task in exactly one chosen group."""
    import pyomo.environ as pyo

    m = pyo.ConcreteModel(name=problem.name)
    m.TASKS = pyo.Set(initialize=range(problem.n))
    m.CANDS = pyo.Set(initialize=range(len(cands)))
    m.y = pyo.Var(m.CANDS, domain=pyo.Binary)
    by_task: dict[int, list[int]] = {}
    for c, cand in enumerate(cands):
        for t in cand.members:
            by_task.setdefault(problem.index[t], []).append(c)
    missing = [problem.tasks[a] for a in range(problem.n) if a not in by_task]
    if missing:
        m._infeasible_reason = f"no admissible candidate contains task {missing[0]!r}"
        return m
    m.cover_once = pyo.Constraint(m.TASKS, rule=lambda m, a: sum(m.y[c] for c in by_task[a]) == 1)
    _common_rows(m, problem, cands)
    sense = pyo.maximize if problem.maximize else pyo.minimize
    m.obj = pyo.Objective(expr=problem.scale * sum(cand.total * m.y[c] for c, cand in enumerate(cands)), sense=sense)
    return m


def _common_rows(m, problem, cands) -> None:
    import pyomo.environ as pyo

    if problem.max_groups is not None and problem.max_groups < len(cands):
        m.max_groups = pyo.Constraint(expr=sum(m.y[c] for c in m.CANDS) <= problem.max_groups)
    if problem.budgets:
        m.RESOURCES = pyo.Set(initialize=range(len(problem.budgets)))

        def budget_rule(m, r):
            res, cap = problem.budgets[r]
            terms = [cand.resource(res) * m.y[c] for c, cand in enumerate(cands) if cand.resource(res)]
            return pyo.Constraint.Feasible if not terms else sum(terms) <= cap

        m.budget_limit = pyo.Constraint(m.RESOURCES, rule=budget_rule)


def run_highs_pyomo(m, clock: Clock, options: dict, gap: float = 0.0):
    """Solve a Pyomo model with HiGHS; returns (status, incumbent values loaded?, bound, message)."""
    from pyomo.contrib.solver.common.factory import SolverFactory
    from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

    solver = SolverFactory("highs")
    opts = {"mip_rel_gap": gap, "mip_abs_gap": 0.0 if gap == 0.0 else 1e-6, "threads": int(options.get("threads", 1))}
    kwargs = dict(load_solutions=False, raise_exception_on_nonoptimal_result=False, solver_options=opts)
    left = interrupt.shortened(clock.left())
    if left is not None:
        kwargs["time_limit"] = max(left, 0.01)
    with stdout_to_stderr(), interrupt.highs_interruptible(lambda: getattr(solver, "_solver_model", None)):
        res = solver.solve(m, **kwargs)
    tc, ss = res.termination_condition, res.solution_status
    has_sol = ss in (SolutionStatus.feasible, SolutionStatus.optimal)
    if has_sol:
        res.solution_loader.load_vars()
    bound = res.objective_bound
    bound = None if bound is None or not math.isfinite(bound) else float(bound)
    if tc == TerminationCondition.convergenceCriteriaSatisfied and has_sol:
        status = SolveStatus.OPTIMAL if gap == 0.0 else SolveStatus.FEASIBLE
    elif tc in (TerminationCondition.maxTimeLimit, TerminationCondition.iterationLimit,
                TerminationCondition.interrupted, TerminationCondition.objectiveLimit):
        status = SolveStatus.FEASIBLE if has_sol else SolveStatus.NO_SOLUTION
    elif tc in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        status = SolveStatus.INFEASIBLE  # every grouping model is bounded
    elif tc == TerminationCondition.unbounded:  # pragma: no cover - bounded models
        status = SolveStatus.UNBOUNDED
    elif tc == TerminationCondition.error:
        status = SolveStatus.ERROR
    else:
        status = SolveStatus.FEASIBLE if has_sol else SolveStatus.UNKNOWN
    return status, has_sol, bound, f"highs: {tc.name}"


def _solve_pyomo(problem, m, cands, clock: Clock, options: dict) -> SolveResult:
    reason = getattr(m, "_infeasible_reason", None)
    if reason:
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs", message=reason)
    status, has_sol, bound, msg = run_highs_pyomo(m, clock, options)
    if not has_sol or not status.has_solution:
        return SolveResult(status, bound=None, solver="highs", message=msg)
    chosen = [cands[c] for c in m.CANDS if m.y[c].value is not None and m.y[c].value > 0.5]
    return result_from_chosen(problem, chosen, status, bound, "highs", msg,
                              extra={"columns": len(cands)})


def _global_budget_violation(problem) -> str | None:
    """With derived candidates a group's resources add over its members, so in partition mode the
    total over all groups is the same for every partition: check it once."""
    for res, cap in problem.budgets:
        total = sum(dict(r).get(res, 0.0) for r in problem.task_resources)
        if total > cap * (1 + 1e-9) + 1e-12:
            return f"resource {res!r}: every partition uses {total:g}, over the budget {cap:g}"
    return None


# ---------------------------------------------------------------------- compact model
