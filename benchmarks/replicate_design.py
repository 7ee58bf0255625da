"""How precise is the reliability from a replicate design of m subsets x r seeds?

On the clean TV16 cases (Nevada and 16 states, no flipped labels, retraining with the default training
settings) this trains 80 subsets of 5 x 6 seeds, takes the reliability of that whole design as the
reference, then draws 200 smaller designs (20 x 2 and 40 x 3) from the same runs and prints how their
reliability scatters: mean, standard deviation, and how often it reads above 0.5.

    python benchmarks/replicate_design.py [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from planner.reliability import variance_components
    from planner.sampling import design
    from planner_models.noise import label_noise_case
    from planner_models.train import TrainConfig, train_subsets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    print("case seed  reference (80 x 6) [90% interval]   design  mean   sd     P(>0.5)")
    for seed in args.seeds:
        case = label_noise_case("tv16", 16, seed=seed, rates=[0.0] * 16)
        subsets = [[s + 1 for s in sub] for sub in design(16, 5, 80, seed=seed + 100)[:80]]
        R = 6
        res = train_subsets(case.data, 0, [s for s in subsets for _ in range(R)], TrainConfig(),
                            [1000 * i + r for i in range(len(subsets)) for r in range(R)])
        f = np.array([x.f for x in res]).reshape(len(subsets), R)
        ref = variance_components({i: f[i] for i in range(len(subsets))})
        lo, hi = ref.reliability_interval()
        rng = np.random.default_rng(seed)
        for m, r in ((20, 2), (40, 3)):
            vals = []
            for _ in range(200):
                rows = rng.choice(len(subsets), m, replace=False)
                cols = rng.choice(R, r, replace=False)
                vals.append(variance_components({i: f[i, cols] for i in rows}).reliability)
            vals = np.array(vals)
            print(f"{seed:>9}  {ref.reliability:.3f} [{lo:.2f}, {hi:.2f}]              {m} x {r}  "
                  f"{vals.mean():.3f}  {vals.std():.3f}  {np.mean(vals > 0.5):.2f}", flush=True)


if __name__ == "__main__":
    main()
