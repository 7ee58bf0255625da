"""Human-readable summaries of instances and results (the non-JSON output of the CLI)."""
from __future__ import annotations

from typing import Any


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


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
        f"objective: {_fmt(result['objective'])}   bound: {_fmt(result['bound'])}   gap: {_fmt(result.get('gap'))}",
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
        lines.append("allocation: " + ", ".join(f"{t}={n}" for t, n in alloc.items()))
        if "spent" in sol:
            lines.append(f"spent:     {_fmt(sol['spent'])}")
    return lines
