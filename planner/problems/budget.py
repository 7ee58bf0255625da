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
objective (``evaluate``), the baselines every plan is compared with, and ``budget_instance_from_curves``,
the entry point for estimating an instance from measured learning curves (TABA's estimation step).
The solvers are ``planner.backends.budget_dp`` (exact DP, separable case), ``budget_highs``
(Pyomo + HiGHS) and ``budget_brute``; importing this module registers them.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from planner.checks import Checker, type_name
from planner.problems.base import COMMON_KEYS, register_kind
from planner.status import InfeasibleSolution, InstanceError

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


@register_kind
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


# ---------------------------------------------------------------------------
# Baselines reported beside every plan.
# ---------------------------------------------------------------------------
def equal_money(problem: BudgetProblem) -> np.ndarray:
    """Each task gets B / T of the money and buys as many labels as that share (and its cap) allows."""
    share = exact(problem.budget) / len(problem.tasks)
    return np.asarray(
        [min(int(problem.caps[i]), math.floor(share / exact(t.cost))) for i, t in enumerate(problem.tasks)],
        dtype=np.int64,
    )


def equal_count(problem: BudgetProblem) -> np.ndarray:
    """The same number m of labels for every task (capped by max_i), the largest m that fits."""
    caps = problem.caps
    costs = [exact(t.cost) for t in problem.tasks]
    budget = exact(problem.budget)

    def fits(m: int) -> bool:
        return sum((c * min(m, int(k)) for c, k in zip(costs, caps)), Fraction(0)) <= budget

    lo, hi = 0, int(caps.max()) if len(caps) else 0
    while lo < hi:  # largest m with fits(m); fits is monotone
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return np.minimum(caps, lo).astype(np.int64)


def all_to_one(problem: BudgetProblem) -> tuple[np.ndarray, str]:
    """Everything to a single task (as many labels as it can take); the best such task."""
    best, best_value, best_task = None, -math.inf, ""
    for i, t in enumerate(problem.tasks):
        n = np.zeros(len(problem.tasks), dtype=np.int64)
        n[i] = problem.caps[i]
        value = problem.objective(n)
        if value > best_value:
            best, best_value, best_task = n, value, t.id
    return best, best_task


GREEDY_MAX_STEPS = 10_000
"""The coupled greedy moves in steps of s labels, s = ceil(sum_i K_i / GREEDY_MAX_STEPS) (1 when small)."""


def greedy(problem: BudgetProblem) -> np.ndarray:
    """One label at a time to the task with the largest marginal gain per unit cost that still fits.

    Not optimal when costs differ (tests keep the counterexample costs 4, 8, 5 with budget 45).
    A task leaves when its next label adds nothing or no longer fits. Separable: exactly the
    one-label-at-a-time rule, with runs of labels for the same task taken in one vectorised scan.
    Coupled (a label of j raises every e_i by r[i][j]): the gain is the change of the whole
    objective, in steps of ``ceil(sum_i K_i / 10,000)`` labels (one label unless the caps are huge).
    """
    caps = problem.caps
    left = exact(problem.budget)
    costs = [exact(t.cost) for t in problem.tasks]
    if problem.separable:
        return _greedy_separable(problem, caps, costs, left)
    size = len(problem.tasks)
    n = np.zeros(size, dtype=np.int64)
    step = max(1, math.ceil(int(caps.sum()) / GREEDY_MAX_STEPS))
    current = problem.objective(n)
    while True:
        take = np.asarray([min(step, int(caps[j] - n[j]), math.floor(left / costs[j])) for j in range(size)])
        trial = n[None, :] + np.diag(take)
        values = problem.objective_rows(trial)
        gains = values - current
        ok = (take > 0) & (gains > 0)
        if not ok.any():
            return n
        ratio = np.full(size, -np.inf)
        ratio[ok] = gains[ok] / (take[ok] * np.asarray([t.cost for t in problem.tasks])[ok])
        j = int(np.argmax(ratio))
        n[j] += take[j]
        left -= costs[j] * int(take[j])
        current = float(values[j])


def _greedy_separable(problem: BudgetProblem, caps: np.ndarray, costs: list[Fraction], left: Fraction) -> np.ndarray:
    n = _greedy_jump(problem, caps, costs, left)
    left -= sum((c * int(k) for c, k in zip(costs, n)), Fraction(0))
    heap: list[tuple[float, int]] = []  # (-gain / cost of the next label, task index): first out = best
    for i, t in enumerate(problem.tasks):
        if n[i] < caps[i]:
            heapq.heappush(heap, (-float(t.gain(n[i])) / t.cost, i))
    while heap:
        neg_ratio, i = heapq.heappop(heap)
        if neg_ratio >= 0 or costs[i] > left:
            continue  # no gain, or unaffordable now and forever (money only shrinks)
        t = problem.tasks[i]
        limit = min(int(caps[i] - n[i]), math.floor(left / costs[i]))
        rival = heap[0] if heap else None
        take, chunk = 1, 64
        while take < limit:  # would task i be popped again for its next label? scan ahead
            m = np.arange(n[i] + take, n[i] + min(take + chunk, limit))
            neg = -t.gain(m) / t.cost
            stay = neg < 0
            if rival is not None:
                stay &= (neg < rival[0]) | ((neg == rival[0]) & (i < rival[1]))
            stop = np.flatnonzero(~stay)
            if stop.size:
                take += int(stop[0])
                break
            take += len(m)
            chunk *= 2
        n[i] += take
        left -= costs[i] * take
        if n[i] < caps[i]:
            heapq.heappush(heap, (-float(t.gain(n[i])) / t.cost, i))
    return n


def _greedy_jump(problem: BudgetProblem, caps: np.ndarray, costs: list[Fraction], left: Fraction) -> np.ndarray:
    """Skip ahead: the labels the one-at-a-time greedy buys before its first one of ratio <= lambda.

    While any task's next label has gain per cost above lambda, the greedy buys such a label, so
    task i gets exactly the labels before its first one with ratio <= lambda (its prefix minimum).
    If all of those fit together, the greedy buys them all, in some order, without dropping a task.
    The smallest such lambda is found by bisection; the caller finishes label by label.
    """
    size = len(problem.tasks)
    heads: list[Any] = []
    for i, t in enumerate(problem.tasks):
        if isinstance(t.info, Table):  # ratio 0 past the table's end: a finite prefix-minimum array
            top = min(int(caps[i]), int(math.ceil(t.info.points[-1][0])) + 1)
            m = np.arange(top)
            heads.append(np.minimum.accumulate(t.gain(m) / t.cost) if top else np.zeros(0))
        else:
            heads.append(None)

    def count(i: int, lam: float) -> int:
        """Labels of task i before the first with gain / cost <= lam (at most caps[i])."""
        t, cap = problem.tasks[i], int(caps[i])
        if heads[i] is not None:
            pre = heads[i]
            return int(np.searchsorted(-pre, -lam, side="left")) if pre.size else 0
        lo, hi = 0, cap  # closed forms: the ratio falls with m (concave), so bisect on m
        while lo < hi:
            mid = (lo + hi) // 2
            if float(t.gain(mid)) / t.cost > lam:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def taken(lam: float) -> np.ndarray:
        return np.asarray([count(i, lam) for i in range(size)], dtype=np.int64)

    def fits(n: np.ndarray) -> bool:
        return sum((c * int(k) for c, k in zip(costs, n)), Fraction(0)) <= left

    if size == 0:
        return np.zeros(0, dtype=np.int64)
    if fits(taken(0.0)):
        return taken(0.0)
    lo = 0.0  # taken(lo) does not fit
    hi = max(float(t.gain(0)) / t.cost for t in problem.tasks)  # taken(hi) is empty
    for _ in range(200):
        mid = (lo + hi) / 2
        if not lo < mid < hi:
            break
        if fits(taken(mid)):
            hi = mid
        else:
            lo = mid
    return taken(hi)


def baselines(problem: BudgetProblem) -> dict[str, dict[str, Any]]:
    """Equal money, equal count, everything to one task and greedy, each with its objective."""
    out: dict[str, dict[str, Any]] = {}
    one, one_task = all_to_one(problem)
    for name, n in (
        ("equal_money", equal_money(problem)),
        ("equal_count", equal_count(problem)),
        ("all_to_one", one),
        ("greedy", greedy(problem)),
    ):
        entry = problem.solution(n)
        entry["objective"] = problem.objective(n)
        if name == "all_to_one":
            entry["task"] = one_task
        out[name] = entry
    return out


def best_baseline(problem: BudgetProblem, table: dict | None = None) -> tuple[str, np.ndarray]:
    """The baseline with the highest objective (used as the incumbent when a solver stops early)."""
    table = baselines(problem) if table is None else table
    name = max(table, key=lambda k: table[k]["objective"])
    return name, problem.allocation_vector(table[name])


# ---------------------------------------------------------------------------
# Building an instance from measured curves (the plug for TABA's estimation step).
# ---------------------------------------------------------------------------
def fit_information_model(
    labels: Sequence[float], gains: Sequence[float], model: str = "geometric", initial: int = 0
) -> tuple[dict[str, Any], float]:
    """Fit one task's information model to a measured curve of gain against new labels.

    ``labels[k]`` new labels (on top of ``initial``) gave a measured improvement ``gains[k]`` (the
    point (0, 0) is implied). Returns ``(info, scale)``: the ``info`` mapping for the instance file and a
    multiplier for the task's weight. The geometric model has no free amplitude (it is fixed by beta and
    n0), so its amplitude comes back as ``scale``; the power model's ``a`` absorbs it (scale 1), and a
    table is the curve itself (scale 1). Least squares on the gains; beta or b found by a bounded search.
    """
    xs = np.asarray(labels, dtype=float)
    ys = np.asarray(gains, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1 or xs.size == 0:
        raise InstanceError("", "curve", "labels and gains must be two lists of the same non-zero length")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))) or np.any(xs < 0):
        raise InstanceError("", "curve", "labels must be finite and >= 0, gains finite")
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    if model == "table":
        pts: dict[float, list[float]] = {0.0: [0.0]}
        for x, y in zip(xs, ys):
            if x > 0:
                pts.setdefault(float(x), []).append(float(y))
        points = [[_plain(x), float(np.mean(v)) if x > 0 else 0] for x, v in sorted(pts.items())]
        if len(points) < 2:
            raise InstanceError("", "curve", "a table needs at least one point with labels > 0")
        return {"model": "table", "points": points}, 1.0
    from scipy.optimize import minimize_scalar

    def amplitude_fit(shape: np.ndarray) -> tuple[float, float]:
        denom = float(shape @ shape)
        amp = max(0.0, float(shape @ ys) / denom) if denom > 0 else 0.0
        return amp, float(np.sum((amp * shape - ys) ** 2))

    if model == "geometric":
        def loss(beta: float) -> float:
            return amplitude_fit(Geometric(beta).value(xs, initial))[1]

        beta = float(minimize_scalar(loss, bounds=(1e-6, 1 - 1e-9), method="bounded").x)
        amp, _ = amplitude_fit(Geometric(beta).value(xs, initial))
        return {"model": "geometric", "beta": beta}, amp
    if model == "power":
        if initial < 1:
            raise InstanceError("", "initial", "the power model needs at least 1 initial label")

        def loss_b(b: float) -> float:
            return amplitude_fit(Power(1.0, b).value(xs, initial))[1]

        b = float(minimize_scalar(loss_b, bounds=(1e-4, 5.0), method="bounded").x)
        a, _ = amplitude_fit(Power(1.0, b).value(xs, initial))
        if a <= 0:
            raise InstanceError("", "curve", "the gains do not rise with labels; a power model cannot fit them")
        return {"model": "power", "a": a, "b": b}, 1.0
    raise InstanceError("", "model", f"must be one of {', '.join(INFO_MODELS)}, got {model!r}")


def budget_instance_from_curves(
    name: str,
    budget: float,
    costs: Mapping[str, float],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    initial: Mapping[str, int] | None = None,
    relatedness: Mapping[str, Mapping[str, float]] | Sequence[Sequence[float]] | None = None,
    model: str = "geometric",
    caps: Mapping[str, int] | None = None,
    weights: Mapping[str, float] | None = None,
    clip_negative: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A validated budget instance mapping (ready for ``planner.io.write_instance``) from measurements.

    ``curves[task] = (labels, gains)``: the gain measured after that many new labels of the task
    (TABA measures it with pseudo-labels). ``relatedness[i][j]`` (mapping of mappings, or a matrix in
    the order of ``costs``): how much one label of j counts for i; negative transfers are clipped to 0
    when ``clip_negative`` (the contract allows no negative coupling), else rejected.
    ``weights`` are task importances, multiplied by the fitted amplitude.
    """
    ids = list(costs)
    initial = dict(initial or {})
    tasks = []
    for tid in ids:
        if tid not in curves:
            raise InstanceError("", f"curves.{tid}", "no curve measured for this task")
        n0 = int(initial.get(tid, 0))
        info, scale = fit_information_model(*curves[tid], model=model, initial=n0)
        entry: dict[str, Any] = {"id": tid, "cost": costs[tid], "initial": n0}
        if caps and tid in caps:
            entry["max"] = int(caps[tid])
        entry["weight"] = float((weights or {}).get(tid, 1.0)) * scale
        entry["info"] = info
        tasks.append(entry)
    data: dict[str, Any] = {"schema": 1, "kind": "budget", "name": name, "budget": budget, "tasks": tasks}
    if meta:
        data["meta"] = dict(meta)
    if relatedness is not None:
        if isinstance(relatedness, Mapping):
            matrix = [[float(relatedness.get(i, {}).get(j, 0.0)) if i != j else 1.0 for j in ids] for i in ids]
        else:
            matrix = [[float(v) for v in row] for row in relatedness]
        for i, row in enumerate(matrix):
            for j in range(len(row)):
                if i == j and len(matrix) == len(ids):
                    row[j] = 1.0
                elif row[j] < 0 and clip_negative:
                    row[j] = 0.0
        data["relatedness"] = matrix
    BudgetProblem.from_dict(data, Checker("estimated instance"))  # raises InstanceError if anything is off
    return data


# Importing the kind registers its backends (they import this module's classes, defined above).
from planner.backends import budget_brute, budget_dp, budget_highs  # noqa: E402,F401
