"""PNG plots (matplotlib, Agg backend; written atomically)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from planner.io import atomic_write_bytes


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_scores(report: dict, path: str | Path) -> None:
    """theta_i with 90% bootstrap intervals, sorted; the selected sources filled, the cut at 0."""
    plt = _figure()
    scores = report["scores"]
    order = sorted(scores, key=scores.get)
    y = np.arange(len(order))
    # a source never sampled has no interval: drawn as its score alone
    lo = np.array([(report["interval"][t] or [report["scores"][t]] * 2)[0] for t in order])
    hi = np.array([(report["interval"][t] or [report["scores"][t]] * 2)[1] for t in order])
    v = np.array([scores[t] for t in order])
    chosen = set(report["selected"])
    fig, ax = plt.subplots(figsize=(7, max(3, 0.22 * len(order) + 1)))
    ax.hlines(y, lo, hi, color="0.6", lw=1.5)
    sel = np.array([t in chosen for t in order])
    ax.scatter(v[sel], y[sel], color="tab:blue", zorder=3, label="selected")
    ax.scatter(v[~sel], y[~sel], facecolor="white", edgecolor="tab:red", zorder=3, label="not selected")
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(order, fontsize=7)
    ax.set_xlabel("theta_i: change in the target's validation loss when i is added (90% bootstrap interval)")
    ax.set_title(f"source scores for target {report['target']}")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_predicted_vs_measured(pred: np.ndarray, measured: np.ndarray, baseline: float, report: dict, path) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(measured, pred, s=14, alpha=0.8)
    lo = float(min(np.min(pred), np.min(measured)))
    hi = float(max(np.max(pred), np.max(measured)))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax.axvline(baseline, color="tab:red", lw=0.8, ls="--", label="single-task loss")
    ax.axhline(baseline, color="tab:red", lw=0.8, ls="--")
    s = report["surrogate"]
    sp = "n/a" if s["spearman"] is None else f"{s['spearman']:.2f}"
    ax.set_title(f"held-out subsets (n={s['n_held_out']}): Spearman {sp}")
    ax.set_xlabel("measured f(S)")
    ax.set_ylabel("predicted g(S)")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
