"""The estimate pipeline on CUDA against the CPU: same seeds, same subsets; f agreement and time.

    python benchmarks/gpu_estimate.py [--k 30] [--subsets 240]

Needs only torch, numpy and scipy (no solver packages): it stops at the surrogate. Prints the largest
difference in f(S) between devices, the Spearman of the two score vectors, and seconds on each device.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch

    from planner_models.data import synthetic_classification
    from planner_models.train import TrainConfig
    from planner.selection.estimate import EstimateSettings, estimate

    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--subsets", type=int, default=240)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = synthetic_classification(k=args.k, p=10, n_per_task=[200] + [600] * args.k, seed=0)
    settings = EstimateSettings(n_subsets=args.subsets, n_boot=50, batch_size=4096)
    out = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        cfg = TrainConfig(epochs=10, device=dev)
        if dev == "cuda":  # warm-up: CUDA context and kernels
            estimate(data, "target", EstimateSettings(n_subsets=20, n_boot=0, alpha=2), cfg)
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        est = estimate(data, "target", settings, cfg)
        secs = time.perf_counter() - t0
        out[dev] = (est, secs)
        print(f"{dev}: {secs:.2f} s for {est.trained} models; held-out Spearman {est.diagnostics['spearman']:.3f}", flush=True)
    if len(out) == 2:
        from scipy.stats import spearmanr

        a, b = out["cpu"][0], out["cuda"][0]
        print(f"max |f_cpu - f_cuda| = {np.max(np.abs(a.f - b.f)):.3g}")
        sa = [a.scores[t] for t in a.sources]
        sb = [b.scores[t] for t in b.sources]
        print(f"Spearman of the score vectors cpu vs cuda = {spearmanr(sa, sb).statistic:.4f}")
        print(f"speedup cuda/cpu {out['cpu'][1] / out['cuda'][1]:.1f}")


if __name__ == "__main__":
    main()
