"""Exact dynamic program over tasks for separable label budgets (solver ``dp``).

Money is counted in the smallest common unit u of the costs (the gcd of the costs read as the
decimals written: costs 0.5 and 0.75 give u = 0.25), so cost_i = k_i u with integer k_i and the
budget holds C = floor(B / u) units; the money below one unit is reported as unspent.

    V_0(c) = 0,     V_i(c) = max_{0 <= n <= min(K_i, c // k_i)}  V_{i-1}(c - n k_i) + g_i(n),
    g_i(n) = w_i I_i(n),          optimum = V_T(C),

and the allocation is recovered by backtracking the stored argmax n_i(c). V_T(c) is the optimum at
every budget c <= C, so a what-if sweep over budgets needs one table (``dp_sweep``).

Each step is a (max, +) convolution of V_{i-1} with g_i along each residue class c mod k_i. Where
g_i is concave (geometric, power, concave tables) the best source index is monotone in c, and the
convolution is computed by divide and conquer in O(C log C), vectorised level by level with numpy.
A non-concave table is split into maximal concave runs, one such pass per run, and the runs' maxima
combined: exact for any table. Ties go to fewer labels.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Sequence

import numpy as np

from planner import interrupt
from planner.status import SolveResult, SolveStatus, SolverUnavailable

if TYPE_CHECKING:
    from planner.budget.problem import BudgetProblem

MAX_CELLS = 50_000_000
"""Largest table (tasks x budget units) the DP will build; larger ones are refused (use highs)."""


@dataclass
class CostUnits:
    unit: Fraction
    costs: list[int]
    capacity: int


def cost_units(problem: "BudgetProblem", budget: float | None = None) -> CostUnits:
    """The smallest common unit u of the costs, the costs in units, and floor(budget / u)."""
    from planner.budget.problem import exact

    fracs = [exact(t.cost) for t in problem.tasks]
    lcm_den = 1
    for f in fracs:
        lcm_den = lcm_den * f.denominator // math.gcd(lcm_den, f.denominator)
    g = 0
    for f in fracs:
        g = math.gcd(g, f.numerator * (lcm_den // f.denominator))
    unit = Fraction(g, lcm_den)
    costs = [int(f / unit) for f in fracs]
    money = exact(problem.budget if budget is None else budget)
    return CostUnits(unit=unit, costs=costs, capacity=math.floor(money / unit))


def concave_runs(g: np.ndarray) -> list[tuple[int, int]]:
    """Split g[0..K] into maximal runs [lo, hi] on which it is concave (slopes never rise)."""
    if len(g) <= 2:
        return [(0, len(g) - 1)]
    d = np.diff(g)
    tol = 1e-12 * max(1.0, float(np.max(np.abs(g))))
    rise = np.flatnonzero(d[1:] > d[:-1] + tol) + 1  # the slope rises at point k
    runs, lo = [], 0
    for k in rise:
        runs.append((lo, int(k)))
        lo = int(k)
    runs.append((lo, len(g) - 1))
    return runs


def maxplus_concave(
    values: np.ndarray, step: int, g: np.ndarray, klo: int = 0, khi: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """H(c) = max_{klo <= k <= min(khi, c // step)} values[c - k step] + g[k], and the best k.

    g must be concave on [klo, khi]; then the best source position along each residue class is
    non-decreasing in c (a Monge argument), and divide and conquer over rows needs O(C log C).
    All subproblems of one recursion level, over all residue classes, are solved in one numpy pass.
    Rows with no candidate (c // step < klo) get -inf.
    """
    khi = len(g) - 1 if khi is None else khi
    size = len(values)
    best = np.full(size, -np.inf)
    choice = np.zeros(size, dtype=np.int64)
    residue = np.arange(min(step, size), dtype=np.int64)
    length = (size - 1 - residue) // step + 1  # positions m = 0..length-1 in each class
    keep = length - 1 >= klo
    residue, length = residue[keep], length[keep]
    if residue.size == 0:
        return best, choice
    # Subproblem: rows m in [lo, hi] of class r, best source j = m - k known to lie in [olo, ohi].
    r, lo, hi = residue, np.full(residue.size, klo, dtype=np.int64), length - 1
    olo, ohi = np.zeros(residue.size, dtype=np.int64), length - 1 - klo
    while r.size:
        mid = (lo + hi) // 2
        a = np.maximum(olo, mid - khi)
        b = np.minimum(mid - klo, ohi)
        lens = b - a + 1
        starts = np.cumsum(lens) - lens
        seg = np.repeat(np.arange(r.size), lens)
        j = a[seg] + (np.arange(int(lens.sum())) - starts[seg])
        vals = values[r[seg] + j * step] + g[mid[seg] - j]
        segmax = np.maximum.reduceat(vals, starts)
        hit = np.flatnonzero(vals == segmax[seg])
        hit_seg = seg[hit]
        last = hit[np.r_[hit_seg[1:] != hit_seg[:-1], True]]  # last maximum: largest j, fewest labels
        jstar = j[last]
        cell = r + mid * step
        best[cell] = segmax
        choice[cell] = mid - jstar
        left = mid > lo
        right = mid < hi
        r = np.concatenate([r[left], r[right]])
        lo, hi = np.concatenate([lo[left], mid[right] + 1]), np.concatenate([mid[left] - 1, hi[right]])
        olo, ohi = np.concatenate([olo[left], jstar[right]]), np.concatenate([jstar[left], ohi[right]])
    return best, choice


def task_values(task, cap: int) -> np.ndarray:
    """g(n) = w I(n) for n = 0..cap."""
    return np.asarray(task.value(np.arange(cap + 1)), dtype=float)


@dataclass
class DPTable:
    """V_T over every budget 0..capacity units, with each task's argmax for backtracking."""

    values: np.ndarray
    choices: list[np.ndarray | None]
    units: CostUnits

    def allocation(self, capacity: int) -> np.ndarray:
        return self.allocations(np.asarray([capacity]))[0]

    def allocations(self, capacities: np.ndarray) -> np.ndarray:
        """Backtrack from many budgets at once: an (M, T) array of labels."""
        c = np.asarray(capacities, dtype=np.int64).copy()
        out = np.zeros((c.size, len(self.choices)), dtype=np.int64)
        for i in range(len(self.choices) - 1, -1, -1):
            if self.choices[i] is None:
                continue
            k = self.choices[i][c]
            out[:, i] = k
            c -= k * self.units.costs[i]
        return out


class _Stopped(Exception):
    pass


def dp_table(problem: "BudgetProblem", budget: float | None = None, deadline: float | None = None,
             max_cells: int = MAX_CELLS) -> DPTable:
    """Build the DP table up to ``budget`` (default: the instance's). Separable instances only."""
    if not problem.separable:
        raise SolverUnavailable("dp solves separable instances only (relatedness couples the tasks); use highs")
    units = cost_units(problem, budget)
    cells = (units.capacity + 1) * len(problem.tasks)
    if cells > max_cells:
        raise SolverUnavailable(
            f"dp table would have {cells:,} cells ({units.capacity:,} budget units of {float(units.unit):g} "
            f"x {len(problem.tasks)} tasks; limit {max_cells:,}); use highs"
        )
    size = units.capacity + 1
    values = np.zeros(size)
    choices: list[np.ndarray | None] = []
    for task, step in zip(problem.tasks, units.costs):
        if (deadline is not None and time.perf_counter() > deadline) or interrupt.requested():
            raise _Stopped()
        cap = units.capacity // step
        if task.max is not None:
            cap = min(cap, task.max)
        if cap == 0 or task.weight == 0:
            choices.append(None)
            continue
        g = task_values(task, cap)
        best, choice = None, None
        for lo, hi in concave_runs(g):
            h, k = maxplus_concave(values, step, g, lo, hi)
            if best is None:
                best, choice = h, k
            else:
                better = h > best  # ties keep the earlier run: fewer labels
                best[better] = h[better]
                choice[better] = k[better]
        values = best
        choices.append(choice.astype(np.int32 if cap < 2**31 else np.int64))
    return DPTable(values=values, choices=choices, units=units)


def dp_sweep(problem: "BudgetProblem", budgets: Sequence[float], max_cells: int = MAX_CELLS):
    """Optimum and allocation at every budget from one table. Returns (objectives, labels (M, T), units)."""
    from planner.budget.problem import exact

    top = max(budgets)
    table = dp_table(problem, budget=top, max_cells=max_cells)
    unit = table.units.unit
    caps = np.asarray([math.floor(exact(b) / unit) for b in budgets], dtype=np.int64)
    return table.values[caps].copy(), table.allocations(caps), table.units


def solve_dp(problem: "BudgetProblem", time_limit: float | None, options: dict) -> SolveResult:
    from planner.budget.baselines import baselines, best_baseline

    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit
    max_cells = int(options.get("max_cells", MAX_CELLS))
    try:
        table = dp_table(problem, deadline=deadline, max_cells=max_cells)
    except _Stopped:
        table = baselines(problem)
        name, n = best_baseline(problem, table)
        result = SolveResult(
            status=SolveStatus.FEASIBLE,
            solution=problem.solution(n),
            message=f"{'stopped on request' if interrupt.requested() else 'time limit reached'} while building "
                    f"the DP table; reporting the {name} baseline",
        )
        if options.get("baselines", True):
            result.extra["baselines"] = table
        return result
    units = table.units
    n = table.allocation(units.capacity)
    spent = problem.spent(n)
    from planner.budget.problem import exact

    solution = problem.solution(
        n,
        unit=float(units.unit),
        budget_units=units.capacity,
        unspent=float(exact(problem.budget) - spent),
    )
    result = SolveResult(
        status=SolveStatus.OPTIMAL,
        objective=float(table.values[units.capacity]),
        bound=float(table.values[units.capacity]),
        solution=solution,
        solver="dp",
    )
    if options.get("baselines", True):
        result.extra["baselines"] = baselines(problem)
    return result
