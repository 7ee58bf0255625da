"""Label budgets: how many new labels to buy per task for a fixed budget (TABA).

* :mod:`~planner.budget.problem`: information models, the instance, its file schema and objective;
* :mod:`~planner.budget.baselines`: equal money, equal count, all to one, greedy;
* :mod:`~planner.budget.curves`, :mod:`~planner.budget.estimate`: learning curves and relatedness from training;
* :mod:`~planner.budget.whatif`: the optimum at every budget of a range in one pass;
* backends :mod:`~planner.budget.dp`, :mod:`~planner.budget.highs`, :mod:`~planner.budget.brute`.
"""
from planner.budget.problem import BudgetProblem

__all__ = ["BudgetProblem"]
