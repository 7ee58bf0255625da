"""Throughput of a user's own module: torch.func batched training against the plain loop.

Both paths train the same models of the same user module (``examples/user_model``; ``--model`` for
another): same data, subsets, seeds, batches and epochs, through
:func:`planner_models.user_model.train_subsets_user` with ``mode="vmap"`` (the modules of a group stacked with
``stack_module_state`` and stepped with ``vmap(grad_and_value(functional_call))``) and ``mode="loop"``
(one module and one ``torch.optim.Adam`` after another). Setting: 20 sources, subsets of 5 sources
plus the target, 1,000 rows per task (``--quick``: 400), 10 features, batch 128, 5 epochs, no early
stopping; 64 models (``--quick``: 32). Prints per module: ms per model for each path, the largest
difference of ``f`` between them (float rounding; models whose best epoch differs, after a near-tie
of two epochs' validation losses, are counted apart) and ``ratio <loop / batched>``.

    python benchmarks/user_model_throughput.py [--quick] [--threads N] [--models M] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from planner_models.data import synthetic_classification  # noqa: E402
from planner_models.train import TrainConfig  # noqa: E402
from planner_models.user_model import load_user_model, train_subsets_user  # noqa: E402

MODELS = [os.path.join(ROOT, "examples", "user_model", "layernorm_residual.py") + ":make_model",
          os.path.join(ROOT, "examples", "user_model", "conv1d_model.py") + ":build"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", action="append", help="FILE.py:FUNCTION (repeatable); default: the two examples")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_rows = 400 if args.quick else 1000
    M = args.models or (32 if args.quick else 64)
    data = synthetic_classification(k=20, p=10, n_per_task=n_rows, seed=0)
    rng = np.random.default_rng(0)
    subsets = [sorted(rng.choice(np.arange(1, 21), 5, replace=False).tolist()) for _ in range(M)]
    seeds = list(range(M))
    config = TrainConfig(batch_size=128, epochs=5, patience=None, device=args.device)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}; {M} models, "
          f"{n_rows} rows per task, 5 epochs, batch 128")
    ratio = None
    for spec in args.model or MODELS:
        model = load_user_model(spec)
        train_subsets_user(data, 0, subsets[:2], config, seeds[:2], model, mode="vmap")   # check, probe, warm-up
        t = time.perf_counter()
        a = train_subsets_user(data, 0, subsets, config, seeds, model, mode="vmap")
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t_vmap = time.perf_counter() - t
        t = time.perf_counter()
        b = train_subsets_user(data, 0, subsets, config, seeds, model, mode="loop")
        t_loop = time.perf_counter() - t
        # a near-tie of two epochs' validation losses can keep another epoch's state on the other
        # path (float rounding decides "strict improvement"): such models are counted, not compared
        same = [(x, y) for x, y in zip(a, b) if x.best_epoch == y.best_epoch]
        diff = max(abs(x.f - y.f) for x, y in same) if same else float("nan")
        ratio = t_loop / t_vmap
        name = os.path.basename(spec)
        print(f"{name}: batched {1000 * t_vmap / M:.2f} ms/model, loop {1000 * t_loop / M:.2f} ms/model, "
              f"max |f difference| {diff:.1e} ({M - len(same)} of {M} kept another epoch), ratio {ratio:.2f}")
    print(f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
