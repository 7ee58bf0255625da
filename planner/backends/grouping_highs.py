"""Pyomo + HiGHS models for grouping (docs/formulations.md, "Grouping").

* cover -> budgeted facility location (:func:`build_cover`);
* partition over explicit or enumerated candidates -> set partitioning (:func:`build_partition_columns`);
* partition with a derived value on many tasks:
  - up to ``CG_MAX_TASKS`` tasks: column generation with exhaustive (vectorised) pricing over every
    subset, then the restricted master as a MIP; optimality is proven by reduced-cost enumeration
    (:func:`solve_partition_cg`);
  - beyond that, column generation with branch-and-bound pricing (:mod:`planner.backends.grouping_colgen`); the
    compact clique-partitioning model (:func:`build_partition_compact`) with
    ``options["large_partition"] = "compact"``.
"""
from __future__ import annotations

import math

import numpy as np

from planner.backends.grouping_common import Clock, PartitionMaster, new_highs, result_from_chosen, stdout_to_stderr
from planner.solve import register_backend
from planner.status import SolveResult, SolveStatus, SolverUnavailable

COLUMN_LIMIT = 60_000  # set partitioning over all columns up to this many
CG_MAX_TASKS = 22
GAP_COLUMN_LIMIT = 400_000


def solve_highs(problem, time_limit: float | None, options: dict) -> SolveResult:
    clock = Clock(time_limit)
    if problem.mode == "cover":
        cands = problem.candidate_list()
        if problem.max_groups == 1:  # exact reduction: one group must hold every task
            cands = [c for c in cands if len(c.members) == problem.n]
        if options.get("pyomo"):
            return _solve_pyomo(problem, build_cover(problem, cands), cands, clock, options)
        return solve_cover_direct(problem, cands, clock, options)
    if not problem.derived or problem.derived_count() <= int(options.get("column_limit", COLUMN_LIMIT)):
        cands = problem.candidate_list()
        return _solve_pyomo(problem, build_partition_columns(problem, cands), cands, clock, options)
    if problem.n <= int(options.get("cg_max_tasks", CG_MAX_TASKS)):
        return solve_partition_cg(problem, clock, options)
    if options.get("large_partition", "colgen") == "compact":
        return solve_partition_compact(problem, clock, options)
    from planner.backends.grouping_colgen import solve_partition_colgen

    return solve_partition_colgen(problem, clock, options)


# ---------------------------------------------------------------------- Pyomo models
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
    left = clock.left()
    if left is not None:
        kwargs["time_limit"] = max(left, 0.01)
    with stdout_to_stderr():
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


def solve_cover_direct(problem, cands, clock: Clock, options: dict) -> SolveResult:
    """The facility-location model of :func:`build_cover`, passed to HiGHS as one sparse matrix
    (Pyomo's expression building costs seconds on MTG-Net's 3,185 networks; the model is the same)."""
    import highspy

    n, m = problem.n, len(cands)
    pairs = [(problem.index[t], j, v) for j, c in enumerate(cands) for t, v in zip(c.members, c.values)]
    covered = {a for a, _, _ in pairs}
    if len(covered) < n:
        missing = next(t for t in problem.tasks if problem.index[t] not in covered)
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs", message=f"no admissible candidate contains task {missing!r}")
    P = len(pairs)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = m + P  # y[c] for c < m, then x[a,c] per pair
    lp.col_cost_ = np.concatenate([np.zeros(m), problem.scale * np.array([v for _, _, v in pairs])])
    lp.col_lower_ = np.zeros(m + P)
    lp.col_upper_ = np.ones(m + P)
    lp.sense_ = highspy.ObjSense.kMaximize if problem.maximize else highspy.ObjSense.kMinimize
    lo, hi, starts, idx, val = [], [], [0], [], []
    by_task: list[list[int]] = [[] for _ in range(n)]
    for k, (a, _j, _v) in enumerate(pairs):
        by_task[a].append(m + k)
    for a in range(n):  # serve_once
        idx += by_task[a]
        val += [1.0] * len(by_task[a])
        starts.append(len(idx)); lo.append(1.0); hi.append(1.0)
    for k, (_a, j, _v) in enumerate(pairs):  # open_only: x[a,c] - y[c] <= 0
        idx += [j, m + k]
        val += [-1.0, 1.0]
        starts.append(len(idx)); lo.append(-inf); hi.append(0.0)
    if problem.max_groups is not None and problem.max_groups < m:  # max_groups
        idx += list(range(m))
        val += [1.0] * m
        starts.append(len(idx)); lo.append(-inf); hi.append(float(problem.max_groups))
    for res, cap in problem.budgets:  # budget_limit
        cols = [j for j, c in enumerate(cands) if c.resource(res)]
        idx += cols
        val += [cands[j].resource(res) for j in cols]
        starts.append(len(idx)); lo.append(-inf); hi.append(float(cap))
    lp.num_row_ = len(lo)
    lp.row_lower_ = np.array(lo)
    lp.row_upper_ = np.array(hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(idx, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(val, dtype=float)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * m + [highspy.HighsVarType.kContinuous] * P
    h = new_highs()
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("threads", int(options.get("threads", 1)))
    left = clock.left()
    if left is not None:
        h.setOptionValue("time_limit", max(left, 0.01))
    h.passModel(lp)
    h.run()
    status, has, bound = _map_highs(h)
    msg = f"highs: {h.modelStatusToString(h.getModelStatus())}"
    if not has:
        return SolveResult(status, solver="highs", message=msg)
    y = np.array(h.getSolution().col_value[:m])
    chosen = [cands[j] for j in np.nonzero(y > 0.5)[0]]
    return result_from_chosen(problem, chosen, status, bound, "highs", msg, extra={"columns": m})


def _map_highs(h):
    """(status, has_solution, bound) from a highspy run, mapped explicitly."""
    import highspy

    ms = h.getModelStatus()
    info = h.getInfo()
    has = info.primal_solution_status == 2
    S = highspy.HighsModelStatus
    if ms == S.kOptimal:
        status = SolveStatus.OPTIMAL if has else SolveStatus.UNKNOWN
    elif ms in (S.kTimeLimit, S.kIterationLimit, S.kInterrupt, S.kSolutionLimit):
        status = SolveStatus.FEASIBLE if has else SolveStatus.NO_SOLUTION
    elif ms in (S.kInfeasible, S.kUnboundedOrInfeasible):
        status = SolveStatus.INFEASIBLE
    elif ms == S.kUnbounded:  # pragma: no cover - bounded models
        status = SolveStatus.UNBOUNDED
    elif ms in (S.kSolveError, S.kModelError, S.kPresolveError, S.kPostsolveError, S.kLoadError):
        status = SolveStatus.ERROR
    else:
        status = SolveStatus.FEASIBLE if has else SolveStatus.UNKNOWN
    bound = info.mip_dual_bound
    bound = float(bound) if bound is not None and math.isfinite(bound) else None
    if status is SolveStatus.OPTIMAL and bound is None:
        bound = info.objective_function_value
    return status, has, bound


# ---------------------------------------------------------------------- all-subset tables
def subset_tables(problem):
    """Signed value w[mask] (-inf where the group is not admissible) for every subset of the tasks.

    Uses P[mask] = sum_{i != k in mask} M[i][k], D[mask] = sum_{i in mask} M[i][i] and the size,
    built by doubling (adding the highest task to every subset of the lower ones).
    """
    n = problem.n
    M = np.asarray(problem.onto, dtype=float)
    W = M + M.T
    size = 1 << n
    P = np.zeros(size)
    D = np.zeros(size)
    S = np.zeros(size, dtype=np.int16)
    res_names = [r for r, _ in problem.per_group_budgets]
    R = np.zeros((len(res_names), size))
    for h in range(n):
        lo, hi = 1 << h, 1 << (h + 1)
        row = np.zeros(lo)  # sum_{k in m'} W[h,k] for every m' < 2^h
        for k in range(h):
            row[1 << k: 1 << (k + 1)] = row[: 1 << k] + W[h, k]
        P[lo:hi] = P[:lo] + row
        D[lo:hi] = D[:lo] + M[h, h]
        S[lo:hi] = S[:lo] + 1
        for j, name in enumerate(res_names):
            amount = dict(problem.task_resources[h]).get(name, 0.0)
            R[j, lo:hi] = R[j, :lo] + amount
    s = S.astype(float)
    s[0] = 1.0
    include = problem.diagonal == "include"
    with np.errstate(divide="ignore", invalid="ignore"):
        if problem.rule == "pairwise_mean_by_size":
            val = (P + (D if include else 0.0)) / s
        elif include:
            val = (P + D) / s
        else:
            val = P / np.maximum(s - 1.0, 1.0)
            if problem.rule == "hoa":
                val = np.where(S == 1, D, val)
    ok = S >= max(problem.size_min, 1)
    if problem.size_max is not None:
        ok &= S <= problem.size_max
    if problem.rule == "tag" and not include:
        ok &= S >= 2
    for j, (_, cap) in enumerate(problem.per_group_budgets):
        ok &= R[j] <= cap * (1 + 1e-9) + 1e-12
    ok[0] = False
    sign = 1.0 if problem.maximize else -1.0
    w = np.where(ok, sign * val, -np.inf)
    return w, S


def _members(problem, mask: int) -> list[str]:
    return [t for i, t in enumerate(problem.tasks) if mask >> i & 1]


def _mask_sums(vec: np.ndarray, n: int) -> np.ndarray:
    """sum_{a in mask} vec[a] for every mask, by doubling."""
    out = np.zeros(1 << n)
    for h in range(n):
        out[1 << h: 1 << (h + 1)] = out[: 1 << h] + vec[h]
    return out


# ---------------------------------------------------------------------- column generation
def solve_partition_cg(problem, clock: Clock, options: dict) -> SolveResult:
    """Column generation with exact pricing by enumeration, then a provably optimal integer master."""
    from planner.backends.grouping_heuristic import local_search

    n = problem.n
    sign = 1.0 if problem.maximize else -1.0
    w, _S = subset_tables(problem)
    finite = np.isfinite(w)
    if not finite.any():
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs", message="no admissible group")
    infeasible = _global_budget_violation(problem)
    if infeasible:
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs", message=infeasible)
    big = 1.0 + 2.0 * float(np.abs(w[finite]).max()) * n
    master = PartitionMaster(n, problem.max_groups, big)
    # start: singletons, and the local-search grouping when there is one
    start = [1 << a for a in range(n) if finite[1 << a]]
    heur = None
    try:
        heur = local_search(problem, time_limit=min(0.5, clock.left() or 0.5), seed=0)
    except SolverUnavailable:
        heur = None
    if heur is not None:
        start += [sum(1 << problem.index[t] for t in g) for g in heur[0]]
    _add_columns(master, start, w)
    per_round = int(options.get("columns_per_round", 60))
    rounds = 0
    z_lp = None
    stopped = False
    while True:
        rounds += 1
        z, pi, mu, art = master.solve_lp()
        rc = w - _mask_sums(pi, n) - mu
        best_rc = float(np.max(rc))
        if best_rc <= 1e-9:
            z_lp = z
            break
        if clock.over():
            stopped = True
            break
        k = min(per_round, int(np.count_nonzero(rc > 1e-9)))
        top = np.argpartition(-rc, k - 1)[:k]
        _add_columns(master, top, w)
    message = f"column generation: {rounds} rounds, {len(master.masks)} columns"
    if stopped:
        # Lagrangian bound: z_RMP + K * max reduced cost (valid for any duals; only with artificials at 0)
        bound = None
        if problem.max_groups is not None and float(np.max(art)) < 1e-9:
            bound = sign * (z + problem.max_groups * max(best_rc, 0.0)) * problem.scale
        status, chosen, _ = master.solve_ip(0.0 if clock.left() is not None else None)
        return _cg_result(problem, chosen, heur, SolveStatus.FEASIBLE, bound, message + "; time limit during pricing")
    if float(np.max(art)) > 1e-7:
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs",
                           message=message + "; the linear relaxation has no partition meeting max_groups")
    status, chosen, _ = master.solve_ip(clock.left())
    z_ip = _value_of(chosen, w)
    if chosen and z_ip >= z_lp - 1e-7 * max(1.0, abs(z_lp)):
        return _cg_result(problem, chosen, heur, SolveStatus.OPTIMAL, sign * z_lp * problem.scale, message + "; LP bound met")
    # Reduced-cost enumeration: a better integer solution uses only columns with rc >= z_ip - z_lp.
    incumbent = z_ip if chosen else (_heur_value(problem, heur, w) if heur else -np.inf)
    if not math.isfinite(incumbent):
        return SolveResult(SolveStatus.NO_SOLUTION, solver="highs", message=message + "; no integer solution")
    _, pi, mu, _ = master.solve_lp()
    rc = w - _mask_sums(pi, n) - mu
    gap_cols = np.nonzero(rc >= incumbent - z_lp - 1e-9)[0]
    if len(gap_cols) > GAP_COLUMN_LIMIT or clock.over():
        return _cg_result(problem, chosen, heur, SolveStatus.FEASIBLE, sign * z_lp * problem.scale,
                          message + f"; {len(gap_cols)} columns within the gap, not enumerated")
    _add_columns(master, gap_cols, w)
    status, chosen2, mip_bound = master.solve_ip(clock.left())
    message += f"; {len(gap_cols)} reduced-cost columns enumerated"
    if status == master.hs.HighsModelStatus.kOptimal and chosen2:
        best = chosen2 if _value_of(chosen2, w) >= z_ip else chosen
        return _cg_result(problem, best, heur, SolveStatus.OPTIMAL, sign * _value_of(best, w) * problem.scale, message)
    bound = sign * min(z_lp, mip_bound if math.isfinite(mip_bound) else z_lp) * problem.scale
    best = chosen2 if chosen2 and _value_of(chosen2, w) >= z_ip else chosen
    return _cg_result(problem, best, heur, SolveStatus.FEASIBLE, bound, message + "; time limit in the final MIP")


def _add_columns(master, masks, w) -> int:
    return sum(master.add(int(m), float(w[int(m)])) for m in masks)


def _value_of(masks, w) -> float:
    return float(sum(w[m] for m in masks)) if masks else -np.inf


def _heur_value(problem, heur, w) -> float:
    return float(sum(w[sum(1 << problem.index[t] for t in g)] for g in heur[0]))


def _cg_result(problem, masks, heur, status, bound, message) -> SolveResult:
    cands = [problem.derived_candidate(_members(problem, m)) for m in masks] if masks else []
    if heur is not None:
        hc = [problem.derived_candidate(g) for g in heur[0]]
        hv = problem.evaluate(problem.make_solution(hc))
        if not cands or problem.better(hv, problem.evaluate(problem.make_solution(cands)) + 0.0):
            if status is SolveStatus.OPTIMAL and cands:
                pass  # the optimal master cannot be beaten; keep it
            else:
                cands = hc
    if not cands:
        return SolveResult(SolveStatus.NO_SOLUTION, bound=bound, solver="highs", message=message)
    return result_from_chosen(problem, cands, status, bound, "highs", message)


def _global_budget_violation(problem) -> str | None:
    """With derived candidates a group's resources add over its members, so in partition mode the
    total over all groups is the same for every partition: check it once."""
    for res, cap in problem.budgets:
        total = sum(dict(r).get(res, 0.0) for r in problem.task_resources)
        if total > cap * (1 + 1e-9) + 1e-12:
            return f"resource {res!r}: every partition uses {total:g}, over the budget {cap:g}"
    return None


# ---------------------------------------------------------------------- compact model
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
    from planner.backends.grouping_heuristic import local_search

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


register_backend("grouping", "highs", solve_highs)
