"""Grouping: which tasks share a network, under limits on networks, memory and time.

* :mod:`~planner.grouping.problem`: the instance and its objective; :mod:`~planner.grouping.values`: the
  group-value rules; :mod:`~planner.grouping.schema`: the file schema and the affinity builder;
* :mod:`~planner.grouping.estimate`: affinities from training (subsets, TAG, HOA), the plan, the check;
  :mod:`~planner.grouping.convert`: published tables (HOA, MTG-Net, TAG) to instances;
* backends: :mod:`~planner.grouping.brute`, :mod:`~planner.grouping.highs` (dispatching to
  :mod:`~planner.grouping.milp`, :mod:`~planner.grouping.cover_direct`,
  :mod:`~planner.grouping.colgen_exhaustive`, :mod:`~planner.grouping.colgen` with
  :mod:`~planner.grouping.pricing`), :mod:`~planner.grouping.cpsat`, :mod:`~planner.grouping.heuristic`.
"""
from planner.grouping.problem import GroupingProblem, problem_from_affinity
from planner.grouping.schema import instance_from_affinity

__all__ = ["GroupingProblem", "instance_from_affinity", "problem_from_affinity"]
