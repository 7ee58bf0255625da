"""Budget scaling: the exact DP on 20 tasks with budgets up to 100,000 cost units, and what-if sweeps.

    .venv/bin/python benchmarks/budget_scaling.py [--tasks 20] [--max-units 100000] [--sweep 100]
                                                  [--no-highs] [--json OUT]

1. DP seconds and peak memory (tracemalloc, which sees numpy's buffers) at 1,000 / 10,000 / 100,000
   budget units, beside HiGHS (outer approximation) on the same instance; objectives compared.
2. A sweep of ``--sweep`` budgets (B/n, 2B/n, ..., B) from one DP table, against one DP solve per
   budget: seconds of each, the ratio, and that every budget's optimum agrees.

Instances are random but seeded: half geometric (beta in [0.99, 0.9999]), half power (b in
[0.2, 1]), integer costs 1..20 so the common unit is 1 and units equal money.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.budget.dp import dp_table  # noqa: E402
from planner.instance import parse_instance  # noqa: E402
from planner.solve import solve  # noqa: E402
from planner.budget.whatif import whatif  # noqa: E402


def instance(tasks: int, budget: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(tasks):
        if i % 2:
            info = {"model": "geometric", "beta": float(rng.uniform(0.99, 0.9999))}
            n0 = int(rng.integers(0, 100))
        else:
            info = {"model": "power", "a": float(rng.uniform(1, 5)), "b": float(rng.uniform(0.2, 1))}
            n0 = int(rng.integers(1, 100))
        items.append({"id": f"t{i:02d}", "cost": int(rng.integers(1, 21)), "initial": n0,
                      "weight": float(rng.uniform(0.5, 2)), "info": info})
    return parse_instance({"schema": 1, "kind": "budget", "name": f"scaling_{tasks}x{budget}",
                           "budget": budget, "tasks": items})


def time_dp(problem):
    tracemalloc.start()
    start = time.perf_counter()
    table = dp_table(problem)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n = table.allocation(table.units.capacity)
    return seconds, peak, problem.objective(n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--max-units", type=int, default=100_000)
    ap.add_argument("--sweep", type=int, default=100)
    ap.add_argument("--no-highs", action="store_true")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    report: dict = {"tasks": args.tasks, "scaling": [], "sweep": None}
    sizes = [b for b in (1_000, 10_000, 100_000) if b < args.max_units] + [args.max_units]
    print(f"## DP scaling, {args.tasks} tasks", flush=True)
    print("| budget units | DP s | DP peak MiB | HiGHS s | HiGHS rounds | objectives agree |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for units in sizes:
        p = instance(args.tasks, units)
        dp_s, peak, dp_obj = time_dp(p)
        row = {"units": units, "dp_seconds": dp_s, "dp_peak_mib": peak / 2**20, "dp_objective": dp_obj}
        hs, rounds, agree = "-", "-", "-"
        if not args.no_highs:
            start = time.perf_counter()
            res = solve(p, "highs", options={"baselines": False})
            row["highs_seconds"] = hs = time.perf_counter() - start
            row["highs_objective"] = res.objective
            row["highs_rounds"] = rounds = res.extra.get("rounds")
            agree = bool(abs(res.objective - dp_obj) <= 1e-7 * max(1.0, abs(dp_obj)))
            row["agree"] = agree
            hs = f"{hs:.2f}"
        report["scaling"].append(row)
        print(f"| {units:,} | {dp_s:.2f} | {peak / 2**20:.1f} | {hs} | {rounds} | {agree} |", flush=True)

    top = args.max_units
    p = instance(args.tasks, top)
    budgets = [top * (k + 1) / args.sweep for k in range(args.sweep)]
    start = time.perf_counter()
    one = whatif(p, budgets)
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    separate = [solve(p.with_budget(b), "dp", options={"baselines": False}).objective for b in budgets]
    sep_s = time.perf_counter() - start
    same = all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in zip(one.objectives, separate))
    report["sweep"] = {"budgets": args.sweep, "max_units": top, "one_pass_seconds": one_s,
                       "separate_seconds": sep_s, "ratio": sep_s / one_s, "objectives_agree": same}
    print(f"\n## Sweep of {args.sweep} budgets up to {top:,} units")
    print("| one pass s | separate solves s | ratio | objectives agree |")
    print("| ---: | ---: | ---: | --- |")
    print(f"| {one_s:.2f} | {sep_s:.1f} | {sep_s / one_s:.0f}x | {same} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
