"""Label budgets (TABA, arXiv 2308.12949): how many new labels to buy for each task.

The program (docs/formulations.md, "Budget"):

    maximise   sum_i  w_i * I_i(e_i)
    subject to sum_i  c_i * n_i <= B,        n_i integer, 0 <= n_i <= max_i,
               e_i = n_i + sum_{j != i} r[i][j] * n_j      (e_i = n_i without relatedness)

with the information models of the contract (n0 = the task's ``initial`` labels):

* geometric ``beta``: I(n) = beta^n0 * (1 - beta^n) / (1 - beta), the sum of beta^(n0 + m), m < n;
* power ``a, b`` (n0 >= 1): I(n) = a * (n0^(-b) - (n0 + n)^(-b)), the fall of the error a * N^(-b);
* table ``points``: linear interpolation through [[0, 0], [n1, I1], ...], flat past the last point.

This module holds the data (frozen dataclasses), the validation of instance files, the plain-Python
objective (``evaluate``).
The baselines live in ``planner.budget.baselines``, the curve fitting in ``planner.budget.curves``, and
the solvers in ``dp`` (exact DP, separable case), ``highs`` (Pyomo + HiGHS) and ``brute`` beside this
module (named in ``planner.registry``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from planner.checks import Checker, type_name
from planner.problem import COMMON_KEYS
from planner.status import InfeasibleSolution

INFO_MODELS = ("geometric", "power", "table")
MAX_LABELS = 10**12
"""Most labels one task may receive (min(max, budget / cost)); beyond it no solver is meaningful."""


# ---------------------------------------------------------------------------
# Information models: I(n; n0) for real n >= 0, vectorised over numpy arrays.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Geometric:
    """The m-th new label is worth beta^(n0 + m): I(n) = beta^n0 (1 - beta^n) / (1 - beta)."""

    beta: float
    model: ClassVar[str] = "geometric"
    concave: ClassVar[bool] = True

    def value(self, n, initial: int) -> np.ndarray:
        x = np.asarray(n, dtype=float)
        log_beta = math.log(self.beta)
        # -expm1(n log beta) = 1 - beta^n, accurate when beta is close to 1.
        return self.beta ** initial * -np.expm1(x * log_beta) / (1.0 - self.beta)

    def slope(self, n, initial: int) -> np.ndarray:
        x = np.asarray(n, dtype=float)
        log_beta = math.log(self.beta)
        return self.beta ** initial * -log_beta * np.exp(x * log_beta) / (1.0 - self.beta)

    def increment(self, m, initial: int) -> np.ndarray:
        """I(m + 1) - I(m) = beta^(n0 + m), computed directly (no cancellation)."""
        return np.exp((initial + np.asarray(m, dtype=float)) * math.log(self.beta))

    def to_dict(self) -> dict[str, Any]:
        return {"model": "geometric", "beta": self.beta}


@dataclass(frozen=True)
class Power:
    """Error a * N^(-b) at N labels: I(n) = a (n0^(-b) - (n0 + n)^(-b)); needs n0 >= 1."""

    a: float
    b: float
    model: ClassVar[str] = "power"
    concave: ClassVar[bool] = True

    def value(self, n, initial: int) -> np.ndarray:
        x = np.asarray(n, dtype=float)
        return self.a * (float(initial) ** -self.b - (initial + x) ** -self.b)

    def slope(self, n, initial: int) -> np.ndarray:
        x = np.asarray(n, dtype=float)
        return self.a * self.b * (initial + x) ** (-self.b - 1.0)

    def increment(self, m, initial: int) -> np.ndarray:
        """I(m + 1) - I(m) = a N^-b (1 - (1 + 1/N)^-b), N = n0 + m, without cancellation."""
        big_n = initial + np.asarray(m, dtype=float)
        return self.a * big_n ** -self.b * -np.expm1(-self.b * np.log1p(1.0 / big_n))

    def to_dict(self) -> dict[str, Any]:
        return {"model": "power", "a": self.a, "b": self.b}


@dataclass(frozen=True)
class Table:
    """Linear interpolation through ``points`` (first [0, 0], n increasing), flat past the end."""

    points: tuple[tuple[float, float], ...]
    model: ClassVar[str] = "table"

    @cached_property
    def _xy(self) -> tuple[np.ndarray, np.ndarray]:
        arr = np.asarray(self.points, dtype=float)
        return arr[:, 0], arr[:, 1]

    @property
    def concave(self) -> bool:
        """True when the slopes never rise (the flat tail counts as a last slope of 0)."""
        xs, ys = self._xy
        slopes = list(np.diff(ys) / np.diff(xs)) + [0.0]
        scale = max(1.0, float(np.max(np.abs(ys))))
        return all(slopes[k + 1] <= slopes[k] + 1e-12 * scale for k in range(len(slopes) - 1))

    def value(self, n, initial: int) -> np.ndarray:
        xs, ys = self._xy
        return np.interp(np.asarray(n, dtype=float), xs, ys)

    def increment(self, m, initial: int) -> np.ndarray:
        m = np.asarray(m, dtype=float)
        return self.value(m + 1, initial) - self.value(m, initial)

    def to_dict(self) -> dict[str, Any]:
        return {"model": "table", "points": [[_plain(x), _plain(y)] for x, y in self.points]}


InfoModel = Geometric | Power | Table


def _plain(x: float) -> int | float:
    """Write whole numbers as integers in files (0 rather than 0.0)."""
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


def exact(x: float | int) -> Fraction:
    """The number as the decimal a person wrote (0.1 is 1/10, not the binary double)."""
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


# ---------------------------------------------------------------------------
# The instance.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetTask:
    id: str
    cost: float
    info: InfoModel
    initial: int = 0
    max: int | None = None
    weight: float = 1.0

    def value(self, n) -> np.ndarray:
        """weight * I(n) (the task's term of the objective), vectorised."""
        return self.weight * self.info.value(n, self.initial)

    def gain(self, m) -> np.ndarray:
        """weight * (I(m + 1) - I(m)): the value of the (m + 1)-th new label, vectorised."""
        return self.weight * self.info.increment(m, self.initial)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "cost": _plain(self.cost), "initial": self.initial}
        if self.max is not None:
            out["max"] = self.max
        out["weight"] = _plain(self.weight)
        out["info"] = self.info.to_dict()
        return out


_TASK_KEYS = ("id", "cost", "info")
_TASK_OPTIONAL = ("initial", "max", "weight")
_TOP_KEYS = ("budget", "relatedness")


@dataclass(frozen=True)
class BudgetProblem:
    name: str
    budget: float
    tasks: tuple[BudgetTask, ...]
    relatedness: tuple[tuple[float, ...], ...] | None = None
    description: str | None = field(default=None, compare=False)
    meta: Any = field(default=None, compare=False)

    kind: ClassVar[str] = "budget"
    sense: ClassVar[str] = "max"

    # -- derived data ------------------------------------------------------
    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.tasks)

    @property
    def separable(self) -> bool:
        """No coupling: relatedness absent or zero off the diagonal, so e_i = n_i."""
        if self.relatedness is None:
            return True
        return all(
            v == 0 for i, row in enumerate(self.relatedness) for j, v in enumerate(row) if i != j
        )

    @cached_property
    def coupling(self) -> np.ndarray:
        """A with e = A n: ones on the diagonal, r[i][j] off it."""
        size = len(self.tasks)
        a = np.eye(size)
        if self.relatedness is not None:
            r = np.asarray(self.relatedness, dtype=float)
            off = ~np.eye(size, dtype=bool)
            a[off] = r[off]
        return a

    @cached_property
    def caps(self) -> np.ndarray:
        """K_i = min(max_i, floor(B / c_i)): the most labels task i can get alone (exact arithmetic)."""
        budget = exact(self.budget)
        out = []
        for t in self.tasks:
            afford = math.floor(budget / exact(t.cost))
            out.append(min(afford if t.max is None else min(t.max, afford), 2**62))
        return np.asarray(out, dtype=np.int64)

    def with_budget(self, budget: float) -> "BudgetProblem":
        return replace(self, budget=float(budget))

    # -- objective ---------------------------------------------------------
    def objective(self, n: Sequence[int] | np.ndarray) -> float:
        """sum_i w_i I_i(e_i) for one allocation vector (no feasibility check)."""
        return float(self.objective_rows(np.asarray(n, dtype=float)[None, :])[0])

    def objective_rows(self, labels: np.ndarray) -> np.ndarray:
        """The objective of every row of an (M, T) array of allocations."""
        labels = np.asarray(labels, dtype=float)
        eff = labels @ self.coupling.T if not self.separable else labels
        total = np.zeros(labels.shape[0])
        for i, task in enumerate(self.tasks):
            if task.weight != 0:
                total += task.value(eff[:, i])
        return total

    def spent(self, n: Sequence[int] | np.ndarray) -> Fraction:
        return sum((exact(t.cost) * int(k) for t, k in zip(self.tasks, n)), Fraction(0))

    def solution(self, n: Sequence[int] | np.ndarray, **extra: Any) -> dict[str, Any]:
        """The contract's solution mapping for an allocation vector (extra fields appended)."""
        n = [int(k) for k in n]
        out: dict[str, Any] = {
            "allocation": {t.id: k for t, k in zip(self.tasks, n)},
            "spent": float(self.spent(n)),
        }
        out.update(extra)
        return out

    def allocation_vector(self, solution: Mapping[str, Any]) -> np.ndarray:
        """Check a solution's allocation (integers within caps and budget) and return it as a vector."""
        if not isinstance(solution, Mapping):
            raise InfeasibleSolution(f"budget solution must be a mapping, got {type_name(solution)}")
        alloc = solution.get("allocation")
        if not isinstance(alloc, Mapping):
            raise InfeasibleSolution(f"solution.allocation must be a mapping of task to labels, got {type_name(alloc)}")
        ids = set(self.task_ids)
        for key in alloc:
            if key not in ids:
                raise InfeasibleSolution(f"solution.allocation: unknown task {key!r}")
        n = []
        for t in self.tasks:
            if t.id not in alloc:
                raise InfeasibleSolution(f"solution.allocation: task {t.id!r} is missing")
            k = alloc[t.id]
            if isinstance(k, bool) or not isinstance(k, (int, float, np.integer)) or not float(k).is_integer():
                raise InfeasibleSolution(f"solution.allocation.{t.id}: labels must be a whole number, got {k!r}")
            k = int(k)
            if k < 0:
                raise InfeasibleSolution(f"solution.allocation.{t.id}: {k} labels is negative")
            if t.max is not None and k > t.max:
                raise InfeasibleSolution(f"solution.allocation.{t.id}: {k} labels is above max {t.max}")
            n.append(k)
        spent = self.spent(n)
        if spent > exact(self.budget):
            raise InfeasibleSolution(f"solution spends {float(spent):g}, above the budget {self.budget:g}")
        if "spent" in solution:
            reported = solution["spent"]
            if isinstance(reported, bool) or not isinstance(reported, (int, float)) or not math.isclose(
                float(reported), float(spent), rel_tol=1e-9, abs_tol=1e-9
            ):
                raise InfeasibleSolution(f"solution.spent is {reported!r} but the allocation costs {float(spent):g}")
        return np.asarray(n, dtype=np.int64)

    def evaluate(self, solution: Mapping[str, Any]) -> float:
        """The contract's objective sum_i weight_i * I_i(e_i), recomputed from the allocation alone."""
        return self.objective(self.allocation_vector(solution))

    # -- files -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], checker: Checker) -> "BudgetProblem":
        check = checker
        data = check.mapping(data, "")
        check.keys(data, "", required=("budget", "tasks"), optional=COMMON_KEYS + _TOP_KEYS)
        name = data.get("name") or "instance"
        name = check.string(name, "name")
        description = data.get("description")
        if description is not None:
            check.string(description, "description")
        budget = check.number(data["budget"], "budget", lo=0)
        raw_tasks = check.sequence(data["tasks"], "tasks", min_len=1)
        tasks: list[BudgetTask] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_tasks):
            where = f"tasks[{i}]"
            if not isinstance(raw, Mapping):
                check.fail(where, f"each budget task is an object with id, cost and info, got {type_name(raw)}")
            task = _parse_task(raw, where, check)
            if task.id in seen:
                check.fail(f"{where}.id", f"duplicate task id {task.id!r}")
            seen.add(task.id)
            tasks.append(task)
        for i, task in enumerate(tasks):
            most = math.floor(exact(budget) / exact(task.cost))
            if task.max is not None:
                most = min(most, task.max)
            if most > MAX_LABELS:
                check.fail(
                    f"tasks[{i}].cost",
                    f"the budget buys up to {float(min(most, 10 ** 300)):.3g} labels of this task (limit {MAX_LABELS:.0e}); "
                    "give it a max or count money in larger units",
                )
        relatedness = None
        if data.get("relatedness") is not None:
            relatedness = _parse_relatedness(data["relatedness"], len(tasks), check)
        return cls(
            name=name,
            budget=budget,
            tasks=tuple(tasks),
            relatedness=relatedness,
            description=description,
            meta=data.get("meta"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": 1, "kind": "budget", "name": self.name}
        if self.description is not None:
            out["description"] = self.description
        if self.meta is not None:
            out["meta"] = self.meta
        out["budget"] = _plain(self.budget)
        out["tasks"] = [t.to_dict() for t in self.tasks]
        if self.relatedness is not None:
            out["relatedness"] = [[_plain(v) for v in row] for row in self.relatedness]
        return out


def _parse_task(raw: Mapping[str, Any], where: str, check: Checker) -> BudgetTask:
    raw = check.mapping(raw, where)
    check.keys(raw, where, required=_TASK_KEYS, optional=_TASK_OPTIONAL)
    tid = check.task_id(raw["id"], f"{where}.id")
    cost = check.number(raw["cost"], f"{where}.cost", lo=0, lo_open=True)
    initial = check.integer(raw.get("initial", 0), f"{where}.initial", lo=0)
    cap = raw.get("max")
    cap = None if cap is None else check.integer(cap, f"{where}.max", lo=0)
    weight = check.number(raw.get("weight", 1.0), f"{where}.weight", lo=0)
    info = _parse_info(raw["info"], f"{where}.info", check)
    if isinstance(info, Power) and initial < 1:
        check.fail(
            f"{where}.initial",
            f"the power model needs at least 1 initial label (its error a*N^-b is undefined at N=0), got {initial}",
        )
    return BudgetTask(id=tid, cost=float(cost), info=info, initial=initial, max=cap, weight=float(weight))


def _parse_info(raw: Any, where: str, check: Checker) -> InfoModel:
    raw = check.mapping(raw, where)
    if "model" not in raw:
        check.fail(f"{where}.model", f"missing required key (one of {', '.join(INFO_MODELS)})")
    model = check.string(raw["model"], f"{where}.model", choices=INFO_MODELS)
    if model == "geometric":
        check.keys(raw, where, required=("model", "beta"))
        beta = check.number(raw["beta"], f"{where}.beta", lo=0, hi=1, lo_open=True, hi_open=True)
        return Geometric(beta=float(beta))
    if model == "power":
        check.keys(raw, where, required=("model", "a", "b"))
        a = check.number(raw["a"], f"{where}.a", lo=0, lo_open=True)
        b = check.number(raw["b"], f"{where}.b", lo=0, lo_open=True)
        return Power(a=float(a), b=float(b))
    check.keys(raw, where, required=("model", "points"))
    pts = check.sequence(raw["points"], f"{where}.points", min_len=2)
    points: list[tuple[float, float]] = []
    for k, p in enumerate(pts):
        at = f"{where}.points[{k}]"
        p = check.sequence(p, at)
        if len(p) != 2:
            check.fail(at, f"a point is [n, I], got {len(p)} numbers")
        x = float(check.number(p[0], f"{at}[0]", lo=0))
        y = float(check.number(p[1], f"{at}[1]"))
        if k == 0 and (x != 0 or y != 0):
            check.fail(at, f"the table must start at [0, 0] (no new labels, no new information), got [{p[0]}, {p[1]}]")
        if k > 0 and x <= points[-1][0]:
            check.fail(f"{at}[0]", f"n must increase strictly, got {p[0]} after {_plain(points[-1][0])}")
        points.append((x, y))
    return Table(points=tuple(points))


def _parse_relatedness(raw: Any, size: int, check: Checker) -> tuple[tuple[float, ...], ...]:
    rows = check.sequence(raw, "relatedness")
    if len(rows) != size:
        check.fail("relatedness", f"must be a {size}x{size} matrix (one row per task, in task order), got {len(rows)} rows")
    out = []
    for i, row in enumerate(rows):
        row = check.sequence(row, f"relatedness[{i}]")
        if len(row) != size:
            check.fail(f"relatedness[{i}]", f"must have {size} entries (one per task), got {len(row)}")
        vals = []
        for j, v in enumerate(row):
            x = float(check.number(v, f"relatedness[{i}][{j}]", lo=0))
            if i == j and x not in (0.0, 1.0):
                check.fail(
                    f"relatedness[{i}][{j}]",
                    f"the diagonal is not used (a task's own label counts once); write 1 or 0, got {v}",
                )
            vals.append(x)
        out.append(tuple(vals))
    return tuple(out)
