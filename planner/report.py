"""Human-readable summaries of instances and results (the non-JSON output of the CLI)."""
from __future__ import annotations

from typing import Any


def gap_text(result: dict) -> str:
    """The gap for people: in percent ("0%" when proven optimal), or "-" without a bound."""
    gap = result.get("gap")
    if gap is None:
        return "- (no bound)"
    pct = 100.0 * gap
    if pct == 0:
        return "0%"
    return f"{pct:.3g}%" if pct >= 0.01 else f"{pct:.2e}%"


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


ABSURD_WEIGHT_HIGH = 1e6   # a fitted curve's weight above this, or
ABSURD_WEIGHT_LOW = 1e-9   # below this (and not 0), did not fit the measurements in any useful sense


def weight_warnings(weights: dict[str, float]) -> list[str]:
    """One warning line per task whose curve weight (scale) is absurd: the allocation then rests on a
    curve fitted to noise or extrapolated far beyond the measured points."""
    out = []
    for task, w in weights.items():
        if w is None or w == 0:
            continue
        if abs(w) > ABSURD_WEIGHT_HIGH or abs(w) < ABSURD_WEIGHT_LOW:
            out.append(f"warning: task {task}: the fitted curve's weight {w:.3g} is implausible (outside "
                       f"{ABSURD_WEIGHT_LOW:g}..{ABSURD_WEIGHT_HIGH:g}); its labels are planned on a curve "
                       "that does not describe the measurements")
    return out


def collapse_zero_rows(rows: list[list[str]], first: int = 1, label: int = 0) -> list[list[str]]:
    """Rows whose cells from ``first`` on are all zero, in runs of two or more, become one row
    labelled "A .. B (k rows)" in column ``label``; other rows are kept as they are."""
    def zero(row):
        cells = row[first:]
        return bool(cells) and all(_is_zero(c) for c in cells)

    out: list[list[str]] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and zero(rows[j]):
            j += 1
        if j - i >= 2:
            merged = list(rows[i])
            merged[label] = f"{rows[i][label]} .. {rows[j - 1][label]} ({j - i} rows)"
            out.append(merged)
            i = j
        else:
            out.append(rows[i])
            i += 1
    return out


def _is_zero(cell: str) -> bool:
    try:
        return float(cell) == 0.0
    except ValueError:
        return False


def instance_summary(problem) -> str:
    kind = problem.kind
    if kind == "selection":
        extra = f", {len(problem.pairwise)} pairwise terms" if problem.pairwise else ""
        return f"selection instance {problem.name!r}: target {problem.target}, {problem.k} sources{extra}"
    tasks = getattr(problem, "task_ids", ())
    return f"{kind} instance {problem.name!r}: {len(tasks)} tasks"


def result_summary(problem, result: dict) -> list[str]:
    lines = [
        f"instance:  {result['instance']} ({result['kind']})",
        f"status:    {result['status']}   solver: {result['solver']}   {result['seconds']:.3f} s",
        f"objective: {_fmt(result['objective'])}   bound: {_fmt(result['bound'])}   gap: {gap_text(result)}",
    ]
    sol = result.get("solution")
    if not sol:
        return lines
    if result["kind"] == "selection":
        chosen = sol["selected"]
        lines.append(f"selected:  {', '.join(chosen) if chosen else '(none: train the target alone)'}")
        if "baseline" in sol:
            verdict = "negative transfer predicted" if sol["negative_transfer"] else "better than the target alone"
            lines.append(f"baseline:  {_fmt(sol['baseline'])} (single-task); plan: {verdict}")
        if "threshold" in sol:
            th = sol["threshold"]
            lines.append(
                f"threshold: gamma={_fmt(th['gamma'])} selects {', '.join(th['selected']) or '(none)'}"
                f" (predicted {_fmt(th['predicted'])})"
            )
    elif result["kind"] == "grouping":
        for n, group in enumerate(sol.get("groups", [])):
            lines.append(f"group {n}:   {', '.join(group)}")
    elif result["kind"] == "budget":
        alloc = sol.get("allocation", {})
        given = [f"{t}={n}" for t, n in alloc.items() if n]
        none = [t for t, n in alloc.items() if not n]
        lines.append("allocation: " + (", ".join(given) or "nothing bought")
                     + (f" (0 for {', '.join(none)})" if given and none else ""))
        tasks = getattr(problem, "tasks", ())
        lines.extend(weight_warnings({t.id: t.weight for t in tasks if hasattr(t, "weight")}))
        if "spent" in sol:
            lines.append(f"spent:     {_fmt(sol['spent'])}")
        lines.extend(_budget_baselines(result))
    return lines


def _budget_baselines(result: dict) -> list[str]:
    """One line per baseline of a budget result: its objective, the plan's margin over it, its allocation."""
    table = result.get("baselines")
    if not isinstance(table, dict) or not table:
        return []
    plan = result.get("objective")
    rows = []
    for name, entry in table.items():
        value = entry.get("objective")
        if plan is None or value is None:
            margin = "-"
        elif value == 0:
            margin = "plan +0" if plan == 0 else "plan better"
        else:
            margin = f"plan {100.0 * (plan - value) / abs(value):+.1f}%"
        alloc = entry.get("allocation", {})
        who = f" ({entry['task']})" if "task" in entry else ""
        rows.append((name + who, _fmt(value), margin, ", ".join(f"{t}={n}" for t, n in alloc.items())))
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    out = ["baselines:"]
    for r in rows:
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    return out
