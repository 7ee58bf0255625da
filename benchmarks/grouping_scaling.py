"""Grouping scaling benchmark.

* partition: random symmetric gains S (entries N(0, 1), seeded), N tasks into at most K groups with
  the principled-grouping value (1/|G|) sum_{i != k in G} S_ik;
* cover: MTG-Net MIMIC-27 (validation gains, 3,185 networks), K = 1..7.

Per backend: status, objective, gap to the best bound any backend proved on that instance, seconds.
Writes a markdown table on stdout (``--out`` for a file) and a PNG of an affinity matrix ordered by
its optimal groups (``--plot``).

    .venv/bin/python benchmarks/grouping_scaling.py --sizes 10,20,30,40 --groups 2,3,4,5 \
        --time-limit 10 --large-time-limit 60 --plot docs/grouping_affinity.png
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.instance import parse_instance  # noqa: E402
from planner.grouping.problem import problem_from_affinity  # noqa: E402
from planner.solve import solve  # noqa: E402
from planner.status import SolverUnavailable  # noqa: E402


def random_gains(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    S = np.round((A + A.T) / 2, 4)
    np.fill_diagonal(S, 0.0)
    return S


def run(problem, solvers, limit):
    rows = []
    for s in solvers:
        t = time.perf_counter()
        try:
            r = solve(problem, s, time_limit=limit)
        except SolverUnavailable as exc:
            rows.append((s, "unavailable", None, None, time.perf_counter() - t, str(exc)))
            continue
        rows.append((s, r.status.value, r.objective, r.bound, time.perf_counter() - t, r.message))
    bounds = [b for _, st, _, b, _, _ in rows if b is not None]
    best_bound = (min(bounds) if problem.maximize else max(bounds)) if bounds else None
    return rows, best_bound


def gap(obj, bound):
    if obj is None or bound is None:
        return None
    return abs(bound - obj) / max(1.0, abs(obj))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,20,30,40")
    ap.add_argument("--groups", default="2,3,4,5")
    ap.add_argument("--solvers", default="highs,cpsat,local,spectral")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per solve for N <= 20")
    ap.add_argument("--large-time-limit", type=float, default=60.0, help="seconds per solve for N > 20")
    ap.add_argument("--mimic", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--mimic-solvers", default="highs,cpsat,local")
    ap.add_argument("--mimic-time-limit", type=float, default=20.0)
    ap.add_argument("--budget", type=float, default=None,
                    help="per-group budget (GB) for the partitions; each task needs 2-8 GB (seeded by N)")
    ap.add_argument("--plot", default=None, help="PNG: the N=20 affinity matrix ordered by the K=5 grouping")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lines = ["| instance | N | K | backend | status | objective | gap to best bound | own gap | seconds |",
             "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |"]

    def emit(line):
        lines.append(line)
        print(line, flush=True)

    print("\n".join(lines), flush=True)
    plot_src = None
    for n in [int(x) for x in args.sizes.split(",") if x]:
        S = random_gains(n, seed=n)
        tasks = [f"t{i}" for i in range(n)]
        kw = {}
        if args.budget is not None:
            mem = np.random.default_rng(1000 + n).integers(2, 9, size=n)
            kw = dict(task_resources={t: {"gpu_gb": float(m)} for t, m in zip(tasks, mem)},
                      per_group_budgets={"gpu_gb": args.budget})
        for k in [int(x) for x in args.groups.split(",") if x]:
            p = problem_from_affinity(tasks, S.tolist(), max_groups=k, name=f"random_n{n}_k{k}", **kw)
            limit = args.time_limit if n <= 20 else args.large_time_limit
            rows, best = run(p, args.solvers.split(","), limit)
            for s, st, obj, b, sec, _msg in rows:
                g, og = gap(obj, best), gap(obj, b)
                label = "partition random" + (f", budget {args.budget:g} GB" if args.budget is not None else "")
                emit(f"| {label} | {n} | {k} | {s} | {st} | {_f(obj)} | {_p(g)} | {_p(og)} | {sec:.2f} |")
                if n == 20 and k == 5 and s == "highs" and st == "optimal":
                    plot_src = (S, p, solve(p, "highs"))
    if args.mimic:
        anchors = ROOT.parent / "shared" / "anchors" / "mtgnet"
        if anchors.is_dir():
            from planner.grouping.convert import mtgnet_instance

            for k in range(1, 8):
                p = parse_instance(mtgnet_instance(anchors / "mimic27_mimic_x.csv", anchors / "mimic27_mimic_y_valid.csv", k))
                rows, best = run(p, args.mimic_solvers.split(","), args.mimic_time_limit)
                for s, st, obj, b, sec, _msg in rows:
                    emit(f"| cover MIMIC-27 | 27 | {k} | {s} | {st} | {_f(obj)} | {_p(gap(obj, best))} | {_p(gap(obj, b))} | {sec:.2f} |")
        else:
            print(f"(MIMIC-27 skipped: {anchors} not found)", file=sys.stderr)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    if args.plot and plot_src is not None:
        plot_affinity_by_group(*plot_src, path=args.plot)
    return 0


def plot_affinity_by_group(S, problem, result, path: str) -> None:
    """The affinity matrix with rows and columns ordered by group, group borders drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order, borders = [], []
    for g in result.solution["groups"]:
        order += [problem.index[t] for t in g]
        borders.append(len(order))
    M = S[np.ix_(order, order)]
    lim = float(np.abs(M).max()) or 1.0
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(M, cmap="RdBu", vmin=-lim, vmax=lim)
    for b in borders[:-1]:
        ax.axhline(b - 0.5, color="k", lw=1)
        ax.axvline(b - 0.5, color="k", lw=1)
    labels = [problem.tasks[i] for i in order]
    ax.set_xticks(range(len(order)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(order)), labels, fontsize=6)
    ax.set_title(f"{problem.name}: gains ordered by the optimal {len(borders)} groups")
    fig.colorbar(im, ax=ax, label="S[i][k]")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _f(x):
    return "-" if x is None else f"{x:.4f}"


def _p(x):
    return "-" if x is None else f"{100 * x:.2f}%"


if __name__ == "__main__":
    raise SystemExit(main())
