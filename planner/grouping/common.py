"""Helpers shared by the grouping backends: bit masks, result building, time keeping."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from planner import interrupt
from planner.pyomo_highs import stdout_to_stderr  # noqa: F401 (also imported from here)
from planner.status import SolveResult, SolveStatus


def mask_of(problem, members: Sequence[str]) -> int:
    m = 0
    for t in members:
        m |= 1 << problem.index[t]
    return m


def result_from_chosen(problem, chosen, status: SolveStatus, bound: float | None, solver: str, message: str = "", extra=None) -> SolveResult:
    """A SolveResult for chosen candidates; duplicates (the same candidate twice) are dropped."""
    seen, unique = set(), []
    for c in chosen:
        if id(c) not in seen:
            seen.add(id(c))
            unique.append(c)
    sol = problem.make_solution(unique)
    obj = problem.evaluate(sol)
    return SolveResult(status=status, objective=obj, bound=bound, solution=sol, solver=solver,
                       message=message, extra=dict(extra or {}))


class Clock:
    """Wall-clock deadline; ``left()`` is None when there is no limit."""

    def __init__(self, limit: float | None):
        self.start = time.perf_counter()
        self.limit = limit

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float | None:
        if self.limit is None:
            return None
        return max(0.0, self.limit - self.elapsed())

    def over(self) -> bool:
        """True once the limit has passed or a stop was requested (Ctrl-C, :mod:`planner.interrupt`)."""
        return (self.limit is not None and self.elapsed() >= self.limit) or interrupt.requested()


def new_highs():
    """A silent ``highspy.Highs`` object (banner kept off stdout)."""
    import highspy

    with stdout_to_stderr():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


class PartitionMaster:
    """Restricted set-partitioning master over columns (task bitmasks), solved by HiGHS:

        max sum_G w_G y_G   s.t.  sum_{G ni a} y_G = 1 (every task a),  sum_G y_G <= K,

    plus one penalised artificial column per task so every restricted master is feasible (they are
    fixed to 0 in the integer master). Used by both column-generation paths of the highs backend.
    """

    def __init__(self, n: int, K: int | None, big: float, threads: int = 1):
        import highspy

        self.hs = highspy
        self.n, self.K = n, K
        h = self.h = new_highs()
        h.setOptionValue("threads", threads)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        empty_i, empty_v = np.array([], dtype=np.int32), np.array([], dtype=float)
        for _ in range(n):
            h.addRow(1.0, 1.0, 0, empty_i, empty_v)
        if K is not None:
            h.addRow(-highspy.kHighsInf, float(K), 0, empty_i, empty_v)
        for a in range(n):
            h.addCol(-big, 0.0, 1.0, 1, np.array([a], dtype=np.int32), np.array([1.0]))
        self.masks: list[int] = []
        self.values: list[float] = []
        self.index: dict[int, int] = {}

    def add(self, mask: int, value: float) -> bool:
        """Add one column; False when it is already there."""
        mask = int(mask)
        if mask in self.index:
            return False
        rows = [a for a in range(self.n) if mask >> a & 1]
        if self.K is not None:
            rows.append(self.n)
        self.h.addCol(float(value), 0.0, self.hs.kHighsInf, len(rows), np.array(rows, dtype=np.int32), np.ones(len(rows)))
        self.index[mask] = len(self.masks)
        self.masks.append(mask)
        self.values.append(float(value))
        return True

    def solve_lp(self):
        """(objective, task duals pi, group-count dual mu, artificial column values)."""
        self.h.run()
        sol = self.h.getSolution()
        duals = np.array(sol.row_dual)
        # HiGHS: reduced cost d_j = c_j - A_j^T y for the row duals y, whatever the sense
        pi = duals[: self.n]
        mu = float(duals[self.n]) if self.K is not None else 0.0
        art = np.array(sol.col_value[: self.n])
        return float(self.h.getInfo().objective_function_value), pi, mu, art

    def solve_ip(self, time_limit: float | None, start: list[int] | None = None, abs_gap: float = 0.0):
        """Integer master over the generated columns: (HiGHS model status, chosen masks, MIP dual bound).
        The LP form is restored afterwards, so column generation can go on."""
        hs, h, n = self.hs, self.h, self.n
        ncol = h.getNumCol()
        idx = np.arange(n, ncol, dtype=np.int32)
        h.changeColsIntegrality(len(idx), idx, np.array([hs.HighsVarType.kInteger] * len(idx)))
        art = np.arange(n, dtype=np.int32)
        h.changeColsBounds(n, art, np.zeros(n), np.zeros(n))  # no artificial column in an integer plan
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", abs_gap)
        h.setOptionValue("time_limit", float(time_limit) if time_limit is not None else hs.kHighsInf)
        if start:
            sol = hs.HighsSolution()
            vals = np.zeros(ncol)
            for m in start:
                if m in self.index:
                    vals[n + self.index[m]] = 1.0
            sol.col_value = list(vals)
            sol.value_valid = True
            h.setSolution(sol)
        with interrupt.highs_interruptible(h):
            h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        chosen = []
        if info.primal_solution_status == 2:  # kSolutionStatusFeasible
            vals = np.array(h.getSolution().col_value[n:])
            chosen = [self.masks[j] for j in np.flatnonzero(vals > 0.5)]
        h.changeColsIntegrality(len(idx), idx, np.array([hs.HighsVarType.kContinuous] * len(idx)))
        h.changeColsBounds(n, art, np.zeros(n), np.ones(n))
        return status, chosen, info.mip_dual_bound
