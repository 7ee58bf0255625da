"""Column generation for partition problems with a derived group value on at most ``CG_MAX_TASKS`` tasks:
exhaustive (vectorised) pricing over every subset, the restricted master as a MIP, and optimality proven
by reduced-cost enumeration. Larger instances use :mod:`planner.grouping.colgen` (branch-and-bound pricing)."""
from __future__ import annotations

import math

import numpy as np

from planner.grouping.common import Clock, PartitionMaster, result_from_chosen
from planner.grouping.milp import _global_budget_violation
from planner.status import SolveResult, SolveStatus, SolverUnavailable

GAP_COLUMN_LIMIT = 400_000


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
    from planner.grouping.heuristic import local_search

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
