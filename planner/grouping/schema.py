"""Grouping instance files: validation of the mapping (one line per bad field) and the builder that
turns an estimated affinity matrix into an instance mapping."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from planner.checks import Checker, type_name
from planner.grouping.values import CONVENTIONS, DIAGONAL, MODES, RULES, Candidate
from planner.problem import COMMON_KEYS

_TOP_KEYS = COMMON_KEYS + ("sense", "aggregate", "mode", "candidates", "affinity", "group_value", "constraints")


def parse(cls, data: dict, check: Checker):
    """Validate ``data`` and build ``cls`` (the problem class) from it."""
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
    entries = check.task_entries(raw, "tasks", optional=("resources", "name", "description"), min_len=1)
    tasks = [tid for tid, _, _ in entries]
    res = [_parse_resources(item.get("resources"), f"{where}.resources", check) for _, item, where in entries]
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


# ---------------------------------------------------------------------- builders
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
