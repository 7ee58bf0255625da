"""Brute force over every allocation (solver ``brute``): the test oracle for small budget instances.

Enumerates all n with 0 <= n_i <= K_i (K_i = min(max_i, floor(B / c_i))), keeps those within the
budget (exact decimal arithmetic through integer cost units) and evaluates the contract's objective
sum_i w_i I_i(e_i) with the closed forms, coupled or not: the same function ``evaluate`` computes.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from planner import interrupt
from planner.status import SolveResult, SolveStatus, SolverUnavailable

if TYPE_CHECKING:
    from planner.budget.problem import BudgetProblem

MAX_ALLOCATIONS = 2_000_000
CHUNK = 100_000


def solve_brute(problem: "BudgetProblem", time_limit: float | None, options: dict) -> SolveResult:
    from planner.budget.dp import cost_units
    from planner.budget.baselines import baselines

    limit = int(options.get("max_allocations", MAX_ALLOCATIONS))
    caps = [int(k) for k in problem.caps]
    total = 1
    for k in caps:
        total *= k + 1
        if total > limit:
            raise SolverUnavailable(
                f"brute force would enumerate more than {limit:,} allocations "
                f"(caps {caps}); use dp or highs"
            )
    start = time.perf_counter()
    units = cost_units(problem)
    costs = np.asarray(units.costs, dtype=np.int64)
    shape = tuple(k + 1 for k in caps)
    best_value, best_n = -np.inf, None
    stopped = False
    for first in range(0, total, CHUNK):
        if (time_limit is not None and time.perf_counter() - start > time_limit) or interrupt.requested():
            stopped = True
            break
        flat = np.arange(first, min(total, first + CHUNK), dtype=np.int64)
        labels = np.stack(np.unravel_index(flat, shape), axis=1).astype(np.int64)
        labels = labels[labels @ costs <= units.capacity]
        if labels.shape[0] == 0:
            continue
        values = problem.objective_rows(labels)
        k = int(np.argmax(values))
        if values[k] > best_value:
            best_value, best_n = float(values[k]), labels[k]
    if best_n is None:  # only when stopped before the first chunk: n = 0 is always feasible
        best_n = np.zeros(len(caps), dtype=np.int64)
        best_value = problem.objective(best_n)
    result = SolveResult(
        status=SolveStatus.FEASIBLE if stopped else SolveStatus.OPTIMAL,
        objective=best_value,
        bound=None if stopped else best_value,
        solution=problem.solution(best_n),
        solver="brute",
        message="time limit reached before every allocation was tried" if stopped else "",
    )
    if options.get("baselines", True):
        result.extra["baselines"] = baselines(problem)
    return result
