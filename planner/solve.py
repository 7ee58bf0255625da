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


def check_time_limit(time_limit: float | None, option: str = "--time-limit") -> float | None:
    """The one rule for every command and backend: None (no limit) or a finite number of seconds >= 0.
    NaN, infinity, negatives and non-numbers are a usage error (exit 2)."""
    if time_limit is None:
        return None
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)):
        raise UsageError(f"{option}: must be a number of seconds, got {time_limit!r}")
    if not math.isfinite(time_limit) or time_limit < 0:
        raise UsageError(f"{option}: must be a finite, non-negative number of seconds, got {time_limit}")
    return float(time_limit)


def remaining(time_limit: float | None, started: float) -> float | None:
    """What is left of ``time_limit`` seconds counted from ``started`` (a perf_counter reading), so a
    limit covers reading and validating the input too, not only the solver."""
    if time_limit is None:
        return None
    return max(0.0, time_limit - (time.perf_counter() - started))


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
    time_limit = check_time_limit(time_limit)
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
