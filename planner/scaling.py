"""Turning float data into integers for CP-SAT, with the error bounded and stated."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

OBJ_TARGET = 1e9  # the largest scaled objective coefficient


MAX_SCALE = 1e15  # tiny coefficients (1e-308) must not make the scale overflow


def objective_scale(coefs: Sequence[float]) -> float:
    """A scale s so that max |s * c| is about 1e9 (1.0 when every coefficient is zero), at most 1e15:
    below 1e-6 in magnitude, coefficients round to fewer digits, and the stated error 0.5/s says so."""
    top = max((abs(c) for c in coefs), default=0.0)
    return min(OBJ_TARGET / top, MAX_SCALE) if top > 0 else 1.0


def scale_objective(coefs: Sequence[float]) -> tuple[list[int], float, float]:
    """Round s*c to integers. Returns (integers, s, per-term error bound 0.5/s in original units)."""
    s = objective_scale(coefs)
    return [int(round(c * s)) for c in coefs], s, 0.5 / s


def map_cpsat_status(cp_model, code, has_solution: bool):
    """CP-SAT's status codes to the project's statuses (UNKNOWN there means a limit was hit)."""
    from planner.status import SolveStatus

    if code == cp_model.OPTIMAL:
        return SolveStatus.OPTIMAL
    if code == cp_model.FEASIBLE:
        return SolveStatus.FEASIBLE
    if code == cp_model.INFEASIBLE:
        return SolveStatus.INFEASIBLE
    if code == cp_model.MODEL_INVALID:
        return SolveStatus.ERROR
    return SolveStatus.FEASIBLE if has_solution else SolveStatus.NO_SOLUTION


def exact_integer_scale(values: Sequence[float], max_digits: int = 9) -> int | None:
    """The smallest 10^d (d <= max_digits) making every value an integer (to 1e-9), else None."""
    for d in range(max_digits + 1):
        f = 10 ** d
        if all(abs(v * f - round(v * f)) <= 1e-9 * max(1.0, abs(v * f)) for v in values):
            if all(abs(v * f) < 2**53 for v in values):
                return f
            return None
    return None


def smallest_unit(values: Sequence[float], max_digits: int = 9) -> Fraction | None:
    """The greatest common unit u such that each value is a whole multiple of u (decimal data)."""
    f = exact_integer_scale(values, max_digits)
    if f is None:
        return None
    ints = [int(round(v * f)) for v in values]
    g = 0
    for n in ints:
        g = math.gcd(g, abs(n))
    g = g or 1
    return Fraction(g, f)
