"""Run a Pyomo model with HiGHS (through Pyomo's appsi interface) and map its statuses.

Shared by every kind's ``highs`` backend: build the model, call :func:`run_highs`, read the
variables back. The map from HiGHS's termination conditions to :class:`SolveStatus` is explicit;
anything unlisted is ``UNKNOWN``. ``mip_rel_gap = 0`` so that ``optimal`` means proven optimal.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass

from planner.status import SolveStatus, SolverUnavailable


@dataclass
class HighsOutcome:
    status: SolveStatus
    objective: float | None
    bound: float | None
    has_solution: bool
    message: str = ""


@contextlib.contextmanager
def stdout_to_stderr():
    """Send C-level writes to fd 1 to stderr instead (HiGHS prints a banner on its first model, and
    warnings such as "matrix contains |value| at/below tolerance" when cuts with tiny coefficients are
    added to a persistent model), so ``--json`` keeps stdout to exactly one object."""
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


def solve_quietly(opt, model, **kwargs):
    """``opt.solve(model)`` with HiGHS's own prints on stderr (:func:`stdout_to_stderr`); a stop
    request (Ctrl-C, :mod:`planner.interrupt`) interrupts the HiGHS run inside it."""
    from planner import interrupt

    with stdout_to_stderr(), interrupt.highs_interruptible(lambda: getattr(opt, "_solver_model", None)):
        return opt.solve(model, **kwargs)


def _highs():
    try:
        from pyomo.contrib.appsi.solvers import Highs
    except Exception as exc:  # pragma: no cover - depends on the install
        raise SolverUnavailable(f"Pyomo's HiGHS interface cannot be imported ({exc})") from None
    opt = Highs()
    try:
        ok = bool(opt.available())
    except Exception:  # pragma: no cover
        ok = False
    if not ok:
        raise SolverUnavailable("HiGHS is not available (install the highspy package)")
    return opt


def run_highs(model, time_limit: float | None, sense: str, options: dict | None = None) -> HighsOutcome:
    """Solve ``model`` (a Pyomo ConcreteModel with one active objective) and load its solution."""
    from pyomo.contrib.appsi.base import TerminationCondition as TC

    from planner import interrupt

    opt = _highs()
    opt.config.load_solution = False
    opt.config.stream_solver = bool((options or {}).get("verbose", False))
    time_limit = interrupt.shortened(time_limit)
    if time_limit is not None:
        opt.config.time_limit = max(float(time_limit), 0.0)
    opt.config.mip_gap = 0.0
    highs_options = {"mip_rel_gap": 0.0, "mip_abs_gap": 1e-9, "threads": int((options or {}).get("threads", 1))}
    if (options or {}).get("random_seed") is not None:
        highs_options["random_seed"] = int(options["random_seed"])
    opt.highs_options = highs_options
    if time_limit is not None and time_limit <= 0:
        return HighsOutcome(SolveStatus.NO_SOLUTION, None, None, False, "time limit 0 s: no search was run")
    res = solve_quietly(opt, model)
    tc = res.termination_condition
    has_solution = res.best_feasible_objective is not None and math.isfinite(res.best_feasible_objective)
    bound = res.best_objective_bound
    bound = float(bound) if bound is not None and math.isfinite(bound) else None
    if tc == TC.optimal:
        status = SolveStatus.OPTIMAL
    elif tc in (TC.maxTimeLimit, TC.maxIterations, TC.interrupted, TC.objectiveLimit, TC.minStepLength):
        status = SolveStatus.FEASIBLE if has_solution else SolveStatus.NO_SOLUTION
    elif tc == TC.infeasible:
        status = SolveStatus.INFEASIBLE
    elif tc in (TC.unbounded, TC.infeasibleOrUnbounded):
        status = SolveStatus.UNBOUNDED if tc == TC.unbounded else SolveStatus.INFEASIBLE
    elif tc == TC.error:
        status = SolveStatus.ERROR
    else:
        status = SolveStatus.FEASIBLE if has_solution else SolveStatus.UNKNOWN
    if has_solution:
        res.solution_loader.load_vars()
    objective = float(res.best_feasible_objective) if has_solution else None
    if status is SolveStatus.OPTIMAL and bound is None:
        bound = objective
    return HighsOutcome(status, objective, bound, has_solution, f"HiGHS: {tc.name}")
