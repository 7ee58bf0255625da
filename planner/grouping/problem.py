"""The grouping kind: which networks to train so each task is served well, under resource limits.

Two modes (CONTRACT.md, "grouping"):

* ``cover`` (TAG / HOA / MTG-Net / Standley network selection): choose at most ``max_groups``
  groups within the budgets; every task lies in a chosen group and is served by its best chosen
  group; objective = aggregate (sum or mean) over tasks of that best value. Groups may overlap.
* ``partition``: every task in exactly one chosen group; objective = sum over chosen groups of the
  group's value (a scalar group value, or the sum of its members' per-task values); ``mean``
  divides by the number of tasks.

Group values come from explicit ``candidates`` or from an ``affinity`` matrix and a
``group_value`` rule (``tag``, ``hoa``, ``pairwise_mean_by_size``); see :func:`task_value` and
:func:`pairwise_mean_value`. Internally the matrix is held in the ``onto`` orientation:
``M[a][b]`` is the effect of ``b`` onto ``a``.

The value rules and :class:`Candidate` live in :mod:`planner.grouping.values`, the instance-file
parsing in :mod:`planner.grouping.schema`; affinities estimated from training become an instance through
:func:`planner.grouping.schema.instance_from_affinity` (or :func:`problem_from_affinity`).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from planner.checks import Checker
from planner.grouping.schema import instance_from_affinity, parse
from planner.grouping.values import Candidate, pairwise_mean_value, task_value
from planner.status import InfeasibleSolution, SolverUnavailable

TOL = 1e-9

# Largest number of derived candidate groups a backend materialises (all subsets of admissible size).
MAX_DERIVED_CANDIDATES = 300_000


@dataclass(frozen=True)
class GroupingProblem:
    kind = "grouping"

    name: str
    sense: str
    aggregate: str
    mode: str
    tasks: tuple[str, ...]
    task_resources: tuple[tuple[tuple[str, float], ...], ...]  # aligned with tasks
    candidates: tuple[Candidate, ...] | None  # explicit candidates, or None when derived
    matrix: tuple[tuple[float, ...], ...] | None  # as given in the file
    convention: str = "onto"
    diagonal: str = "ignore"
    rule: str | None = None
    max_groups: int | None = None
    size_min: int = 1
    size_max: int | None = None
    budgets: tuple[tuple[str, float], ...] = ()
    per_group_budgets: tuple[tuple[str, float], ...] = ()
    description: str | None = None
    meta: Any = None
    _extra: dict = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------ basics
    @property
    def task_ids(self) -> tuple[str, ...]:
        return self.tasks

    @property
    def n(self) -> int:
        return len(self.tasks)

    @property
    def maximize(self) -> bool:
        return self.sense == "max"

    @property
    def derived(self) -> bool:
        return self.candidates is None

    @cached_property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tasks)}

    @cached_property
    def onto(self) -> tuple[tuple[float, ...], ...] | None:
        """The affinity matrix with ``onto[a][b]`` = effect of b onto a (transposed for ``from``)."""
        if self.matrix is None:
            return None
        if self.convention == "onto":
            return self.matrix
        n = len(self.matrix)
        return tuple(tuple(self.matrix[b][a] for b in range(n)) for a in range(n))

    @property
    def scale(self) -> float:
        """Objective = scale * (sum over tasks / groups): 1 for ``sum``, 1/n for ``mean``."""
        return 1.0 / self.n if self.aggregate == "mean" else 1.0

    @property
    def resource_names(self) -> tuple[str, ...]:
        names = [r for r, _ in self.budgets] + [r for r, _ in self.per_group_budgets]
        return tuple(dict.fromkeys(names))

    def better(self, a: float, b: float) -> bool:
        """True when objective ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b

    # ------------------------------------------------------------------ derived values
    def task_value(self, task: str, members: Sequence[str]) -> float | None:
        """Per-task value of ``task`` in group ``members`` under the ``tag`` / ``hoa`` rule (None: not allowed)."""
        return task_value(self.onto, self.index, self.rule, self.diagonal, task, members)

    def group_resources(self, members: Iterable[str]) -> tuple[tuple[str, float], ...]:
        totals: dict[str, float] = {}
        for t in members:
            for key, amount in self.task_resources[self.index[t]]:
                totals[key] = totals.get(key, 0.0) + amount
        return tuple(sorted(totals.items()))

    def derived_candidate(self, members: Sequence[str]) -> Candidate | None:
        """The candidate a derived instance has for ``members`` (task order), or None if not admissible."""
        members = tuple(sorted(members, key=self.index.__getitem__))
        if self.rule == "pairwise_mean_by_size":
            gv = pairwise_mean_value(self.onto, [self.index[t] for t in members], self.diagonal == "include")
            values = None
        else:
            vals = [self.task_value(t, members) for t in members]
            if any(v is None for v in vals):
                return None
            values, gv = tuple(float(v) for v in vals), None
        return Candidate("+".join(members), members, values, gv, self.group_resources(members))

    def admissible(self, cand: Candidate) -> bool:
        """Group size limits and per-group budgets (candidates breaking them are never chosen)."""
        size = len(cand.members)
        if size < self.size_min or (self.size_max is not None and size > self.size_max):
            return False
        for res, cap in self.per_group_budgets:
            if cand.resource(res) > cap * (1 + TOL) + TOL:
                return False
        return True

    def derived_count(self) -> int:
        hi = self.n if self.size_max is None else min(self.size_max, self.n)
        lo = max(self.size_min, 2 if (self.rule == "tag" and self.diagonal == "ignore") else 1)
        return sum(math.comb(self.n, s) for s in range(lo, hi + 1))

    def candidate_list(self, limit: int = MAX_DERIVED_CANDIDATES) -> list[Candidate]:
        """Every admissible candidate: the explicit ones, or all subsets of admissible size for derived values."""
        if self.candidates is not None:
            return [c for c in self.candidates if self.admissible(c)]
        count = self.derived_count()
        if count > limit:
            raise SolverUnavailable(
                f"{count} derived candidate groups exceed the limit of {limit} for enumeration "
                f"({self.n} tasks; cap group_size.max or use a heuristic)"
            )
        out: list[Candidate] = []
        hi = self.n if self.size_max is None else min(self.size_max, self.n)
        for size in range(max(1, self.size_min), hi + 1):
            for combo in itertools.combinations(self.tasks, size):
                cand = self.derived_candidate(combo)
                if cand is not None and self.admissible(cand):
                    out.append(cand)
        return out

    # ------------------------------------------------------------------ files
    @classmethod
    def from_dict(cls, data: dict, checker: Checker) -> "GroupingProblem":
        return parse(cls, data, checker)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": 1, "kind": "grouping", "name": self.name}
        if self.description is not None:
            out["description"] = self.description
        out["sense"] = self.sense
        out["aggregate"] = self.aggregate
        out["mode"] = self.mode
        if any(self.task_resources):
            out["tasks"] = [
                {"id": t, "resources": dict(res)} if res else {"id": t}
                for t, res in zip(self.tasks, self.task_resources)
            ]
        else:
            out["tasks"] = list(self.tasks)
        if self.candidates is not None:
            cands = []
            for c in self.candidates:
                item: dict[str, Any] = {"id": c.id, "members": list(c.members)}
                if c.values is not None:
                    item["value"] = dict(zip(c.members, c.values))
                else:
                    item["value"] = c.group_value
                if c.id in self._extra.get("explicit_resources", ()):
                    item["resources"] = dict(c.resources)
                cands.append(item)
            out["candidates"] = cands
        else:
            out["affinity"] = {
                "matrix": [list(row) for row in self.matrix or ()],
                "convention": self.convention,
                "diagonal": self.diagonal,
            }
            out["group_value"] = self.rule
        cons: dict[str, Any] = {}
        if self.max_groups is not None:
            cons["max_groups"] = self.max_groups
        if self.size_min != 1 or self.size_max is not None:
            gs: dict[str, Any] = {"min": self.size_min}
            if self.size_max is not None:
                gs["max"] = self.size_max
            cons["group_size"] = gs
        if self.budgets:
            cons["budgets"] = [{"resource": r, "max": m} for r, m in self.budgets]
        if self.per_group_budgets:
            cons["per_group_budgets"] = [{"resource": r, "max": m} for r, m in self.per_group_budgets]
        if cons:
            out["constraints"] = cons
        if self.meta is not None:
            out["meta"] = self.meta
        return out

    # ------------------------------------------------------------------ solutions
    def find_candidate(self, members: Sequence[str], cid: str | None = None) -> Candidate | None:
        """The candidate for a chosen group: by id when given, else by member set (the best such)."""
        key = frozenset(members)
        if self.candidates is None:
            cand = self.derived_candidate(list(members))
            return cand
        if cid is not None:
            for c in self.candidates:
                if c.id == cid:
                    return c if frozenset(c.members) == key else None
            return None
        matches = [c for c in self.candidates if frozenset(c.members) == key and self.admissible(c)]
        if not matches:
            return None
        sign = 1.0 if self.maximize else -1.0
        return max(matches, key=lambda c: (sign * c.total, -sum(a for _, a in c.resources)))

    def evaluate(self, solution: Mapping[str, Any]) -> float:
        """Recompute the objective of ``{"groups": [[ids]...], "served_by": {...}}`` in plain Python.

        Raises :class:`InfeasibleSolution` when the solution breaks a constraint: an unknown task,
        a task left out (or, in partition mode, placed twice), a group that is not a candidate,
        a size or resource limit, or more than ``max_groups`` groups.
        """
        groups, cands = self._solution_groups(solution)
        if self.mode == "partition":
            total = sum(c.total for c in cands)
        else:
            best = self._best_values(cands)
            total = sum(best)
        return total * self.scale

    def _solution_groups(self, solution: Mapping[str, Any]) -> tuple[list[list[str]], list[Candidate]]:
        def bad(why: str):
            raise InfeasibleSolution(f"grouping solution for {self.name!r}: {why}")

        if not isinstance(solution, Mapping) or "groups" not in solution:
            bad("missing 'groups'")
        groups = solution["groups"]
        if not isinstance(groups, (list, tuple)):
            bad("'groups' must be a list of lists of task ids")
        ids = solution.get("candidates")
        if ids is not None and (not isinstance(ids, (list, tuple)) or len(ids) != len(groups)):
            bad("'candidates' must list one candidate id per group")
        seen: dict[str, int] = {}
        cands: list[Candidate] = []
        out_groups: list[list[str]] = []
        for g, members in enumerate(groups):
            if not isinstance(members, (list, tuple)) or not members:
                bad(f"group {g} must be a non-empty list of task ids")
            members = [str(t) for t in members]
            if len(set(members)) != len(members):
                bad(f"group {g} names a task twice")
            for t in members:
                if t not in self.index:
                    bad(f"group {g} names unknown task {t!r}")
                if self.mode == "partition" and t in seen:
                    bad(f"task {t!r} is in groups {seen[t]} and {g} (partition mode)")
                seen.setdefault(t, g)
            cand = self.find_candidate(members, None if ids is None else str(ids[g]))
            if cand is None:
                bad(f"group {g} {members} is not an admissible candidate group")
            if not self.admissible(cand):
                bad(f"group {g} breaks the group size or per-group resource limits")
            cands.append(cand)
            out_groups.append(members)
        missing = [t for t in self.tasks if t not in seen]
        if missing:
            bad(f"tasks not in any group: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if self.max_groups is not None and len(groups) > self.max_groups:
            bad(f"{len(groups)} groups exceed max_groups {self.max_groups}")
        for res, cap in self.budgets:
            used = sum(c.resource(res) for c in cands)
            if used > cap * (1 + 1e-7) + 1e-9:
                bad(f"resource {res!r} uses {used:g}, over the budget {cap:g}")
        served = solution.get("served_by")
        if served is not None:
            if not isinstance(served, Mapping):
                bad("'served_by' must map task ids to group indices")
            for t, g in served.items():
                if t not in self.index:
                    bad(f"served_by names unknown task {t!r}")
                if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < len(groups):
                    bad(f"served_by[{t!r}] = {g!r} is not a group index")
                if t not in out_groups[g]:
                    bad(f"served_by[{t!r}] = {g} but group {g} does not contain {t!r}")
        return out_groups, cands

    def _best_values(self, cands: Sequence[Candidate]) -> list[float]:
        best: list[float] = []
        for t in self.tasks:
            vals = [c.value_of(t) for c in cands if t in c.members]
            best.append(max(vals) if self.maximize else min(vals))
        return best

    def make_solution(self, chosen: Sequence[Candidate]) -> dict[str, Any]:
        """The contract's solution object for a list of chosen candidates (canonical order)."""
        order = sorted(chosen, key=lambda c: (tuple(self.index[t] for t in c.members), c.id))
        groups = [list(c.members) for c in order]
        served: dict[str, int] = {}
        for t in self.tasks:
            best_g, best_v = None, None
            for g, c in enumerate(order):
                if t not in c.members:
                    continue
                v = c.value_of(t) if c.values is not None else 0.0
                if best_v is None or self.better(v, best_v):
                    best_g, best_v = g, v
            if best_g is not None:
                served[t] = best_g
        out: dict[str, Any] = {"groups": groups, "served_by": served}
        if self.candidates is not None:
            out["candidates"] = [c.id for c in order]
        return out

    def rescore(self, solution: Mapping[str, Any]) -> float:
        """Score a solution chosen on another table (e.g. validation) with THIS problem's values,
        keeping its ``served_by`` assignment (the published re-scoring on test tables)."""
        groups, cands = self._solution_groups(solution)
        served = solution.get("served_by") or {}
        if self.mode == "partition":
            return sum(c.total for c in cands) * self.scale
        total = 0.0
        for t in self.tasks:
            if t in served:
                total += cands[served[t]].value_of(t)
            else:
                total += self._best_values([c for c in cands if t in c.members])[0]  # pragma: no cover
        return total * self.scale


def problem_from_affinity(tasks: Sequence[str], matrix: Sequence[Sequence[float]], **kwargs) -> GroupingProblem:
    """Like :func:`instance_from_affinity`, validated into a :class:`GroupingProblem`."""
    data = instance_from_affinity(tasks, matrix, **kwargs)
    return parse(GroupingProblem, data, Checker(kwargs.get("name", "grouping")))
