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

Item 3 of issue 5 (affinities estimated from training) builds its instance with
:func:`instance_from_affinity` and solves it with :func:`planner.solve.solve`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from planner.checks import Checker, type_name
from planner.problems.base import COMMON_KEYS, register_kind
from planner.status import InfeasibleSolution, SolverUnavailable

MODES = ("cover", "partition")
RULES = ("tag", "hoa", "pairwise_mean_by_size")
CONVENTIONS = ("onto", "from")
DIAGONAL = ("ignore", "include")
TOL = 1e-9

# Largest number of derived candidate groups a backend materialises (all subsets of admissible size).
MAX_DERIVED_CANDIDATES = 300_000


@dataclass(frozen=True)
class Candidate:
    """One candidate group (network). ``values`` holds the per-member values aligned with ``members``;
    ``group_value`` a scalar value of the whole group (partition mode only). Exactly one is set."""

    id: str
    members: tuple[str, ...]
    values: tuple[float, ...] | None
    group_value: float | None
    resources: tuple[tuple[str, float], ...]

    @property
    def total(self) -> float:
        """The group's value in partition mode: its scalar value or the sum of its members' values."""
        if self.group_value is not None:
            return self.group_value
        return float(sum(self.values or ()))

    def value_of(self, task: str) -> float:
        assert self.values is not None
        return self.values[self.members.index(task)]

    def resource(self, name: str) -> float:
        for key, amount in self.resources:
            if key == name:
                return amount
        return 0.0


@register_kind
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
        return _parse(cls, data, checker)

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


# ---------------------------------------------------------------------- value rules
def task_value(M, index: Mapping[str, int], rule: str | None, diagonal: str, task: str, members: Sequence[str]) -> float | None:
    """Per-task value of ``task`` in the group ``members`` (CONTRACT.md, group_value):

    * ``tag``: mean over b in G, b != a, of M[a][b]; singletons are not candidates.
    * ``hoa``: M[a][a] if G = {a}, else the mean over b in G, b != a, of M[a][b].

    With ``diagonal: include`` the mean runs over every b in G, a itself included (so ``tag``
    singletons become candidates worth M[a][a]).
    """
    a = index[task]
    others = [index[b] for b in members if b != task]
    if diagonal == "include":
        cols = others + [a]
        return sum(M[a][b] for b in cols) / len(cols)
    if not others:
        if rule == "hoa":
            return float(M[a][a])
        return None
    return sum(M[a][b] for b in others) / len(others)


def pairwise_mean_value(M, idx: Sequence[int], include_diagonal: bool = False) -> float:
    """Principled-grouping value (1/|G|) * sum_{i != k in G} M[i][k] (+ M[i][i] with the diagonal)."""
    s = 0.0
    for i in idx:
        row = M[i]
        for k in idx:
            if i != k or include_diagonal:
                s += row[k]
    return s / len(idx)


# ---------------------------------------------------------------------- parsing
_TOP_KEYS = COMMON_KEYS + ("sense", "aggregate", "mode", "candidates", "affinity", "group_value", "constraints")


def _parse(cls, data: dict, check: Checker) -> GroupingProblem:
    check.keys(data, "", required=("schema", "kind", "name", "tasks", "sense"), optional=_TOP_KEYS)
    name = check.string(data["name"], "name")
    sense = check.string(data["sense"], "sense", choices=("min", "max"))
    aggregate = check.string(data.get("aggregate", "sum"), "aggregate", choices=("sum", "mean"))
    mode = check.string(data.get("mode", "cover"), "mode", choices=MODES)
    description = data.get("description")
    if description is not None:
        check.string(description, "description")

    tasks, task_res = _parse_tasks(data["tasks"], check)
    index = {t: i for i, t in enumerate(tasks)}

    has_c, has_a = "candidates" in data, "affinity" in data
    if has_c and has_a:
        check.fail("candidates", "give either candidates or affinity (with group_value), not both")
    if not has_c and not has_a:
        check.fail("candidates", "missing: give candidates, or affinity with group_value")

    candidates = None
    matrix = None
    convention, diagonal, rule = "onto", "ignore", None
    explicit_res: list[str] = []
    if has_c:
        if "group_value" in data:
            check.fail("group_value", "only used with affinity, not with explicit candidates")
        candidates, explicit_res = _parse_candidates(data["candidates"], check, mode, index, task_res)
    else:
        if "group_value" not in data:
            check.fail("group_value", f"missing required key with affinity (one of {', '.join(RULES)})")
        rule = check.string(data["group_value"], "group_value", choices=RULES)
        if rule == "pairwise_mean_by_size" and mode == "cover":
            check.fail("group_value", "pairwise_mean_by_size gives one value per group; use it with mode: partition")
        matrix, convention, diagonal = _parse_affinity(data["affinity"], check, tasks)

    cons = check.mapping(data.get("constraints", {}) or {}, "constraints")
    check.keys(cons, "constraints", optional=("max_groups", "group_size", "budgets", "per_group_budgets"))
    max_groups = None
    if cons.get("max_groups") is not None:
        max_groups = check.integer(cons["max_groups"], "constraints.max_groups", lo=1)
    size_min, size_max = 1, None
    if cons.get("group_size") is not None:
        gs = check.mapping(cons["group_size"], "constraints.group_size")
        check.keys(gs, "constraints.group_size", optional=("min", "max"))
        if gs.get("min") is not None:
            size_min = check.integer(gs["min"], "constraints.group_size.min", lo=1)
        if gs.get("max") is not None:
            size_max = check.integer(gs["max"], "constraints.group_size.max", lo=1)
        if size_max is not None and size_min > size_max:
            check.fail("constraints.group_size", f"min {size_min} is greater than max {size_max}")
        if size_min > len(tasks):
            check.fail("constraints.group_size.min", f"{size_min} is more than the {len(tasks)} tasks")
    known_res = {k for c in candidates or () for k, _ in c.resources}
    for res in task_res:
        known_res.update(k for k, _ in res)
    budgets = _parse_budgets(cons.get("budgets"), "constraints.budgets", check, known_res)
    per_group = _parse_budgets(cons.get("per_group_budgets"), "constraints.per_group_budgets", check, known_res)

    prob = cls(
        name=name,
        sense=sense,
        aggregate=aggregate,
        mode=mode,
        tasks=tuple(tasks),
        task_resources=tuple(task_res),
        candidates=None if candidates is None else tuple(candidates),
        matrix=matrix,
        convention=convention,
        diagonal=diagonal,
        rule=rule,
        max_groups=max_groups,
        size_min=size_min,
        size_max=size_max,
        budgets=budgets,
        per_group_budgets=per_group,
        description=description,
        meta=data.get("meta"),
        _extra={"explicit_resources": frozenset(explicit_res)},
    )
    return prob


def _parse_tasks(raw: Any, check: Checker) -> tuple[list[str], list[tuple[tuple[str, float], ...]]]:
    items = check.sequence(raw, "tasks", min_len=1)
    tasks: list[str] = []
    res: list[tuple[tuple[str, float], ...]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"tasks[{i}]"
        if isinstance(item, Mapping):
            item = check.mapping(item, where)
            check.keys(item, where, required=("id",), optional=("resources", "name", "description"))
            tid = check.task_id(item["id"], f"{where}.id")
            r = _parse_resources(item.get("resources"), f"{where}.resources", check)
        else:
            tid = check.task_id(item, where)
            r = ()
        if tid in seen:
            check.fail(where, f"duplicate task id {tid!r}")
        seen.add(tid)
        tasks.append(tid)
        res.append(r)
    return tasks, res


def _parse_resources(raw: Any, where: str, check: Checker) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    res = check.mapping(raw, where)
    out = []
    for key, amount in res.items():
        if not key:
            check.fail(where, "resource names must not be empty")
        out.append((key, float(check.number(amount, f"{where}.{key}", lo=0))))
    return tuple(sorted(out))


def _parse_candidates(raw, check: Checker, mode: str, index: Mapping[str, int], task_res) -> tuple[list[Candidate], list[str]]:
    items = check.sequence(raw, "candidates", min_len=1)
    out: list[Candidate] = []
    explicit_res: list[str] = []
    ids: set[str] = set()
    for i, item in enumerate(items):
        where = f"candidates[{i}]"
        item = check.mapping(item, where)
        check.keys(item, where, required=("members", "value"), optional=("id", "resources", "description"))
        cid = item.get("id", f"c{i}")
        if isinstance(cid, bool) or not isinstance(cid, (str, int)):
            check.fail(f"{where}.id", f"must be a string, got {type_name(cid)}")
        cid = str(cid)
        if not cid.strip():
            check.fail(f"{where}.id", "must not be empty")
        if cid in ids:
            check.fail(f"{where}.id", f"candidate id {cid!r} is used twice")
        ids.add(cid)
        members_raw = check.sequence(item["members"], f"{where}.members", min_len=1)
        members: list[str] = []
        for j, m in enumerate(members_raw):
            tid = check.task_id(m, f"{where}.members[{j}]")
            check.known(tid, index, f"{where}.members[{j}]")
            if tid in members:
                check.fail(f"{where}.members[{j}]", f"task {tid!r} is listed twice")
            members.append(tid)
        members.sort(key=index.__getitem__)
        value = item["value"]
        values = None
        group_value = None
        if isinstance(value, Mapping):
            vmap = check.mapping(value, f"{where}.value")
            for t in vmap:
                if t not in index:
                    check.fail(f"{where}.value.{t}", f"unknown task id {t!r}")
                if t not in members:
                    check.fail(f"{where}.value.{t}", f"task {t!r} is not a member of this candidate")
            for t in members:
                if t not in vmap:
                    check.fail(f"{where}.value", f"no value for member {t!r}")
            values = tuple(float(check.number(vmap[t], f"{where}.value.{t}")) for t in members)
        else:
            if mode == "cover":
                check.fail(f"{where}.value", "cover mode needs a value per member task (a mapping task: value)")
            group_value = float(check.number(value, f"{where}.value"))
        if item.get("resources") is not None:
            res = _parse_resources(item["resources"], f"{where}.resources", check)
            explicit_res.append(cid)
        else:
            totals: dict[str, float] = {}
            for t in members:
                for k, a in task_res[index[t]]:
                    totals[k] = totals.get(k, 0.0) + a
            res = tuple(sorted(totals.items()))
        out.append(Candidate(cid, tuple(members), values, group_value, res))
    return out, explicit_res


def _parse_affinity(raw, check: Checker, tasks: Sequence[str]):
    aff = check.mapping(raw, "affinity")
    check.keys(aff, "affinity", required=("matrix",), optional=("convention", "diagonal", "description"))
    convention = check.string(aff.get("convention", "onto"), "affinity.convention", choices=CONVENTIONS)
    diagonal = check.string(aff.get("diagonal", "ignore"), "affinity.diagonal", choices=DIAGONAL)
    n = len(tasks)
    raw_m = aff["matrix"]
    rows: list[tuple[float, ...]] = []
    if isinstance(raw_m, Mapping):
        mm = check.mapping(raw_m, "affinity.matrix")
        for key in mm:
            if key not in tasks:
                check.fail(f"affinity.matrix.{key}", f"unknown task id {key!r}")
        for a in tasks:
            if a not in mm:
                check.fail("affinity.matrix", f"no row for task {a!r}")
            row = check.mapping(mm[a], f"affinity.matrix.{a}")
            for key in row:
                if key not in tasks:
                    check.fail(f"affinity.matrix.{a}.{key}", f"unknown task id {key!r}")
            vals = []
            for b in tasks:
                if b not in row:
                    if a == b:
                        vals.append(0.0)
                        continue
                    check.fail(f"affinity.matrix.{a}", f"no entry for task {b!r}")
                vals.append(float(check.number(row[b], f"affinity.matrix.{a}.{b}")))
            rows.append(tuple(vals))
    else:
        seq = check.sequence(raw_m, "affinity.matrix")
        if len(seq) != n:
            check.fail("affinity.matrix", f"has {len(seq)} rows, expected {n} (one per task, in task order)")
        for i, row in enumerate(seq):
            row = check.sequence(row, f"affinity.matrix[{i}]")
            if len(row) != n:
                check.fail(f"affinity.matrix[{i}]", f"has {len(row)} entries, expected {n} (the matrix must be square)")
            rows.append(tuple(float(check.number(v, f"affinity.matrix[{i}][{j}]")) for j, v in enumerate(row)))
    return tuple(rows), convention, diagonal


def _parse_budgets(raw, where: str, check: Checker, known: set[str]) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    items = check.sequence(raw, where)
    out: list[tuple[str, float]] = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        item = check.mapping(item, w)
        check.keys(item, w, required=("resource", "max"))
        res = check.string(item["resource"], f"{w}.resource")
        if res not in known:
            check.fail(f"{w}.resource", f"resource {res!r} is defined by no task or candidate")
        if any(r == res for r, _ in out):
            check.fail(f"{w}.resource", f"resource {res!r} is limited twice")
        out.append((res, float(check.number(item["max"], f"{w}.max", lo=0))))
    return tuple(out)


# ---------------------------------------------------------------------- builders (hook for item 3)
def instance_from_affinity(
    tasks: Sequence[str],
    matrix: Sequence[Sequence[float]],
    *,
    name: str = "grouping",
    mode: str = "partition",
    rule: str = "pairwise_mean_by_size",
    sense: str = "max",
    aggregate: str = "sum",
    convention: str = "onto",
    diagonal: str = "ignore",
    max_groups: int | None = None,
    group_size: tuple[int | None, int | None] | None = None,
    task_resources: Mapping[str, Mapping[str, float]] | None = None,
    budgets: Mapping[str, float] | None = None,
    per_group_budgets: Mapping[str, float] | None = None,
    meta: Any = None,
) -> dict[str, Any]:
    """An instance mapping (``schema: 1``, kind grouping) built from a task affinity matrix.

    This is the hook for ``planner group --data ...``: estimate ``matrix[a][b]`` (effect of b onto
    a) from training, call this, then ``parse_instance(...)`` and ``solve(...)``; or write the mapping
    with :func:`planner.io.write_instance`.
    """
    task_resources = task_resources or {}
    data: dict[str, Any] = {
        "schema": 1,
        "kind": "grouping",
        "name": name,
        "sense": sense,
        "aggregate": aggregate,
        "mode": mode,
        "tasks": [
            {"id": t, "resources": dict(task_resources[t])} if t in task_resources else t for t in tasks
        ],
        "affinity": {
            "matrix": [[float(v) for v in row] for row in matrix],
            "convention": convention,
            "diagonal": diagonal,
        },
        "group_value": rule,
    }
    cons: dict[str, Any] = {}
    if max_groups is not None:
        cons["max_groups"] = int(max_groups)
    if group_size is not None:
        lo, hi = group_size
        gs = {}
        if lo is not None:
            gs["min"] = int(lo)
        if hi is not None:
            gs["max"] = int(hi)
        cons["group_size"] = gs
    if budgets:
        cons["budgets"] = [{"resource": r, "max": float(m)} for r, m in budgets.items()]
    if per_group_budgets:
        cons["per_group_budgets"] = [{"resource": r, "max": float(m)} for r, m in per_group_budgets.items()]
    if cons:
        data["constraints"] = cons
    if meta is not None:
        data["meta"] = meta
    return data


def problem_from_affinity(tasks: Sequence[str], matrix: Sequence[Sequence[float]], **kwargs) -> GroupingProblem:
    """Like :func:`instance_from_affinity`, validated into a :class:`GroupingProblem`."""
    data = instance_from_affinity(tasks, matrix, **kwargs)
    return _parse(GroupingProblem, data, Checker(kwargs.get("name", "grouping")))


# Importing the kind registers its backends.
def _register_backends() -> None:
    import planner.backends.grouping_brute  # noqa: F401
    import planner.backends.grouping_cpsat  # noqa: F401
    import planner.backends.grouping_heuristic  # noqa: F401
    import planner.backends.grouping_highs  # noqa: F401
    import planner.backends.grouping_auto  # noqa: F401


_register_backends()
