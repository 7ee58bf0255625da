"""Cover (network selection) as a facility-location MIP built row-wise in highspy directly: faster to
build than the Pyomo model for many candidates, with the same formulation as :func:`planner.grouping.milp.build_cover`."""
from __future__ import annotations

import math

import numpy as np

from planner import interrupt
from planner.grouping.common import Clock, new_highs, result_from_chosen
from planner.status import SolveResult, SolveStatus


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
    left = interrupt.shortened(clock.left())
    if left is not None:
        h.setOptionValue("time_limit", max(left, 0.01))
    h.passModel(lp)
    with interrupt.highs_interruptible(h):
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
