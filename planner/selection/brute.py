"""Brute force for selection: enumerate every subset of the free sources (vectorised in chunks)."""
from __future__ import annotations

import time

import numpy as np

from planner import interrupt
from planner.status import SolveResult, SolveStatus, SolverUnavailable

MAX_FREE = 22  # 4,194,304 subsets
CHUNK_BITS = 16


def solve_brute(problem, time_limit: float | None, options: dict) -> SolveResult:
    limit = int(options.get("brute_max_free", MAX_FREE))
    reason = problem.quick_infeasible_reason()
    if reason:
        return SolveResult(SolveStatus.INFEASIBLE, solver="brute", message=reason)
    idx = problem.index()
    fixed_on = np.zeros(problem.k, dtype=bool)
    for t in problem.must_include:
        fixed_on[idx[t]] = True
    fixed_off = np.zeros(problem.k, dtype=bool)
    for t in problem.exclude:
        fixed_off[idx[t]] = True
    free = np.flatnonzero(~fixed_on & ~fixed_off)
    if len(free) > limit:
        raise SolverUnavailable(
            f"brute force enumerates 2^{len(free)} subsets; it refuses more than {limit} free sources "
            "(use --solver highs or cpsat)"
        )
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    theta = np.asarray(problem.linear, dtype=float)
    q = problem.theta_matrix()
    costs = None if problem.costs is None else np.asarray(problem.costs, dtype=float)
    budget_tol = None if problem.budget is None else problem.budget + 1e-9 * max(1.0, abs(problem.budget))
    base = fixed_on.astype(float)
    n_free = len(free)
    total = 1 << n_free
    chunk = 1 << min(CHUNK_BITS, n_free)
    best_value, best_mask = np.inf, None
    shifts = np.arange(n_free, dtype=np.int64)
    for start in range(0, total, chunk):
        if (deadline is not None and time.perf_counter() >= deadline) or interrupt.requested():
            status = SolveStatus.FEASIBLE if best_mask is not None else SolveStatus.NO_SOLUTION
            why = "stopped on request" if interrupt.requested() else "time limit reached"
            return _result(problem, status, best_mask, None, f"{why} before enumeration finished")
        codes = np.arange(start, min(start + chunk, total), dtype=np.int64)
        bits = ((codes[:, None] >> shifts) & 1).astype(float)
        x = np.repeat(base[None, :], len(codes), axis=0)
        x[:, free] = bits
        size = x.sum(axis=1)
        ok = size >= problem.min_size
        if problem.max_size is not None:
            ok &= size <= problem.max_size
        if costs is not None:
            ok &= x @ costs <= budget_tol
        if not ok.any():
            continue
        x = x[ok]
        values = problem.intercept + x @ theta + np.einsum("ni,ij,nj->n", x, q, x)
        j = int(np.argmin(values))  # first minimum: the lowest code, so ties break the same way every run
        if values[j] < best_value - 1e-12:
            best_value, best_mask = float(values[j]), x[j].copy()
    if best_mask is None:
        return SolveResult(SolveStatus.INFEASIBLE, solver="brute", message="no subset satisfies the constraints")
    return _result(problem, SolveStatus.OPTIMAL, best_mask, best_value, f"enumerated {total} subsets")


def _result(problem, status, mask, bound, message) -> SolveResult:
    solution = problem.make_solution(mask) if mask is not None else None
    return SolveResult(status, bound=bound, solution=solution, solver="brute", message=message)
