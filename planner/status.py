"""The project's own solve statuses, the shared result object and the error hierarchy.

Every backend maps its solver's statuses onto :class:`SolveStatus` explicitly;
``UNKNOWN`` is the fallback. A run stopped by a time limit is never ``OPTIMAL``.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any


class SolveStatus(str, enum.Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    NO_SOLUTION = "no_solution"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        """Exit codes of the contract: 0 solved, 1 runtime error, 3 infeasible/unbounded, 4 no solution."""
        return _EXIT_CODES[self]

    @property
    def has_solution(self) -> bool:
        return self in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)


_EXIT_CODES = {
    SolveStatus.OPTIMAL: 0,
    SolveStatus.FEASIBLE: 0,
    SolveStatus.INFEASIBLE: 3,
    SolveStatus.UNBOUNDED: 3,
    SolveStatus.NO_SOLUTION: 4,
    SolveStatus.ERROR: 1,
    SolveStatus.UNKNOWN: 4,
}


class PlannerError(Exception):
    """Base of the project's errors. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class InstanceError(PlannerError):
    """An input file (or a value in it) is invalid: one line naming the file, the field and why."""

    exit_code = 2

    def __init__(self, source: str, field: str, why: str):
        self.source = source
        self.field = field
        self.why = why
        where = f"{source}: " if source else ""
        at = f"{_one_line(field, 120)}: " if field else ""
        super().__init__(f"{where}{at}{_one_line(why, 240)}")


def _one_line(text: str, limit: int) -> str:
    """Keep a message one short line whatever the input held (long ids and keys, newlines, escape codes)."""
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]}
_CONTROL.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x1B: "\\x1b"})
_CONTROL.update({c: f"\\u{c:04x}" for c in (0x2028, 0x2029, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F)})


def printable(text: object) -> str:
    """``text`` safe to show on a terminal, on one line: control characters (ESC and the rest of C0,
    DEL, C1), line and paragraph separators and bidirectional overrides are shown as escapes, and
    lone surrogates (undecodable bytes of file names) as ``\\udcNN``; other text is kept."""
    text = str(text).translate(_CONTROL)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class UsageError(PlannerError):
    """A request that cannot be meant as given (a solver that does not solve this kind, ...)."""

    exit_code = 2


class SolverUnavailable(PlannerError):
    """A backend cannot run here (package missing, or the input is too large for it)."""

    exit_code = 1


class Interrupted(PlannerError):
    """Ctrl-C during training: stopped after the batch in progress (exit 130, as shells report SIGINT)."""

    exit_code = 130


class InfeasibleSolution(PlannerError):
    """A returned solution fails the plain-Python check (a solver bug, never the user's fault)."""

    exit_code = 1


@dataclass
class SolveResult:
    """What every backend returns; ``objective`` is recomputed in plain Python by ``solve``."""

    status: SolveStatus
    objective: float | None = None
    bound: float | None = None
    solution: dict[str, Any] | None = None
    solver: str = ""
    seconds: float = 0.0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        """Relative gap |objective - bound| / max(1, |objective|), or None when either is missing."""
        if self.objective is None or self.bound is None:
            return None
        if not (math.isfinite(self.objective) and math.isfinite(self.bound)):
            return None
        return abs(self.objective - self.bound) / max(1.0, abs(self.objective))

    def to_dict(self, instance: str, kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": 1,
            "instance": instance,
            "kind": kind,
            "status": self.status.value if self.status is not SolveStatus.UNKNOWN else "no_solution",
            "objective": _clean(self.objective),
            "bound": _clean(self.bound),
            "solution": self.solution if self.status.has_solution else None,
            "solver": self.solver,
            "seconds": round(float(self.seconds), 6),
        }
        gap = self.gap
        out["gap"] = None if gap is None else round(gap, 12)
        if gap is not None:  # the same gap in percent, where a bound exists
            out["gap_percent"] = round(100.0 * gap, 6)
        if self.message:
            out["message"] = self.message
        out.update(self.extra)
        return out


def _clean(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
