"""``--solver auto`` for grouping: exact backends first, heuristics where nothing exact can run."""
from __future__ import annotations

from planner.solve import register_auto


def choose(problem) -> list[str]:
    if problem.n <= 8 and (not problem.derived or problem.derived_count() <= 5_000):
        return ["brute", "highs", "cpsat", "local"]
    return ["highs", "cpsat", "local", "spectral"]


register_auto("grouping", choose)
