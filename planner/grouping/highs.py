"""Pyomo + HiGHS models for grouping (docs/formulations.md, "Grouping").

* cover -> budgeted facility location (:func:`build_cover`);
* partition over explicit or enumerated candidates -> set partitioning (:func:`build_partition_columns`);
* partition with a derived value on many tasks:
  - up to ``CG_MAX_TASKS`` tasks: column generation with exhaustive (vectorised) pricing over every
    subset, then the restricted master as a MIP; optimality is proven by reduced-cost enumeration
    (:func:`solve_partition_cg`);
  - beyond that, column generation with branch-and-bound pricing (:mod:`planner.grouping.colgen`); the
    compact clique-partitioning model (:func:`build_partition_compact`) with
    ``options["large_partition"] = "compact"``.
"""
from __future__ import annotations

from planner.grouping.colgen_exhaustive import solve_partition_cg
from planner.grouping.common import Clock
from planner.grouping.compact import solve_partition_compact
from planner.grouping.cover_direct import solve_cover_direct
from planner.grouping.milp import _solve_pyomo, build_cover, build_partition_columns
from planner.status import SolveResult

COLUMN_LIMIT = 60_000  # set partitioning over all columns up to this many
CG_MAX_TASKS = 22


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
    from planner.grouping.colgen import solve_partition_colgen

    return solve_partition_colgen(problem, clock, options)


# ---------------------------------------------------------------------- Pyomo models
