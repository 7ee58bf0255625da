"""``solve(problem, solver="auto", time_limit=None, options=None) -> SolveResult``.

One entry point for every kind. Backends and the ``auto`` order come from :mod:`planner.registry`.
Whatever a backend returns is checked here: the solution's feasibility and objective are
recomputed in plain Python (``problem.evaluate``) and that objective is the one reported.
"""
from __future__ import annotations

import math
import time

from planner import interrupt, registry
from planner.status import (
    InfeasibleSolution,
    PlannerError,
    SolveResult,
    SolveStatus,
    SolverUnavailable,
    UsageError,
)


def solve(problem, solver: str = "auto", time_limit: float | None = None, options: dict | None = None) -> SolveResult:
    """Solve ``problem`` with the named backend (or the best available one for ``auto``).

    Ctrl-C (SIGINT) during the solve stops it within a few seconds and returns the best solution
    found so far as an ordinary result (``feasible`` with its bound, or ``no_solution``);
    a second Ctrl-C raises ``KeyboardInterrupt`` (:mod:`planner.interrupt`)."""
    return interrupt.run(_solve, problem, solver, time_limit, options)


def _solve(problem, solver: str, time_limit: float | None, options: dict | None) -> SolveResult:
    options = dict(options or {})
    kind = problem.kind
    available = registry.backend_names(kind)
    if time_limit is not None and (not math.isfinite(time_limit) or time_limit < 0):
        raise UsageError(f"time limit must be a non-negative number of seconds, got {time_limit}")
    if solver == "auto":
        order = registry.auto_order(problem)
    else:
        if solver not in available:
            raise UsageError(
                f"solver {solver!r} does not solve {kind} instances (available: {', '.join(available)})"
            )
        order = [solver]
    notes: list[str] = []
    start = time.perf_counter()
    for name in order:
        if notes and interrupt.requested():  # a stop request ends the search: no further backend
            break
        try:
            spec = registry.backend_spec(kind, name)
            if not registry.is_installed(spec):
                raise SolverUnavailable(f"needs {', '.join(spec.requires)}, which is not installed")
            result = registry.backend(kind, name)(problem, time_limit, options)
        except SolverUnavailable as exc:
            if solver != "auto":
                raise
            notes.append(f"{name}: {exc}")
            continue
        except (PlannerError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a crashing backend: say which, and let auto try the next
            why = f"{name} failed ({type(exc).__name__}: {exc})"
            if solver != "auto":
                raise PlannerError(f"solver {why}") from exc
            notes.append(why)
            continue
        result.solver = result.solver or name
        result.seconds = time.perf_counter() - start
        if interrupt.requested():
            notes.append("stopped on request (Ctrl-C): the best solution found so far")
            result.extra.setdefault("interrupted", True)
        if notes:
            result.message = "; ".join(notes + ([result.message] if result.message else []))
        return _verified(problem, result)
    if interrupt.requested():
        return SolveResult(SolveStatus.NO_SOLUTION, solver=solver, seconds=time.perf_counter() - start,
                           message="; ".join(notes + ["stopped on request (Ctrl-C) before any solution"]),
                           extra={"interrupted": True})
    raise SolverUnavailable("no backend could solve this instance: " + "; ".join(notes))


def _verified(problem, result: SolveResult) -> SolveResult:
    """Recompute objective and feasibility; keep the bound on the right side of the objective."""
    if result.status.has_solution:
        if result.solution is None:
            raise InfeasibleSolution(f"{result.solver} reported {result.status.value} without a solution")
        objective = problem.evaluate(result.solution)
        result.objective = objective
        if result.status is SolveStatus.OPTIMAL and result.bound is None:
            result.bound = objective
        if result.bound is not None:
            # A bound never lies beyond the objective of a solution we hold.
            if problem.sense == "min":
                result.bound = min(result.bound, objective)
            else:
                result.bound = max(result.bound, objective)
    else:
        result.objective = None
        result.solution = None
    return result
