"""Selection scaling: k sources x pairwise density, per backend: status, seconds, gap.

Instances: theta_i ~ N(0, 1); each pair present with probability `density`, theta_ij ~ N(0, s^2)
with s = --pair-scale (0.1 by default: pairwise corrections an order of magnitude below the main
effects, as fitted surrogates give; 0.3 is a harder, strongly coupled regime). No constraints
except --max-size. Goal: every k <= 100 with density <= 25% proven optimal within 10 s
by the default backend.

    python benchmarks/selection_scaling.py [--quick] [--time-limit 10] [--pair-scale 0.1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner.generators import random_selection_dict  # noqa: E402
from planner.instance import parse_instance  # noqa: E402
from planner.solve import solve  # noqa: E402
from planner.status import SolverUnavailable  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="k = 20, 50 only, 2 s limit")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--pair-scale", type=float, default=0.1)
    ap.add_argument("--max-size", type=int, default=None)
    ap.add_argument("--backends", default="auto,highs,cpsat,brute")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ks = [20, 50] if args.quick else [20, 50, 100, 200]
    limit = 2.0 if args.quick else args.time_limit
    densities = [0.0, 0.05, 0.25, 1.0]
    backends = args.backends.split(",")
    print(f"pair scale {args.pair_scale}, time limit {limit:g} s, max_size {args.max_size}")
    print("| k | density | pairs | backend | status | seconds | gap |")
    print("|---|---|---|---|---|---|---|")
    misses = []
    for k in ks:
        for density in densities:
            cons = {"max_size": args.max_size} if args.max_size else None
            data = random_selection_dict(k, density, pair_scale=args.pair_scale, seed=args.seed, constraints=cons)
            problem = parse_instance(data, data["name"])
            for backend in backends:
                t0 = time.perf_counter()
                try:
                    res = solve(problem, backend, time_limit=limit)
                except SolverUnavailable:
                    continue
                secs = time.perf_counter() - t0
                gap = "-" if res.gap is None else f"{res.gap:.2e}"
                print(f"| {k} | {density:g} | {len(problem.pairwise)} | {backend}->{res.solver} | {res.status.value} | {secs:.2f} | {gap} |", flush=True)
                if backend == "auto" and k <= 100 and density <= 0.25 and (res.status.value != "optimal" or secs > 10):
                    misses.append((k, density))
    print("goal (k <= 100, density <= 25%, default backend optimal within 10 s):",
          "met" if not misses else f"missed at {misses}")


if __name__ == "__main__":
    main()
