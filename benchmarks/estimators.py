"""Estimators of f(S) on label-noise cases from real tables: retraining (several training settings)
against the gradient-based estimate (models/gradient.py).

Cases (models/noise.py): a real target task (TV16: Nevada; Hsb82: the first group of schools) and
``--sources`` real donor tasks whose labels are flipped at known rates spread over [0, 0.5]. For each
case seed and estimator:

* ``spearman``: Spearman of the linear surrogate's theta_i (least squares with an intercept on
  ``--subsets`` random subsets of size 5 plus the target alone, as in the paper) with the true flip
  rates: 1 means the sources are ranked exactly by how noisy they are;
* ``cv``: held-out Spearman of that surrogate on the f values (5-fold, repeated 5 times);
* ``seed share``: the seed-noise share of the variance of f across subsets (1 - reliability, from
  20 subsets x 2 seeds; for the gradient estimate the seed is the base network's and projection's);
* ``seconds``: computing f for the sampled subsets (training, or the gradient set-up plus fits).

    python benchmarks/estimators.py [--quick] [--seeds 3] [--sweep] [--out results.jsonl]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def sample_subsets(k: int, alpha: int, n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng([seed, 31])
    seen, out = set(), []
    while len(out) < n:
        s = tuple(sorted(int(i) for i in rng.choice(k, size=alpha, replace=False)))
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def theta_ls(masks: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Least squares with an intercept (minimum-norm where the design is rank deficient)."""
    A = np.hstack([masks, np.ones((len(masks), 1))])
    coef, *_ = np.linalg.lstsq(A, f, rcond=None)
    return coef[:-1]


def ls_fit(X, y):
    A = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return lambda Z: np.hstack([Z, np.ones((len(Z), 1))]) @ coef


def estimators(sweep: bool):
    from planner_models.gradient import GradientConfig
    from planner_models.train import TrainConfig

    rows = [
        ("retrain default (lr 5e-3, 20 ep, patience 5, best)", "retrain", TrainConfig(device="cpu")),
        ("retrain paper speed-up (30 ep x 20%, 40% rows, best)", "retrain",
         TrainConfig(epochs=30, epoch_fraction=0.2, train_fraction=0.4, device="cpu")),
        ("retrain lr 1e-3, 40 ep, no stop, last", "retrain",
         TrainConfig(lr=1e-3, epochs=40, patience=None, keep="last", device="cpu")),
        ("retrain lr 1e-3, 40 ep, no stop, best", "retrain",
         TrainConfig(lr=1e-3, epochs=40, patience=None, device="cpu")),
        ("retrain default, mean of 4 seeds", "retrain4", TrainConfig(device="cpu")),
        ("retrain lr 1e-3, 40 ep, no stop, last, mean of 4 seeds", "retrain4",
         TrainConfig(lr=1e-3, epochs=40, patience=None, keep="last", device="cpu")),
        ("gradient default (dim 128, ridge 1)", "gradient", GradientConfig(device="cpu")),
        ("gradient dim 256, ridge 1e-3", "gradient", GradientConfig(dim=256, ridge=1e-3, device="cpu")),
    ]
    if sweep:
        rows += [
            ("retrain lr 5e-3, 20 ep, no stop, last", "retrain",
             TrainConfig(patience=None, keep="last", device="cpu")),
            ("retrain lr 2e-3, 30 ep, no stop, last", "retrain",
             TrainConfig(lr=2e-3, epochs=30, patience=None, keep="last", device="cpu")),
            ("retrain lr 1e-3, 40 ep, wd 1e-3, last", "retrain",
             TrainConfig(lr=1e-3, epochs=40, patience=None, keep="last", weight_decay=1e-3, device="cpu")),
            ("gradient dim 64, ridge 1e-3", "gradient", GradientConfig(dim=64, ridge=1e-3, device="cpu")),
            ("gradient dim 128, ridge 1e-3", "gradient", GradientConfig(dim=128, ridge=1e-3, device="cpu")),
            ("gradient dim 512, ridge 1e-3", "gradient", GradientConfig(dim=512, ridge=1e-3, device="cpu")),
            ("gradient dim 256, ridge 1e-2", "gradient", GradientConfig(dim=256, ridge=1e-2, device="cpu")),
            ("gradient dim 256, ridge 1e-1", "gradient", GradientConfig(dim=256, ridge=1e-1, device="cpu")),
            ("gradient dim 256, ridge 1e-4", "gradient", GradientConfig(dim=256, ridge=1e-4, device="cpu")),
        ]
    return rows


def evaluate(case, kind, cfg, subsets, seed, noise_subsets=20):
    from planner_models.gradient import GradientEstimator
    from planner_models.train import train_subsets
    from planner.reliability import repeated_kfold, spearman, variance_components
    from planner.sampling import subset_seed

    data, t = case.data, case.target
    src = case.sources
    k = len(src)
    to_data = [tuple(src[i] for i in s) for s in subsets]
    t0 = time.perf_counter()
    if kind.startswith("retrain"):
        r_seeds = 4 if kind == "retrain4" else 1
        runs = [()] * 3 + to_data * r_seeds
        seeds = [subset_seed(seed, (), r) for r in range(3)] + [subset_seed(seed, s, r) for r in range(r_seeds) for s in to_data]
        res = train_subsets(data, t, runs, cfg, seeds)
        f_all = np.array([r.f for r in res])
        stl, f = f_all[:3], f_all[3:].reshape(r_seeds, -1).mean(0)
        seconds = time.perf_counter() - t0
        noisy = to_data[:noise_subsets]
        rep = train_subsets(data, t, noisy * r_seeds, cfg,
                            [subset_seed(seed, s, r_seeds + r) for r in range(r_seeds) for s in noisy])
        rep_f = np.array([r.f for r in rep]).reshape(r_seeds, -1).mean(0)
        pairs = [[a, b] for a, b in zip(f[:noise_subsets], rep_f)]
    else:
        est = GradientEstimator(data, t, cfg, seed=seed)
        f_all = est.f([()] + to_data)
        stl, f = f_all[:1], f_all[1:]
        seconds = time.perf_counter() - t0
        est2 = GradientEstimator(data, t, cfg, seed=seed + 1000)
        pairs = [[a, b] for a, b in zip(f[:noise_subsets], est2.f(to_data[:noise_subsets]))]
    masks = np.zeros((len(subsets), k))
    for r, s in enumerate(subsets):
        masks[r, list(s)] = 1.0
    X = np.vstack([masks, np.zeros((len(stl), k))])
    y = np.concatenate([f, stl])
    theta = theta_ls(X, y)
    vc = variance_components(pairs)
    cv = repeated_kfold(masks, f, ls_fit, k=5, repeats=5, seed=seed)
    return {"spearman": spearman(theta, case.rates), "cv": cv.spearman_mean, "seed_share": vc.seed_share,
            "df": [vc.df_between, vc.df_within], "seconds": seconds, "f_mean": float(np.mean(f)),
            "f_sd": float(np.std(f)), "theta": theta.tolist()}


def main() -> None:
    from planner_models.noise import label_noise_case

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="TV16 only, one seed, 64 subsets")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sources", type=int, default=16)
    ap.add_argument("--subsets", type=int, default=None, help="sampled subsets of size 5 (default 8k)")
    ap.add_argument("--tables", default="tv16,hsb82")
    ap.add_argument("--sweep", action="store_true", help="also other learning rates, projections and penalties")
    ap.add_argument("--only", default=None, help="run estimators whose label contains this text")
    ap.add_argument("--grid", default=None, help="extra gradient settings DIM:RIDGE,... (DIM may be full)")
    ap.add_argument("--out", default=None, help="append one JSON line per result")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    tables = ["tv16"] if args.quick else args.tables.split(",")
    seeds = [0] if args.quick else list(range(args.seeds))
    n_sub = args.subsets or (64 if args.quick else 8 * args.sources)
    rows = [r for r in estimators(args.sweep) if args.only is None or args.only in r[0]]
    if args.grid:
        from planner_models.gradient import GradientConfig

        for item in args.grid.split(","):
            dim, ridge = item.split(":")
            d = None if dim == "full" else int(dim)
            rows.append((f"gradient dim {dim}, ridge {ridge}", "gradient",
                         GradientConfig(dim=d, ridge=float(ridge), device="cpu")))
    results: dict[tuple[str, str], list[dict]] = {}
    for table in tables:
        for seed in seeds:
            case = label_noise_case(table, args.sources, seed=seed)
            subsets = sample_subsets(args.sources, 5, n_sub, seed)
            for label, kind, cfg in rows:
                r = evaluate(case, kind, cfg, subsets, seed)
                results.setdefault((table, label), []).append(r)
                print(f"{table} seed {seed} {label}: spearman {r['spearman']:.3f} cv {r['cv']:.3f} "
                      f"seed share {r['seed_share']:.3f} {r['seconds']:.1f} s", file=sys.stderr, flush=True)
                if args.out:
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps({"table": table, "seed": seed, "estimator": label, "subsets": n_sub,
                                             "sources": args.sources, **r}) + "\n")

    def ms(v):
        v = np.asarray(v, dtype=float)
        return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"

    print(f"\n{args.sources} sources, {n_sub} subsets of 5, seeds {seeds}; mean ± sd over seeds\n")
    print("| table | estimator | Spearman(theta, noise rate) | held-out Spearman | seed share | seconds |")
    print("|---|---|---|---|---|---|")
    for (table, label), rs in results.items():
        print(f"| {table} | {label} | {ms([r['spearman'] for r in rs])} | {ms([r['cv'] for r in rs])} | "
              f"{ms([r['seed_share'] for r in rs])} | {ms([r['seconds'] for r in rs])} |")


if __name__ == "__main__":
    main()
