"""Source-task selection: minimise the surrogate's predicted target loss.

    g(S) = intercept + sum_i theta_i x_i + sum_{i<j} theta_ij x_i x_j,   x in {0,1}^k

subject to ``min_size <= |S| <= max_size``, ``x_i = 1`` for must_include, ``x_i = 0`` for
exclude, and ``sum_i c_i x_i <= budget``. The threshold rule of Algorithm 1 (Li, Nguyen,
Zhang 2023) selects every source with theta_i < gamma; when the instance gives ``threshold``
its set is reported beside the optimum (``solution.threshold``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.checks import Checker
from planner.problem import COMMON_KEYS
from planner.status import InfeasibleSolution

FEAS_TOL = 1e-9


@dataclass(frozen=True)
class SelectionProblem:
    kind = "selection"
    sense = "min"

    name: str
    target: str
    sources: tuple[str, ...]
    intercept: float
    linear: tuple[float, ...]  # theta_i, aligned with sources
    pairwise: tuple[tuple[int, int, float], ...]  # (i, j, theta_ij) with i < j, indices into sources
    baseline: float | None = None
    threshold: float | None = None
    min_size: int = 0
    max_size: int | None = None
    must_include: frozenset[str] = field(default_factory=frozenset)
    exclude: frozenset[str] = field(default_factory=frozenset)
    costs: tuple[float, ...] | None = None  # aligned with sources; None when no budget constraint
    budget: float | None = None
    meta: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    # -- views --------------------------------------------------------------
    @property
    def k(self) -> int:
        return len(self.sources)

    @property
    def task_ids(self) -> tuple[str, ...]:
        return (self.target,) + self.sources

    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.sources)}

    def theta_matrix(self) -> np.ndarray:
        """Upper-triangular k x k array of the pairwise terms (theta_ij at [i, j], i < j)."""
        q = np.zeros((self.k, self.k))
        for i, j, v in self.pairwise:
            q[i, j] += v
        return q

    # -- objective ----------------------------------------------------------
    def predict_mask(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=float)
        value = self.intercept + float(np.dot(self.linear, x)) if self.k else self.intercept
        for i, j, v in self.pairwise:
            value += v * x[i] * x[j]
        return float(value)

    def mask_of(self, selected) -> np.ndarray:
        idx = self.index()
        x = np.zeros(self.k)
        for t in selected:
            x[idx[t]] = 1.0
        return x

    def predict(self, selected) -> float:
        return self.predict_mask(self.mask_of(selected))

    def violations(self, selected) -> list[str]:
        """Every constraint the set breaks, in words (empty when feasible)."""
        problems = []
        chosen = set(selected)
        size = len(chosen)
        if size < self.min_size:
            problems.append(f"{size} tasks selected, min_size is {self.min_size}")
        if self.max_size is not None and size > self.max_size:
            problems.append(f"{size} tasks selected, max_size is {self.max_size}")
        missing = sorted(self.must_include - chosen)
        if missing:
            problems.append(f"must_include tasks not selected: {', '.join(missing)}")
        banned = sorted(self.exclude & chosen)
        if banned:
            problems.append(f"excluded tasks selected: {', '.join(banned)}")
        if self.costs is not None and self.budget is not None:
            x = self.mask_of(chosen)
            spent = float(np.dot(self.costs, x))
            if spent > self.budget + FEAS_TOL * max(1.0, abs(self.budget)):
                problems.append(f"cost {spent:g} exceeds budget {self.budget:g}")
        return problems

    def evaluate(self, solution: dict[str, Any]) -> float:
        selected = solution.get("selected")
        if not isinstance(selected, list):
            raise InfeasibleSolution("selection solution has no 'selected' list")
        known = set(self.sources)
        unknown = [t for t in selected if t not in known]
        if unknown:
            raise InfeasibleSolution(f"solution selects unknown tasks: {unknown}")
        if len(set(selected)) != len(selected):
            raise InfeasibleSolution("solution selects a task twice")
        bad = self.violations(selected)
        if bad:
            raise InfeasibleSolution("solution breaks constraints: " + "; ".join(bad))
        value = self.predict(selected)
        solution["predicted"] = value
        return value

    def make_solution(self, x) -> dict[str, Any]:
        """The contract's solution mapping from a 0/1 vector (ids in source order)."""
        selected = [t for t, xi in zip(self.sources, x) if xi > 0.5]
        out: dict[str, Any] = {"selected": selected, "predicted": self.predict(selected)}
        if self.baseline is not None:
            out["baseline"] = self.baseline
            out["negative_transfer"] = out["predicted"] > self.baseline
        if self.threshold is not None:
            out["threshold"] = self.threshold_solution()
        if self.costs is not None:
            out["cost"] = float(np.dot(self.costs, self.mask_of(selected)))
        return out

    def threshold_solution(self) -> dict[str, Any]:
        """Algorithm 1: every source with theta_i < gamma (constraints are reported, not enforced)."""
        assert self.threshold is not None
        chosen = [t for t, th in zip(self.sources, self.linear) if th < self.threshold]
        return {
            "gamma": self.threshold,
            "selected": chosen,
            "predicted": self.predict(chosen),
            "violations": self.violations(chosen),
        }

    # -- file form ----------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, check: Checker) -> "SelectionProblem":
        check.keys(data, "", required=("schema", "kind", "target", "surrogate"),
                   optional=COMMON_KEYS + ("baseline", "threshold", "constraints"))
        name = check.string(data["name"], "name")
        target = check.task_id(data["target"], "target")
        per_task_cost: dict[str, float] = {}
        if "tasks" in data and data["tasks"] is not None:
            ids: list[str] = []
            for tid, item, where in check.task_entries(data["tasks"], "tasks", optional=("cost", "name", "description")):
                if "cost" in item:
                    per_task_cost[tid] = check.number(item["cost"], f"{where}.cost", lo=0)
                ids.append(tid)
            if target not in ids:
                check.fail("target", f"unknown task id {target!r} (not in tasks)")
            sources = [t for t in ids if t != target]
            tasks_given = True
        else:
            sources = []
            tasks_given = False

        sur = check.mapping(data["surrogate"], "surrogate")
        check.keys(sur, "surrogate", required=("linear",), optional=("intercept", "pairwise", "kind", "meta"))
        intercept = check.number(sur.get("intercept", 0.0), "surrogate.intercept")
        linear_raw = check.mapping(sur["linear"], "surrogate.linear")
        if not tasks_given:
            # Without a task list the sources are the keys of the linear scores, in file order.
            sources = []
            for key in linear_raw:
                check.task_id(key, f"surrogate.linear.{key}")
                sources.append(key)
        if target in sources:
            where = "surrogate.linear" if not tasks_given else "tasks"
            if not tasks_given:
                check.fail(f"surrogate.linear.{target}", "the target cannot have a source score")
            sources.remove(target)
        known = set(sources)
        theta = {t: 0.0 for t in sources}
        for key, value in linear_raw.items():
            field_name = f"surrogate.linear.{key}"
            if key == target:
                check.fail(field_name, "the target cannot have a source score")
            check.known(key, known, field_name)
            theta[key] = check.number(value, field_name)
        index = {t: i for i, t in enumerate(sources)}
        pairs: dict[tuple[int, int], float] = {}
        for n, item in enumerate(check.sequence(sur.get("pairwise", []) or [], "surrogate.pairwise")):
            where = f"surrogate.pairwise[{n}]"
            triple = check.sequence(item, where)
            if len(triple) != 3:
                check.fail(where, f"must be [task_i, task_j, theta_ij], got {len(triple)} items")
            a = check.known(check.task_id(triple[0], f"{where}[0]"), known, f"{where}[0]")
            b = check.known(check.task_id(triple[1], f"{where}[1]"), known, f"{where}[1]")
            if a == b:
                check.fail(where, f"a pair needs two different tasks, got {a!r} twice")
            v = check.number(triple[2], f"{where}[2]")
            key = tuple(sorted((index[a], index[b])))
            if key in pairs:
                check.fail(where, f"pair ({a}, {b}) is given twice")
            pairs[key] = v
        pairwise = tuple((i, j, v) for (i, j), v in sorted(pairs.items()))

        baseline = None
        if data.get("baseline") is not None:
            baseline = check.number(data["baseline"], "baseline")
        threshold = None
        if data.get("threshold") is not None:
            threshold = check.number(data["threshold"], "threshold")

        min_size, max_size = 0, None
        must: set[str] = set()
        excl: set[str] = set()
        costs_map: dict[str, float] = dict(per_task_cost)
        budget = None
        cons = data.get("constraints")
        if cons is not None:
            cons = check.mapping(cons, "constraints")
            check.keys(cons, "constraints", optional=("min_size", "max_size", "must_include", "exclude", "costs", "budget"))
            if cons.get("min_size") is not None:
                min_size = check.integer(cons["min_size"], "constraints.min_size", lo=0)
            if cons.get("max_size") is not None:
                max_size = check.integer(cons["max_size"], "constraints.max_size", lo=0)
            if max_size is not None and min_size > max_size:
                check.fail("constraints.min_size", f"min_size {min_size} is larger than max_size {max_size}")
            for key, bucket in (("must_include", must), ("exclude", excl)):
                if cons.get(key) is None:
                    continue
                for n, t in enumerate(check.unique_ids(check.sequence(cons[key], f"constraints.{key}"), f"constraints.{key}")):
                    if t == target:
                        check.fail(f"constraints.{key}[{n}]", "the target is always trained; it is not a source")
                    bucket.add(check.known(t, known, f"constraints.{key}[{n}]"))
            both = sorted(must & excl)
            if both:
                check.fail("constraints.exclude", f"tasks both required and excluded: {', '.join(both)}")
            if cons.get("costs") is not None:
                for key, value in check.mapping(cons["costs"], "constraints.costs").items():
                    fname = f"constraints.costs.{key}"
                    check.known(key, known, fname)
                    if key in per_task_cost:
                        check.fail(fname, "cost given both here and in tasks")
                    costs_map[key] = check.number(value, fname, lo=0)
            if cons.get("budget") is not None:
                budget = check.number(cons["budget"], "constraints.budget", lo=0)
        if costs_map and budget is None:
            check.fail("constraints.budget", "costs are given but no budget")
        if budget is not None and not costs_map:
            check.fail("constraints.costs", "a budget is given but no task has a cost")
        costs = tuple(costs_map.get(t, 0.0) for t in sources) if costs_map else None
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else None
        return cls(
            name=name, target=target, sources=tuple(sources), intercept=intercept,
            linear=tuple(theta[t] for t in sources), pairwise=pairwise, baseline=baseline,
            threshold=threshold, min_size=min_size, max_size=max_size,
            must_include=frozenset(must), exclude=frozenset(excl), costs=costs, budget=budget, meta=meta,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": 1, "kind": "selection", "name": self.name, "target": self.target,
            "tasks": [self.target, *self.sources],
            "surrogate": {
                "intercept": self.intercept,
                "linear": {t: v for t, v in zip(self.sources, self.linear)},
                "pairwise": [[self.sources[i], self.sources[j], v] for i, j, v in self.pairwise],
            },
        }
        if self.baseline is not None:
            out["baseline"] = self.baseline
        if self.threshold is not None:
            out["threshold"] = self.threshold
        cons: dict[str, Any] = {}
        if self.min_size:
            cons["min_size"] = self.min_size
        if self.max_size is not None:
            cons["max_size"] = self.max_size
        if self.must_include:
            cons["must_include"] = sorted(self.must_include)
        if self.exclude:
            cons["exclude"] = sorted(self.exclude)
        if self.costs is not None:
            cons["costs"] = {t: c for t, c in zip(self.sources, self.costs)}
            cons["budget"] = self.budget
        if cons:
            out["constraints"] = cons
        if self.meta:
            out["meta"] = self.meta
        return out

    def fixings(self) -> tuple[set[int], set[int]]:
        """Sources that every optimal plan includes (first set) or leaves out (second set).

        Persistency, iterated to a fixpoint: if theta_i plus every negative theta_ij still exceeds 0,
        adding i makes any plan strictly worse, so no optimum holds i (valid while min_size is 0 and i
        is not required: dropping i keeps max_size and the budget). If theta_i plus every positive
        theta_ij is below 0, adding i makes any plan strictly better, so every optimum holds i (valid
        when there is no max_size and i costs nothing against a budget, and i is not excluded).
        Fixing one variable folds its pair terms into its neighbours, so the test runs again.
        """
        idx = self.index()
        on = {idx[t] for t in self.must_include}
        off = {idx[t] for t in self.exclude}
        lin = list(self.linear)
        nbrs: list[list[tuple[int, float]]] = [[] for _ in range(self.k)]
        for i, j, v in self.pairwise:
            if v != 0.0:
                nbrs[i].append((j, v))
                nbrs[j].append((i, v))
        can_drop = self.min_size == 0
        can_add = self.max_size is None
        tol = 1e-12
        changed = True
        while changed:
            changed = False
            for i in range(self.k):
                if i in on or i in off:
                    continue
                eff = lin[i] + sum(v for j, v in nbrs[i] if j in on)
                open_terms = [v for j, v in nbrs[i] if j not in on and j not in off]
                low = eff + sum(v for v in open_terms if v < 0)
                high = eff + sum(v for v in open_terms if v > 0)
                if can_drop and low > tol:
                    off.add(i)
                    changed = True
                elif can_add and high < -tol and (self.costs is None or self.costs[i] == 0.0):
                    on.add(i)
                    changed = True
        return on - {idx[t] for t in self.must_include}, off - {idx[t] for t in self.exclude}

    def quick_infeasible_reason(self) -> str | None:
        """Cheap checks that prove infeasibility without search (None when nothing obvious)."""
        free = self.k - len(self.exclude)
        if self.min_size > free:
            return f"min_size {self.min_size} exceeds the {free} sources that are not excluded"
        if self.max_size is not None and len(self.must_include) > self.max_size:
            return f"{len(self.must_include)} must_include tasks exceed max_size {self.max_size}"
        if self.costs is not None and self.budget is not None:
            idx = self.index()
            forced = sum(self.costs[idx[t]] for t in self.must_include)
            if forced > self.budget + FEAS_TOL * max(1.0, abs(self.budget)):
                return f"must_include tasks cost {forced:g}, more than the budget {self.budget:g}"
        return None
