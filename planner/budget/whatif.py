"""What-if sweeps for label budgets: the exact optimum and allocation at every budget of a range.

For a separable instance the dynamic program's last row V_T(c) already holds the optimum at every
budget c <= C, so one table answers the whole sweep (``one_pass``); allocations are backtracked for
all budgets at once. Coupled instances (or ``--solver highs|brute``) are solved budget by budget.
Either way each row's objective is recomputed from its allocation with the contract's definition.
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from planner import interrupt
from planner.status import PlannerError, SolveStatus, SolverUnavailable

MAX_BUDGETS = 100_000


class BudgetRangeError(PlannerError):
    """A malformed ``--budgets`` range (a usage error: exit code 2)."""

    exit_code = 2


def parse_budgets(text: str) -> list[float]:
    """``START:STOP:STEP`` -> [START, START + STEP, ..., <= STOP] (exact decimals; STOP included when hit)."""
    parts = str(text).strip().split(":")
    if len(parts) != 3:
        raise BudgetRangeError(f"budgets must be START:STOP:STEP (for example 0:1000:50), got {text!r}")
    try:
        decimals = [Decimal(p.strip()) for p in parts]
    except (InvalidOperation, ValueError):
        raise BudgetRangeError(f"budgets must be three numbers START:STOP:STEP, got {text!r}") from None
    if any(not d.is_finite() for d in decimals):
        raise BudgetRangeError(f"budgets must be finite numbers, got {text!r}")
    if any(abs(d) > 10**15 for d in decimals):
        raise BudgetRangeError(f"budgets: numbers above 1e15 are not supported, got {text!r}")
    start, stop, step = (Fraction(d) for d in decimals)
    if start < 0:
        raise BudgetRangeError(f"budgets: START must be >= 0, got {parts[0].strip()}")
    if stop < start:
        raise BudgetRangeError(f"budgets: STOP ({parts[1].strip()}) is below START ({parts[0].strip()})")
    if step <= 0:
        raise BudgetRangeError(f"budgets: STEP must be > 0, got {parts[2].strip()}")
    count = math.floor((stop - start) / step) + 1
    if count > MAX_BUDGETS:
        raise BudgetRangeError(f"budgets: {count:,} budgets is more than the limit of {MAX_BUDGETS:,}; use a larger STEP")
    return [float(start + k * step) for k in range(count)]


@dataclass
class WhatIf:
    instance: str
    task_ids: tuple[str, ...]
    budgets: list[float]
    statuses: list[SolveStatus]
    objectives: list[float | None]
    allocations: list[dict[str, int] | None]
    spent: list[float | None]
    one_pass: bool
    solver: str
    seconds: float = 0.0
    unit: float | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every budget has a plan, else the contract's code of the worst row."""
        return max((s.exit_code for s in self.statuses), default=0)

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for b, st, obj, alloc, sp in zip(self.budgets, self.statuses, self.objectives, self.allocations, self.spent):
            rows.append({"budget": b, "status": st.value if st is not SolveStatus.UNKNOWN else "no_solution",
                         "objective": obj, "spent": sp, "allocation": alloc})
        out: dict[str, Any] = {
            "schema": 1, "instance": self.instance, "kind": "budget", "command": "whatif",
            "solver": self.solver, "one_pass": self.one_pass, "unit": self.unit,
            "seconds": round(self.seconds, 6), "rows": rows,
        }
        if self.messages:
            out["message"] = "; ".join(self.messages)
        return out

    def csv_text(self) -> str:
        """Columns ``budget``, ``objective`` and one per task (labels); empty cells where no plan."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["budget", "objective", *self.task_ids])
        for b, obj, alloc in zip(self.budgets, self.objectives, self.allocations):
            cells = [_num(b), "" if obj is None else repr(float(obj))]
            cells += ["" if alloc is None else str(alloc[t]) for t in self.task_ids]
            writer.writerow(cells)
        return buf.getvalue()


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def whatif(problem, budgets: Sequence[float], solver: str = "auto", time_limit: float | None = None,
           options: dict | None = None) -> WhatIf:
    """The optimum at every budget: one DP table when the instance allows, else one solve per budget."""
    from planner.budget.dp import _Stopped, dp_table
    from planner.budget.problem import exact
    from planner.solve import check_time_limit, solve

    time_limit = check_time_limit(time_limit)
    if not budgets:
        raise BudgetRangeError("no budgets to sweep")
    options = dict(options or {})
    start = time.perf_counter()
    ids = problem.task_ids
    messages: list[str] = []
    if solver in ("auto", "dp") and problem.separable:
        try:
            deadline = None if time_limit is None else start + time_limit * len(budgets)
            table = dp_table(problem, budget=max(budgets), deadline=deadline,
                             max_cells=int(options.get("max_cells", 50_000_000)))
        except SolverUnavailable as exc:
            if solver == "dp":
                raise
            messages.append(f"one pass not possible ({exc}); solving each budget")
        except _Stopped:
            n = len(budgets)
            return WhatIf(problem.name, ids, list(budgets), [SolveStatus.NO_SOLUTION] * n, [None] * n, [None] * n,
                          [None] * n, True, "dp", time.perf_counter() - start, None,
                          ["time limit reached while building the DP table"])
        else:
            unit = table.units.unit
            caps = np.asarray([math.floor(exact(b) / unit) for b in budgets], dtype=np.int64)
            labels = table.allocations(caps)
            objectives = problem.objective_rows(labels)  # recomputed, not read from the table
            allocations, spent = [], []
            for b, n in zip(budgets, labels):
                sub = problem.with_budget(b)
                sub.allocation_vector(sub.solution(n))  # feasibility at this budget, exactly
                allocations.append({t: int(k) for t, k in zip(ids, n)})
                spent.append(float(problem.spent(n)))
            return WhatIf(problem.name, ids, list(budgets), [SolveStatus.OPTIMAL] * len(budgets),
                          [float(v) for v in objectives], allocations, spent, True, "dp",
                          time.perf_counter() - start, float(unit), messages)
    elif solver == "dp":
        raise SolverUnavailable("dp solves separable instances only (relatedness couples the tasks); use highs")
    options.setdefault("baselines", False)
    statuses, objectives, allocations, spent, used = [], [], [], [], set()
    for b in budgets:
        if interrupt.requested():  # Ctrl-C: the budgets not reached get no plan
            statuses.append(SolveStatus.NO_SOLUTION)
            objectives.append(None)
            allocations.append(None)
            spent.append(None)
            continue
        res = solve(problem.with_budget(b), solver=solver, time_limit=time_limit, options=options)
        used.add(res.solver)
        statuses.append(res.status)
        if res.status.has_solution:
            objectives.append(float(res.objective))
            allocations.append({t: int(res.solution["allocation"][t]) for t in ids})
            spent.append(float(res.solution["spent"]))
        else:
            objectives.append(None)
            allocations.append(None)
            spent.append(None)
        if res.message:
            messages.append(f"budget {_num(b)}: {res.message}")
    return WhatIf(problem.name, ids, list(budgets), statuses, objectives, allocations, spent, False,
                  ",".join(sorted(used)), time.perf_counter() - start, None, messages)


def plot_png(result: WhatIf) -> bytes:
    """Optimum against budget (top) and the allocation stacked by task (bottom), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    xs = np.asarray(result.budgets, dtype=float)
    ok = np.asarray([a is not None for a in result.allocations])
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 6), height_ratios=(1, 1.3))
    try:
        ys = np.asarray([np.nan if o is None else o for o in result.objectives], dtype=float)
        top.plot(xs, ys, marker="o" if len(xs) <= 60 else None, ms=3, color="black")
        top.set_ylabel("objective  sum w_i I_i(e_i)")
        top.set_title(f"{result.instance}: optimum by budget ({'one DP pass' if result.one_pass else result.solver})")
        top.grid(alpha=0.3)
        stack = np.asarray(
            [[(a[t] if a is not None else 0) for a in result.allocations] for t in result.task_ids], dtype=float
        )
        if ok.any() and stack.size:
            bottom.stackplot(xs, stack, labels=list(result.task_ids), alpha=0.85)
            if len(result.task_ids) <= 20:
                bottom.legend(loc="upper left", fontsize="small", ncol=max(1, len(result.task_ids) // 8))
        bottom.set_xlabel("budget")
        bottom.set_ylabel("labels bought (stacked)")
        bottom.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        return buf.getvalue()
    finally:
        plt.close(fig)
