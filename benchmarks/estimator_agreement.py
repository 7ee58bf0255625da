"""Agreement of each estimator of f(S) with a many-seed truth on one fixed sample of subsets.

Truth: the mean of ``--truth-seeds`` retrained models per subset (seeds disjoint from the estimators').
Estimators: retraining with one seed (what a subset costs by default), retraining averaged over two
seeds, and the gradient estimate (mean of its base networks, the planner's default). Printed: Spearman
of each estimator's f with the truth over the fixed subsets, and the truth's own reliability (how much of
its spread is real). Cases: the TV16 label-noise case (16 states, known flip rates) and the same states
with no flipped labels (near-interchangeable sources).

    python benchmarks/estimator_agreement.py [--subsets 40] [--truth-seeds 8]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from planner.reliability import spearman, variance_components
    from planner.sampling import design, subset_seed
    from planner.selection.estimate import EstimateSettings, _gradient_f
    from planner_models.noise import label_noise_case
    from planner_models.train import TrainConfig, train_subsets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsets", type=int, default=40)
    ap.add_argument("--truth-seeds", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = TrainConfig()
    print("case    truth-reliab  retrain(1 seed)  retrain(2 seeds)  gradient  seconds(truth, gradient)")
    for clean in (False, True):
        case = label_noise_case("tv16", 16, seed=args.seed, rates=[0.0] * 16 if clean else None,
                                max_rows_per_task=1000)
        data, t = case.data, case.target
        src = case.sources
        subsets = [tuple(src[i] for i in s) for s in design(len(src), 5, args.subsets, args.seed)]

        def retrain(seeds):
            jobs = [(s, r) for s in subsets for r in seeds]
            res = train_subsets(data, t, [s for s, _ in jobs], cfg, [subset_seed(args.seed, s, r) for s, r in jobs])
            out = {}
            for (s, _), rr in zip(jobs, res):
                out.setdefault(s, []).append(rr.f)
            return out

        t0 = time.perf_counter()
        truth_runs = retrain(range(100, 100 + args.truth_seeds))
        t_truth = time.perf_counter() - t0
        truth = np.array([np.mean(truth_runs[s]) for s in subsets])
        rel = variance_components(truth_runs).reliability_of_mean(args.truth_seeds)
        one = retrain([0])
        two = retrain([0, 1])
        t0 = time.perf_counter()
        pos = {i: n for n, i in enumerate(src)}
        g = _gradient_f(data, t, src, subsets, cfg, EstimateSettings(seed=args.seed))["f"]
        t_grad = time.perf_counter() - t0
        del pos
        print(f"{'clean' if clean else 'noise':<7} {rel:>12.2f}  "
              f"{spearman([one[s][0] for s in subsets], truth):>15.2f}  "
              f"{spearman([np.mean(two[s]) for s in subsets], truth):>16.2f}  {spearman(g, truth):>8.2f}  "
              f"{t_truth:.1f}, {t_grad:.1f}", flush=True)


if __name__ == "__main__":
    main()
