"""Helpers shared by the grouping backends: bit masks, result building, time keeping."""
from __future__ import annotations

import time
from typing import Sequence

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
        return self.limit is not None and self.elapsed() >= self.limit


import contextlib
import os
import sys


@contextlib.contextmanager
def stdout_to_stderr():
    """Send C-level writes to fd 1 (HiGHS prints a banner on its first model) to stderr instead,
    so ``--json`` keeps stdout to exactly one object."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real stdout (e.g. captured): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        except ValueError:  # pragma: no cover
            pass
        os.dup2(saved, 1)
        os.close(saved)


def new_highs():
    """A silent ``highspy.Highs`` object (banner kept off stdout)."""
    import highspy

    with stdout_to_stderr():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h
