"""Selection: which source tasks to train with a target task.

* :mod:`~planner.selection.problem`: the instance (surrogate, constraints), its file schema and objective;
* :mod:`~planner.selection.estimate`, :mod:`~planner.selection.surrogate`: from training runs to a surrogate;
* :mod:`~planner.selection.plan`: estimate, decide, train the final models, compare with baselines;
* backends :mod:`~planner.selection.brute`, :mod:`~planner.selection.highs`, :mod:`~planner.selection.cpsat`
  (named in :data:`planner.registry.KINDS`).
"""
from planner.selection.problem import SelectionProblem

__all__ = ["SelectionProblem"]
