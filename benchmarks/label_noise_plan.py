"""`planner plan` with its default settings on label-noise cases built from real tables, and on the same
tables with no flipped labels (near-interchangeable sources).

For each table (TV16: target Nevada and 16 other states; Hsb82: the first group of schools and 16
others, a table the defaults were not tuned on) and case seed, sources copy real tasks with labels
flipped at known rates in [0, 0.5]. The script runs the whole plan (estimate, program, candidate sets
on validation, final models) with the defaults of `planner plan` and prints, per run:

* seconds (the plan on 16 sources on this machine), the estimator auto chose, the reliability of one
  measurement (one network: the subset's effect against the seed's) and of f (the mean the surrogate fits);
* Spearman of the sources' scores with their true flip rates (1: ranked exactly by noise);
* test accuracy and test loss (the loss f is measured in) of the plan, single-task and pooled (mean
  over the 3 final seeds), and the plan's difference to the better of the two with its standard error
  over seeds and then over seeds and test rows (paired on the same rows, as the plan's verdict counts it);
* the plan's verdict;
* for the clean cases (all rates 0): the reliability, the warnings and the decision.

    python benchmarks/label_noise_plan.py [--quick] [--seeds 0 1 2] [--tables tv16 hsb82]
"""
from __future__ import annotations

import argparse
import time


def run_case(table: str, seed: int, rates=None, quick: bool = False, heads: str = "task") -> dict:
    from planner.reliability import spearman
    from planner.selection.estimate import EstimateSettings
    from planner.selection.plan import PlanSettings, run_plan
    from planner_models.noise import label_noise_case
    from planner_models.train import TrainConfig

    case = label_noise_case(table, 16, seed=seed, rates=rates)
    settings = EstimateSettings(seed=seed, n_boot=50 if quick else 200, n_subsets=64 if quick else None)
    t0 = time.perf_counter()
    report, est, _ = run_plan(case.data, case.data.task_names[case.target], settings, TrainConfig(heads=heads), PlanSettings())
    seconds = time.perf_counter() - t0
    truth = case.rate_of()
    names = list(truth)
    rank = spearman([report["scores"][t] for t in names], [truth[t] for t in names]) if len(set(truth.values())) > 1 else None
    return {"table": table, "seed": seed, "seconds": seconds, "estimator": est.estimator,
            "reliability": report["surrogate"].get("reliability"),
            "reliability_of_f": report["surrogate"].get("reliability_of_f"), "spearman_rates": rank,
            "test": report["test"], "test_sd": report["test_sd"], "decision": report["decision"],
            "test_loss": report["test_loss"], "test_loss_sd": report["test_loss_sd"],
            "test_noise": report.get("test_noise") or {}, "verdict": report["verdict"],
            "selected": len(report["selected"]), "warnings": report["warnings"],
            "harmful_kept": sum(truth[t] >= 0.25 and t in report["selected"] for t in names)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 subsets, 50 bootstrap refits, seed 0 only")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tables", nargs="+", default=["tv16", "hsb82"])
    ap.add_argument("--clean", action="store_true", help="also the cases with no flipped labels")
    ap.add_argument("--heads", choices=["task", "shared"], default="task",
                    help="output heads of the network (shared: the sources' labels train the target's head)")
    args = ap.parse_args()
    seeds = [0] if args.quick else args.seeds
    print("table  seed  kind   seconds  estimator  reliab (one / of f)  rank(rates)  plan    stl     pooled  kept-bad  decision")
    for table in args.tables:
        for clean in ([False, True] if args.clean else [False]):
            for seed in seeds:
                r = run_case(table, seed, rates=[0.0] * 16 if clean else None, quick=args.quick, heads=args.heads)
                t, noise = r["test"], r["test_noise"]
                rank = "-" if r["spearman_rates"] is None else f"{r['spearman_rates']:.2f}"
                rel = " / ".join("-" if r[key] is None else f"{r[key]:.2f}" for key in ("reliability", "reliability_of_f"))
                print(f"{table:<6} {seed:>4}  {'clean' if clean else 'noise':<6} {r['seconds']:>7.1f}  {r['estimator']:<9}  "
                      f"{rel:>19}  {rank:>11}  {t['plan']:.4f}  {t['stl']:.4f}  {t['pooled']:.4f}  "
                      f"{r['harmful_kept']:>8}  {r['decision'][:48]}", flush=True)
                lo = r["test_loss"]
                print(f"    test loss: plan {lo['plan']:.4f}  stl {lo['stl']:.4f}  pooled {lo['pooled']:.4f}")
                for key, vals in (("metric", t), ("loss", lo)):
                    se = noise.get(key) or {}
                    print(f"    plan - baseline, {'accuracy' if key == 'metric' else 'test loss'} (standard error "
                          f"over seeds and {noise.get('rows', '?')} test rows): "
                          + ", ".join(f"{name} {vals['plan'] - vals[name]:+.4f} ({se.get(name, float('nan')):.4f})"
                                      for name in ("stl", "pooled")))
                print(f"    verdict: {r['verdict']}")
                for w in r["warnings"]:
                    print(f"    warning: {w[:150]}")


if __name__ == "__main__":
    main()
