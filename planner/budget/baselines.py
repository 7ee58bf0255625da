"""Baselines reported beside every label-budget plan: equal money, equal count, all to one task,
and greedy by marginal value per unit of money (the best of them is the incumbent when a solver
stops early)."""
from __future__ import annotations

import heapq
import math
from fractions import Fraction
from typing import Any

import numpy as np

from planner.budget.problem import BudgetProblem, Table, exact

def equal_money(problem: BudgetProblem) -> np.ndarray:
    """Each task gets B / T of the money and buys as many labels as that share (and its cap) allows."""
    share = exact(problem.budget) / len(problem.tasks)
    return np.asarray(
        [min(int(problem.caps[i]), math.floor(share / exact(t.cost))) for i, t in enumerate(problem.tasks)],
        dtype=np.int64,
    )


def equal_count(problem: BudgetProblem) -> np.ndarray:
    """The same number m of labels for every task (capped by max_i), the largest m that fits."""
    caps = problem.caps
    costs = [exact(t.cost) for t in problem.tasks]
    budget = exact(problem.budget)

    def fits(m: int) -> bool:
        return sum((c * min(m, int(k)) for c, k in zip(costs, caps)), Fraction(0)) <= budget

    lo, hi = 0, int(caps.max()) if len(caps) else 0
    while lo < hi:  # largest m with fits(m); fits is monotone
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return np.minimum(caps, lo).astype(np.int64)


def all_to_one(problem: BudgetProblem) -> tuple[np.ndarray, str]:
    """Everything to a single task (as many labels as it can take); the best such task."""
    best, best_value, best_task = None, -math.inf, ""
    for i, t in enumerate(problem.tasks):
        n = np.zeros(len(problem.tasks), dtype=np.int64)
        n[i] = problem.caps[i]
        value = problem.objective(n)
        if value > best_value:
            best, best_value, best_task = n, value, t.id
    return best, best_task


GREEDY_MAX_STEPS = 10_000
"""The coupled greedy moves in steps of s labels, s = ceil(sum_i K_i / GREEDY_MAX_STEPS) (1 when small)."""


def greedy(problem: BudgetProblem) -> np.ndarray:
    """One label at a time to the task with the largest marginal gain per unit cost that still fits.

    Not optimal when costs differ (tests keep the counterexample costs 4, 8, 5 with budget 45).
    A task leaves when its next label adds nothing or no longer fits. Separable: exactly the
    one-label-at-a-time rule, with runs of labels for the same task taken in one vectorised scan.
    Coupled (a label of j raises every e_i by r[i][j]): the gain is the change of the whole
    objective, in steps of ``ceil(sum_i K_i / 10,000)`` labels (one label unless the caps are huge).
    """
    caps = problem.caps
    left = exact(problem.budget)
    costs = [exact(t.cost) for t in problem.tasks]
    if problem.separable:
        return _greedy_separable(problem, caps, costs, left)
    size = len(problem.tasks)
    n = np.zeros(size, dtype=np.int64)
    step = max(1, math.ceil(int(caps.sum()) / GREEDY_MAX_STEPS))
    current = problem.objective(n)
    while True:
        take = np.asarray([min(step, int(caps[j] - n[j]), math.floor(left / costs[j])) for j in range(size)])
        trial = n[None, :] + np.diag(take)
        values = problem.objective_rows(trial)
        gains = values - current
        ok = (take > 0) & (gains > 0)
        if not ok.any():
            return n
        ratio = np.full(size, -np.inf)
        ratio[ok] = gains[ok] / (take[ok] * np.asarray([t.cost for t in problem.tasks])[ok])
        j = int(np.argmax(ratio))
        n[j] += take[j]
        left -= costs[j] * int(take[j])
        current = float(values[j])


def _greedy_separable(problem: BudgetProblem, caps: np.ndarray, costs: list[Fraction], left: Fraction) -> np.ndarray:
    n = _greedy_jump(problem, caps, costs, left)
    left -= sum((c * int(k) for c, k in zip(costs, n)), Fraction(0))
    heap: list[tuple[float, int]] = []  # (-gain / cost of the next label, task index): first out = best
    for i, t in enumerate(problem.tasks):
        if n[i] < caps[i]:
            heapq.heappush(heap, (-float(t.gain(n[i])) / t.cost, i))
    while heap:
        neg_ratio, i = heapq.heappop(heap)
        if neg_ratio >= 0 or costs[i] > left:
            continue  # no gain, or unaffordable now and forever (money only shrinks)
        t = problem.tasks[i]
        limit = min(int(caps[i] - n[i]), math.floor(left / costs[i]))
        rival = heap[0] if heap else None
        take, chunk = 1, 64
        while take < limit:  # would task i be popped again for its next label? scan ahead
            m = np.arange(n[i] + take, n[i] + min(take + chunk, limit))
            neg = -t.gain(m) / t.cost
            stay = neg < 0
            if rival is not None:
                stay &= (neg < rival[0]) | ((neg == rival[0]) & (i < rival[1]))
            stop = np.flatnonzero(~stay)
            if stop.size:
                take += int(stop[0])
                break
            take += len(m)
            chunk *= 2
        n[i] += take
        left -= costs[i] * take
        if n[i] < caps[i]:
            heapq.heappush(heap, (-float(t.gain(n[i])) / t.cost, i))
    return n


def _greedy_jump(problem: BudgetProblem, caps: np.ndarray, costs: list[Fraction], left: Fraction) -> np.ndarray:
    """Skip ahead: the labels the one-at-a-time greedy buys before its first one of ratio <= lambda.

    While any task's next label has gain per cost above lambda, the greedy buys such a label, so
    task i gets exactly the labels before its first one with ratio <= lambda (its prefix minimum).
    If all of those fit together, the greedy buys them all, in some order, without dropping a task.
    The smallest such lambda is found by bisection; the caller finishes label by label.
    """
    size = len(problem.tasks)
    heads: list[Any] = []
    for i, t in enumerate(problem.tasks):
        if isinstance(t.info, Table):  # ratio 0 past the table's end: a finite prefix-minimum array
            top = min(int(caps[i]), int(math.ceil(t.info.points[-1][0])) + 1)
            m = np.arange(top)
            heads.append(np.minimum.accumulate(t.gain(m) / t.cost) if top else np.zeros(0))
        else:
            heads.append(None)

    def count(i: int, lam: float) -> int:
        """Labels of task i before the first with gain / cost <= lam (at most caps[i])."""
        t, cap = problem.tasks[i], int(caps[i])
        if heads[i] is not None:
            pre = heads[i]
            return int(np.searchsorted(-pre, -lam, side="left")) if pre.size else 0
        lo, hi = 0, cap  # closed forms: the ratio falls with m (concave), so bisect on m
        while lo < hi:
            mid = (lo + hi) // 2
            if float(t.gain(mid)) / t.cost > lam:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def taken(lam: float) -> np.ndarray:
        return np.asarray([count(i, lam) for i in range(size)], dtype=np.int64)

    def fits(n: np.ndarray) -> bool:
        return sum((c * int(k) for c, k in zip(costs, n)), Fraction(0)) <= left

    if size == 0:
        return np.zeros(0, dtype=np.int64)
    if fits(taken(0.0)):
        return taken(0.0)
    lo = 0.0  # taken(lo) does not fit
    hi = max(float(t.gain(0)) / t.cost for t in problem.tasks)  # taken(hi) is empty
    for _ in range(200):
        mid = (lo + hi) / 2
        if not lo < mid < hi:
            break
        if fits(taken(mid)):
            hi = mid
        else:
            lo = mid
    return taken(hi)


def baselines(problem: BudgetProblem) -> dict[str, dict[str, Any]]:
    """Equal money, equal count, everything to one task and greedy, each with its objective."""
    out: dict[str, dict[str, Any]] = {}
    one, one_task = all_to_one(problem)
    for name, n in (
        ("equal_money", equal_money(problem)),
        ("equal_count", equal_count(problem)),
        ("all_to_one", one),
        ("greedy", greedy(problem)),
    ):
        entry = problem.solution(n)
        entry["objective"] = problem.objective(n)
        if name == "all_to_one":
            entry["task"] = one_task
        out[name] = entry
    return out


def best_baseline(problem: BudgetProblem, table: dict | None = None) -> tuple[str, np.ndarray]:
    """The baseline with the highest objective (used as the incumbent when a solver stops early)."""
    table = baselines(problem) if table is None else table
    name = max(table, key=lambda k: table[k]["objective"])
    return name, problem.allocation_vector(table[name])
