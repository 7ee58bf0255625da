"""Scale of validation and of the surrogate fit, before and after the linear-time checks and the
sparse ridge: prints both timings and their ratio.

* validation: a selection instance with N tasks; "before" runs the old duplicate check (a list
  scan per task, quadratic), "after" the library's validation (a set, linear);
* surrogate fit: a linear surrogate with cross-validated ridge on k sources and 8k subsets of size 5;
  "before" forces the dense least-squares path, "after" the sparse design with LSQR.

    python benchmarks/hardening_scale.py [--tasks 20000] [--k 400] [--k-large 3000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import planner.ridge as ridge  # noqa: E402
from planner.instance import parse_instance  # noqa: E402
from planner.sampling import design  # noqa: E402
from planner.selection.surrogate import LinearSurrogate, masks_from_subsets  # noqa: E402


def _selection(n: int) -> dict:
    rng = np.random.default_rng(0)
    tasks = ["T"] + [f"s{i}" for i in range(n)]
    return {"schema": 1, "kind": "selection", "target": "T", "tasks": tasks,
            "surrogate": {"intercept": 0.0, "linear": {t: float(v) for t, v in zip(tasks[1:], rng.normal(size=n))}}}


def _old_duplicate_check(tasks: list[str]) -> None:
    ids: list[str] = []
    for tid in tasks:
        if tid in ids:
            raise ValueError(tid)
        ids.append(tid)


def _fit(k: int, dense: bool) -> float:
    rng = np.random.default_rng(1)
    subsets = design(k, 5, 8 * k, 0, "none")
    masks = masks_from_subsets(subsets, k)
    theta = rng.normal(size=k)
    y = np.asarray(masks @ theta).ravel() + 0.1 * rng.normal(size=len(subsets))
    saved = ridge.SPARSE_K
    try:
        if dense:
            ridge.SPARSE_K = 10 ** 9
            masks = masks.toarray() if hasattr(masks, "toarray") else masks
        else:
            ridge.SPARSE_K = 1
            masks = ridge.as_design(masks, sparse=True)
        t0 = time.perf_counter()
        model = LinearSurrogate().fit(masks, y)
        seconds = time.perf_counter() - t0
    finally:
        ridge.SPARSE_K = saved
    assert np.corrcoef(model.coef_, theta)[0, 1] > 0.99
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20000, help="tasks in the validated selection instance")
    ap.add_argument("--k", type=int, default=400, help="sources for the dense-against-sparse fit")
    ap.add_argument("--k-large", type=int, default=3000, help="sources for a sparse-only fit (dense would not fit)")
    args = ap.parse_args()

    parse_instance(_selection(3), "warm-up")  # the first call imports the kinds
    data = _selection(args.tasks)
    t0 = time.perf_counter()
    _old_duplicate_check(data["tasks"])
    before = time.perf_counter() - t0
    t0 = time.perf_counter()
    parse_instance(data, "bench")
    after = time.perf_counter() - t0
    print(f"validation, {args.tasks} tasks: before (duplicate check alone) {before:.2f} s, "
          f"after (whole validation) {after:.2f} s, ratio {before / after:.1f}x")

    dense = _fit(args.k, dense=True)
    sparse = _fit(args.k, dense=False)
    print(f"surrogate fit, k = {args.k}, {8 * args.k} subsets: dense {dense:.2f} s, sparse {sparse:.2f} s, "
          f"ratio {dense / sparse:.1f}x")
    if args.k_large:
        big = _fit(args.k_large, dense=False)
        gb = 8 * args.k_large * args.k_large * 8 / 1e9
        print(f"surrogate fit, k = {args.k_large}, {8 * args.k_large} subsets: sparse {big:.2f} s "
              f"(the dense design alone would take {gb:.1f} GB)")


if __name__ == "__main__":
    main()
