"""OR-Tools CP-SAT models for grouping.

CP-SAT works on integers: every value v is replaced by round(v * S) for a power of ten S chosen so
the largest scaled objective stays below 2^53 / 4; resources likewise, rounded so a solution
CP-SAT accepts never breaks a budget (amounts up, budgets down) unless they are exact at that
scale. The rounding error of the objective, at most (number of rounded terms in any solution)
* 0.5 / S, is stated in ``result.message`` and added to the bound on the unfavourable side.

* cover: y[c] (open), x[a,c] (a served by c) with x <= y, one server per task;
* partition over candidates: set partitioning;
* partition with a derived value and too many subsets to list: group slots g = 0..K-1,
  z[a,g] (a in slot g) with symmetry breaking (task a only in slots <= a; a slot opens only after
  the previous one holds a smaller task), pair literals and the group value as
  value[g] * size[g] <= P[g] (an integer division, one more unit of rounding per group).
"""
from __future__ import annotations

import math

from planner import interrupt
from planner.grouping.common import Clock, result_from_chosen
from planner.scaling import exact_integer_scale
from planner.scaling import map_cpsat_status as _status_map
from planner.status import SolveResult, SolveStatus

COLUMN_LIMIT = 60_000
MAX_SCALED = 2**53 / 4


def _scale_for(values, count: int, digits: int = 6) -> float:
    big = max((abs(v) for v in values), default=1.0) or 1.0
    scale = 10.0 ** digits
    while scale > 1 and big * scale * max(count, 1) > MAX_SCALED:
        scale /= 10.0
    return scale


def _exact_scale(values, max_digits: int = 6) -> float | None:
    s = exact_integer_scale(values, max_digits)
    return None if s is None else float(s)


def solve_cpsat(problem, time_limit: float | None, options: dict) -> SolveResult:
    from ortools.sat.python import cp_model

    clock = Clock(time_limit)
    if problem.mode == "partition" and problem.derived and problem.derived_count() > int(options.get("column_limit", COLUMN_LIMIT)):
        return _solve_slots(problem, clock, options)
    cands = problem.candidate_list()
    if problem.mode == "cover" and problem.max_groups == 1:  # exact reduction: one group holds every task
        cands = [c for c in cands if len(c.members) == problem.n]
    model = cp_model.CpModel()
    sign = 1.0 if problem.maximize else -1.0
    y = [model.NewBoolVar(f"open[{c.id}]") for c in cands]
    by_task: dict[str, list[int]] = {t: [] for t in problem.tasks}
    for j, c in enumerate(cands):
        for t in c.members:
            by_task[t].append(j)
    for t, js in by_task.items():
        if not js:
            return SolveResult(SolveStatus.INFEASIBLE, solver="cpsat", message=f"no admissible candidate contains task {t!r}")
    terms: list[tuple[float, object]] = []
    if problem.mode == "cover":
        all_vals = [v for c in cands for v in c.values]
        scale = _pick_scale(all_vals, problem.n)
        for t, js in by_task.items():
            xs = []
            for j in js:
                x = model.NewBoolVar(f"serve[{t},{cands[j].id}]")
                model.AddImplication(x, y[j])
                xs.append(x)
                terms.append((cands[j].value_of(t), x))
            model.AddExactlyOne(xs)
        # one rounded term per task is active in any solution
        err_terms = problem.n
    else:
        scale = _pick_scale([c.total for c in cands], problem.n)
        for t, js in by_task.items():
            model.AddExactlyOne([y[j] for j in js])
        terms = [(c.total, y[j]) for j, c in enumerate(cands)]
        err_terms = problem.n if problem.max_groups is None else min(problem.n, problem.max_groups)
    if problem.max_groups is not None and problem.max_groups < len(cands):
        model.Add(sum(y) <= problem.max_groups)
    notes = []
    for res, cap in problem.budgets:
        amounts = [c.resource(res) for c in cands]
        s = _exact_scale(amounts + [cap])
        if s is None:
            s = 1e6
            notes.append(f"resource {res!r} rounded conservatively at 1e-6")
        model.Add(sum(int(math.ceil(a * s - 1e-9)) * y[j] for j, a in enumerate(amounts) if a) <= int(math.floor(cap * s + 1e-9)))
    max_err = 0.0
    obj = []
    for v, var in terms:
        iv = round(sign * v * scale)
        max_err = max(max_err, abs(sign * v * scale - iv))
        obj.append((iv, var))
    model.Maximize(sum(c * v for c, v in obj))
    err = err_terms * max_err / scale * problem.scale
    if clock.over():  # the limit went on building the model: CP-SAT would still take its presolve time
        return SolveResult(SolveStatus.NO_SOLUTION, solver="cpsat", message="time limit reached while building the model")
    solver = _solver(cp_model, clock, options)
    code = interrupt.cpsat_solve(solver, model)
    has = code in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    status = _status_map(cp_model, code, has)
    notes.insert(0, f"cp-sat {solver.StatusName(code)}; objective scaled by {scale:g}, rounding error <= {err:.3g}")
    if not has:
        return SolveResult(status, solver="cpsat", message="; ".join(notes))
    bound = sign * (solver.BestObjectiveBound() / scale) * problem.scale + sign * err
    chosen = [cands[j] for j in range(len(cands)) if solver.Value(y[j])]
    res = result_from_chosen(problem, chosen, status, bound, "cpsat", "; ".join(notes))
    if status is SolveStatus.OPTIMAL and err > 1e-9 * max(1.0, abs(res.objective)):
        res.status = SolveStatus.FEASIBLE
        res.message += "; optimal for the rounded model, reported as feasible"
    return res


def _pick_scale(values, count: int) -> float:
    exact = _exact_scale(values)
    if exact is not None and max((abs(v) for v in values), default=0.0) * exact * max(count, 1) <= MAX_SCALED:
        return exact
    return _scale_for(values, count)


def _solver(cp_model, clock: Clock, options: dict):
    solver = cp_model.CpSolver()
    left = clock.left()
    if left is not None:
        solver.parameters.max_time_in_seconds = max(left, 0.01)
    solver.parameters.num_workers = int(options.get("threads", 2))
    solver.parameters.random_seed = int(options.get("seed", 0))
    return solver


def _solve_slots(problem, clock: Clock, options: dict) -> SolveResult:
    """Group-slot model for derived partition values (see the module docstring)."""
    from ortools.sat.python import cp_model

    import numpy as np

    n = problem.n
    K = min(problem.max_groups or n, n)
    sign = 1.0 if problem.maximize else -1.0
    M = sign * np.asarray(problem.onto, dtype=float)
    include = problem.diagonal == "include"
    lo = max(problem.size_min, 2 if problem.rule == "tag" and not include else 1)
    hi = n if problem.size_max is None else min(problem.size_max, n)
    scale = _scale_for(list(np.abs(M).sum(axis=1)), n * n)
    Mi = np.round(M * scale).astype(np.int64)
    err_entry = float(np.max(np.abs(M * scale - Mi))) if n else 0.0
    model = cp_model.CpModel()
    z = {(a, g): model.NewBoolVar(f"in[{problem.tasks[a]},g{g}]") for a in range(n) for g in range(min(a + 1, K))}
    for a in range(n):
        model.AddExactlyOne([z[a, g] for g in range(min(a + 1, K))])
    for g in range(1, K):  # slot g holds a task only if slot g-1 holds a smaller one
        for a in range(g, n):
            model.AddBoolOr([z[b, g - 1] for b in range(g - 1, a)] + [z[a, g].Not()])
    used = [model.NewBoolVar(f"used[g{g}]") for g in range(K)]
    sizes = []
    values = []
    bound_abs = int(np.abs(Mi).sum()) + int(np.abs(np.diag(Mi)).sum()) + 1
    for g in range(K):
        members = [z[a, g] for a in range(n) if (a, g) in z]
        size = model.NewIntVar(0, n, f"size[g{g}]")
        model.Add(size == sum(members))
        model.Add(size >= 1).OnlyEnforceIf(used[g])
        model.Add(size == 0).OnlyEnforceIf(used[g].Not())
        model.Add(size >= lo).OnlyEnforceIf(used[g])
        model.Add(size <= hi)
        for name, cap in problem.per_group_budgets:
            amt = [dict(problem.task_resources[a]).get(name, 0.0) for a in range(n)]
            model.Add(sum(int(math.ceil(amt[a] * 1e6 - 1e-9)) * z[a, g] for a in range(n) if (a, g) in z and amt[a]) <= int(math.floor(cap * 1e6 + 1e-9)))
        pair_terms = []
        for a in range(n):
            for b in range(a + 1, n):
                if (a, g) in z and (b, g) in z:
                    w = int(Mi[a, b] + Mi[b, a])
                    if w == 0:
                        continue
                    p = model.NewBoolVar(f"pair[{a},{b},g{g}]")
                    if w > 0:  # only an upper link is needed when maximising a positive weight
                        model.AddImplication(p, z[a, g])
                        model.AddImplication(p, z[b, g])
                    else:
                        model.AddBoolOr([z[a, g].Not(), z[b, g].Not(), p])
                    pair_terms.append((w, p))
        diag_terms = []
        if include or problem.rule == "hoa":
            diag_terms = [(int(Mi[a, a]), z[a, g]) for a in range(n) if (a, g) in z]
        P = model.NewIntVar(-bound_abs, bound_abs, f"P[g{g}]")
        model.Add(P == sum(w * p for w, p in pair_terms) + (sum(w * v for w, v in diag_terms) if include else 0))
        val = model.NewIntVar(-bound_abs, bound_abs, f"value[g{g}]")
        denom = model.NewIntVar(1, n, f"denom[g{g}]")
        if problem.rule == "pairwise_mean_by_size" or include:
            model.Add(denom == size).OnlyEnforceIf(used[g])
        else:
            if problem.rule == "tag":
                model.Add(denom == size - 1).OnlyEnforceIf(used[g])
        model.Add(denom == 1).OnlyEnforceIf(used[g].Not())
        prod = model.NewIntVar(-bound_abs * n, bound_abs * n, f"value_x_denom[g{g}]")
        model.AddMultiplicationEquality(prod, [val, denom])
        if problem.rule == "hoa" and not include:
            single = model.NewBoolVar(f"single[g{g}]")
            model.Add(size == 1).OnlyEnforceIf(single)
            model.Add(size != 1).OnlyEnforceIf(single.Not())
            D = model.NewIntVar(-bound_abs, bound_abs, f"D[g{g}]")
            model.Add(D == sum(w * v for w, v in diag_terms))
            model.Add(denom == 1).OnlyEnforceIf(single)
            model.Add(denom == size - 1).OnlyEnforceIf([single.Not(), used[g]])
            model.Add(prod <= D).OnlyEnforceIf(single)
            model.Add(prod <= P).OnlyEnforceIf([single.Not(), used[g]])
        else:
            model.Add(prod <= P).OnlyEnforceIf(used[g])
        model.Add(val == 0).OnlyEnforceIf(used[g].Not())
        sizes.append(size)
        values.append(val)
    if problem.max_groups is not None:
        model.Add(sum(used) <= problem.max_groups)
    model.Maximize(sum(values))
    # rounding: each group's exact value is within (pairs * err_entry + 1 floor unit) / scale
    err = (n * (n - 1) * err_entry + K) / scale * problem.scale
    solver = _solver(cp_model, clock, options)
    code = interrupt.cpsat_solve(solver, model)
    has = code in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    status = _status_map(cp_model, code, has)
    msg = f"cp-sat slots {solver.StatusName(code)}; objective scaled by {scale:g}, rounding error <= {err:.3g}"
    if not has:
        return SolveResult(status, solver="cpsat", message=msg)
    groups: dict[int, list[str]] = {}
    for (a, g), var in z.items():
        if solver.Value(var):
            groups.setdefault(g, []).append(problem.tasks[a])
    cands = [problem.derived_candidate(m) for m in groups.values()]
    bound = sign * (solver.BestObjectiveBound() / scale + err / problem.scale) * problem.scale
    res = result_from_chosen(problem, cands, status, bound, "cpsat", msg)
    if status is SolveStatus.OPTIMAL and err > 1e-9 * max(1.0, abs(res.objective)):
        # optimal for the rounded model only: claim what is proven
        res.status = SolveStatus.FEASIBLE
        res.message += "; optimal for the rounded model, reported as feasible"
    return res
