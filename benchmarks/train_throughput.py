"""Throughput of the batched subset trainer against a plain one-model-at-a-time PyTorch loop.

Both paths train the same models: same data, subsets, epochs, batches and seeds (so the same
initial weights and the same mini-batches). The plain loop builds one ``nn.Module`` and one
``torch.optim.Adam`` per subset and trains the subsets one after another
(:func:`planner_models.train.train_subsets_plain`); the batched trainer (:func:`planner_models.train.train_subsets`)
stacks all of them and steps them together with batched matrix products.

Setting: 20 sources, subsets of alpha = 5 sources (plus the
target), 1,000 rows per task, 10 features, hidden 32, batch 128, 5 epochs; 64 and 256 models.
Prints, per model count, milliseconds per model for each path and the mean target f of each (equal
up to float rounding: same seeds, same batches); the GFLOP/s each path reaches (useful FLOPs:
forward and backward of each row through the encoder and its own head) next to a 2048 x 2048
float32 matrix product on the same machine; on a GPU, 1,024 models at once. The last line is
``speedup <plain ms per model / batched ms per model>`` at 256 models (``--quick``: 64 models,
fewer rows, in well under two minutes).

    python benchmarks/train_throughput.py [--quick] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from planner_models.data import TRAIN, synthetic_classification  # noqa: E402
from planner_models.train import TrainConfig, train_subsets, train_subsets_plain  # noqa: E402


def matmul_gflops(device: str, n: int = 2048, reps: int = 5) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def useful_flops(data, subsets, config) -> float:
    """FLOPs of training proper: per row and epoch, forward (2 p h + 2 h C) and backward
    (weights of both layers, 2 p h + 2 h C; input gradient of the head, 2 h C), i.e. 4 p h + 6 h C."""
    p, h, C = data.n_features, config.hidden[0], max(data.n_classes, 1)
    per_task = np.bincount(data.task[data.split == TRAIN], minlength=data.n_tasks)
    rows = sum(int(per_task[[0] + list(s)].sum()) for s in subsets)
    return rows * config.epochs * (4 * p * h + 6 * h * C)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller version (16 and 64 models, 400 rows per task)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both paths (default: torch's)")
    ap.add_argument("--models", default=None, help="comma-separated model counts (default 64,256; quick 16,64)")
    ap.add_argument("--gpu-models", type=int, default=1024, help="models trained at once on the GPU, when present")
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU timing even when CUDA is available")
    ap.add_argument("--torch-path", action="store_true",
                    help="also time the batched trainer's PyTorch path (MTL_PLANNER_NATIVE=0) on the CPU")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    n_rows = 400 if args.quick else 1000
    counts = [int(c) for c in (args.models or ("16,64" if args.quick else "64,256")).split(",")]
    data = synthetic_classification(k=20, p=10, n_per_task=n_rows, seed=0)
    config = TrainConfig(hidden=(32,), batch_size=128, epochs=5, patience=None, lr=5e-3, device="cpu")
    rng = np.random.default_rng(0)
    n_max = max(counts + [args.gpu_models])
    subsets = [sorted(rng.choice(np.arange(1, 21), size=5, replace=False).tolist()) for _ in range(n_max)]
    seeds = list(range(n_max))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {os.cpu_count()} logical cores")
    print(f"# data: 20 sources + target, {n_rows} rows per task, 10 features, 2 classes; "
          f"alpha = 5, hidden 32, batch 128, 5 epochs, no early stopping")

    # warm-up (first calls pay for lazy initialisation)
    train_subsets_plain(data, 0, subsets[:1], config, seeds[:1])
    train_subsets(data, 0, subsets[:2], config, seeds[:2])

    cpu_gflops = matmul_gflops("cpu")
    print(f"# 2048 x 2048 float32 matmul on the CPU: {cpu_gflops:.1f} GFLOP/s")
    from planner_models.mtl import BatchedMTL
    from planner_models.native import epoch_kernel

    kern = epoch_kernel(11, BatchedMTL(10, config.hidden, 6, 2).width[0], 2)
    print(f"# batched trainer on the CPU: {'the native C kernel (models/native)' if kern else 'the PyTorch path'}")
    print(f"{'models':>6} {'plain ms/model':>15} {'batched ms/model':>17} {'mean f plain':>13} "
          f"{'mean f batched':>15} {'max |df|':>9} {'plain GFLOP/s':>14} {'batched GFLOP/s':>16} {'speedup':>8}")
    speedup = float("nan")
    for M in counts:
        subs, sds = subsets[:M], seeds[:M]
        fl = useful_flops(data, subs, config)
        plain, tp = timed(lambda: train_subsets_plain(data, 0, subs, config, sds))
        batched, tb = timed(lambda: train_subsets(data, 0, subs, config, sds))
        fp = np.array([r.f for r in plain])
        fb = np.array([r.f for r in batched])
        speedup = tp / tb
        print(f"{M:>6} {tp / M * 1e3:>15.2f} {tb / M * 1e3:>17.3f} {fp.mean():>13.5f} {fb.mean():>15.5f} "
              f"{np.abs(fp - fb).max():>9.1e} {fl / tp / 1e9:>14.3f} {fl / tb / 1e9:>16.2f} {speedup:>8.1f}")
        if args.torch_path and kern:
            os.environ["MTL_PLANNER_NATIVE"] = "0"
            try:
                tres, tt = timed(lambda: train_subsets(data, 0, subs, config, sds))
            finally:
                del os.environ["MTL_PLANNER_NATIVE"]
            ft = np.array([r.f for r in tres])
            print(f"#  PyTorch path of the batched trainer: {tt / M * 1e3:.3f} ms/model (speedup {tp / tt:.1f}), "
                  f"mean f {ft.mean():.5f}, max |df| to the native kernel {np.abs(ft - fb).max():.1e}")
        sys.stdout.flush()

    if torch.cuda.is_available() and not args.no_gpu:
        gcfg = TrainConfig(hidden=(32,), batch_size=128, epochs=5, patience=None, lr=5e-3, device="cuda")
        M = args.gpu_models
        subs, sds = subsets[:M], seeds[:M]
        train_subsets(data, 0, subs[:8], gcfg, sds[:8])  # warm-up
        torch.cuda.synchronize()
        res, tg = timed(lambda: train_subsets(data, 0, subs, gcfg, sds))
        g_gflops = matmul_gflops("cuda")
        fl = useful_flops(data, subs, gcfg)
        print(f"# GPU {torch.cuda.get_device_name(0)}: {M} models at once in {tg:.2f} s = "
              f"{tg / M * 1e3:.3f} ms/model, mean f {np.mean([r.f for r in res]):.5f}, "
              f"{fl / tg / 1e9:.2f} GFLOP/s (2048 x 2048 matmul: {g_gflops:.0f} GFLOP/s)")
    print(f"speedup {speedup:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
