"""How far to trust a selection: seed noise against real differences, held-out prediction, and the
plain-word warnings every report carries.

* ``reliability`` (:func:`planner.reliability.variance_components`): the share of the variance of a
  single measurement of f(S) across subsets (one trained network, one seed) that is not seed noise, from
  replicate runs. Below :data:`MIN_RELIABILITY` the subset moves a network's f less than its seed does:
  the runs cannot separate the sources, whatever a mean over many networks ranks repeatably.
* ``reliability of f``: the same share for the f the surrogate is fitted to (a mean of several
  measurements for the gradient estimate and for runs files); it caps how well any surrogate can rank
  unseen subsets (its Spearman ceiling).
* Held-out figures come from repeated K-fold cross-validation over every sampled subset (the
  single-task runs stay in every training fold, anchoring the intercept), not from one small split.
* :func:`warnings_for` lists every reason not to trust a plan; :func:`separable` says whether the
  runs can tell sources apart at all. When they cannot, the planner recommends pooling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from planner.reliability import spearman
from planner.ridge import stack_rows

MIN_RELIABILITY = 0.5  # below it, most of what a surrogate sees is seed noise
MIN_SPEARMAN = 0.2  # held-out Spearman below it: no better than a guess at ranking unseen subsets
RARE_SAMPLES = 3  # a source in fewer sampled subsets has no usable score


@dataclass
class CrossValidation:
    folds: int
    repeats: int
    spearman: np.ndarray  # one per repeat
    mse: np.ndarray
    oof: np.ndarray  # out-of-fold predictions of the first repeat

    @property
    def spearman_mean(self) -> float:
        return float(np.nanmean(self.spearman)) if len(self.spearman) else math.nan

    @property
    def spearman_sd(self) -> float:
        return float(np.nanstd(self.spearman, ddof=1)) if len(self.spearman) > 1 else 0.0

    @property
    def mse_mean(self) -> float:
        return float(np.mean(self.mse)) if len(self.mse) else math.nan


def cross_validate(masks: np.ndarray, f: np.ndarray, anchor_X: np.ndarray, anchor_y: np.ndarray,
                   fit: Callable[[np.ndarray, np.ndarray], Any], folds: int = 5, repeats: int = 10,
                   seed: int = 0) -> CrossValidation:
    """Repeated K-fold over the rows of ``masks`` (the sampled subsets); ``anchor_X/anchor_y`` (the
    single-task runs) join every training fold and are never scored."""
    n = len(f)
    folds = max(2, min(folds, n))
    sp, ms, first = [], [], None
    for r in range(repeats):
        order = np.random.default_rng([seed, 7919, r]).permutation(n)
        pred = np.empty(n)
        for i in range(folds):
            held = order[i::folds]
            train = np.ones(n, dtype=bool)
            train[held] = False
            model = fit(stack_rows([masks[train], anchor_X]), np.concatenate([f[train], anchor_y]))
            pred[held] = model.predict(masks[held])
        sp.append(spearman(pred, f))
        ms.append(float(np.mean((pred - f) ** 2)))
        if first is None:
            first = pred.copy()
    return CrossValidation(folds, repeats, np.asarray(sp), np.asarray(ms), first if first is not None else np.zeros(0))


def separable(reliability: float, cv_spearman: float) -> bool:
    """Can the runs tell sources apart? The reliability of one measurement (the subset moves f at least
    as far as the seed does) and the held-out Spearman both clear their bars."""
    ok_rel = not math.isfinite(reliability) or reliability >= MIN_RELIABILITY
    return ok_rel and math.isfinite(cv_spearman) and cv_spearman >= MIN_SPEARMAN


def _pct(x: float) -> str:
    """A share in percent; one decimal where whole percents would round onto the 50% bar."""
    text = f"{100 * x:.0f}%"
    return f"{100 * x:.1f}%" if text == "50%" and x != 0.5 else text


def warnings_for(*, reliability: float, spearman_ceiling: float, cv_spearman: float, cv_spearman_sd: float,
                 sample_counts: dict[str, int], uncertain: Sequence[str], n_sources: int, surrogate_kind: str,
                 fixed_size: bool, estimator: str,
                 reliability_interval: tuple[float, float] = (math.nan, math.nan),
                 reliability_of_f: float = math.nan, f_replicates: int = 1) -> list[str]:
    """Plain sentences, one per reason not to trust the estimate (the plan adds its own).
    ``reliability`` and its interval are of one measurement (one network); ``reliability_of_f`` of the
    mean of ``f_replicates`` measurements the surrogate is fitted to (nan or equal when it is one)."""
    out: list[str] = []
    low = reliability_interval[0]
    unit = "one trained network's" if estimator in ("retrain", "runs") else "one base network's"
    if math.isfinite(reliability) and reliability >= MIN_RELIABILITY and math.isfinite(low) and low < MIN_RELIABILITY:
        out.append(
            f"reliability {reliability:.2f} is uncertain: its 90% interval reaches down to {low:.2f} (from few "
            "replicate runs), so whether these runs separate the sources is not settled")
    if math.isfinite(reliability) and reliability < MIN_RELIABILITY:
        mean_note = ""
        if f_replicates > 1 and math.isfinite(reliability_of_f) and reliability_of_f >= MIN_RELIABILITY:
            mean_note = (f"; the mean of {f_replicates} measurements ranks subsets repeatably (reliability of f "
                         f"{reliability_of_f:.2f}), but the differences it ranks are smaller than a seed's")
        out.append(
            f"low reliability: only {_pct(reliability)} of the variation of {unit} f(S) across subsets comes from "
            f"the subset, the rest from its seed{mean_note}, so these runs cannot separate the sources (Spearman "
            f"ceiling of the surrogate {spearman_ceiling:.2f})")
    elif not math.isfinite(reliability):
        out.append("reliability unknown: no subset was measured twice, so seed noise cannot be told from real "
                   "differences")
    if not math.isfinite(cv_spearman) or cv_spearman < MIN_SPEARMAN:
        shown = "undefined" if not math.isfinite(cv_spearman) else f"{cv_spearman:.2f} +- {cv_spearman_sd:.2f}"
        out.append(f"the surrogate does not predict held-out subsets (cross-validated Spearman {shown}); its "
                   "scores are not evidence about single sources")
    never = [t for t, c in sample_counts.items() if c == 0]
    rare = [t for t, c in sample_counts.items() if 0 < c < RARE_SAMPLES]
    if never:
        out.append(f"{len(never)} source(s) were never sampled and have no score or interval: "
                   f"{', '.join(never[:8])}{' ...' if len(never) > 8 else ''}")
    if rare:
        out.append(f"{len(rare)} source(s) were sampled fewer than {RARE_SAMPLES} times; their scores rest on "
                   f"almost nothing: {', '.join(rare[:8])}{' ...' if len(rare) > 8 else ''}")
    if uncertain and len(uncertain) >= max(1, n_sources // 2):
        out.append(f"{len(uncertain)} of {n_sources} sources have 90% intervals that straddle 0: whether they "
                   "help or hurt cannot be told from these runs")
    if surrogate_kind == "pairwise" and fixed_size:
        out.append("pairwise terms from subsets of one size are identified only up to sum_j theta_ij = "
                   "(alpha - 1) theta_i; single pair values are not findings")
    return out


POOLING_RECOMMENDATION = (
    "the runs cannot separate the sources, so the plan is pooling (the target with every allowed source), the "
    "baseline that is hard to beat when sources look alike; the scores below are not findings")


def fmt(x) -> str:
    """A figure to two decimals; ``n/a`` for a missing or non-finite one."""
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.2f}"


def reliability_text(d: dict) -> str:
    """``reliability 0.27 (90% 0.15-0.41; of f 0.99)`` from diagnostics or a report's surrogate entry:
    one measurement's reliability, which decides whether the runs separate the sources, then that of the
    f the surrogate is fitted to where it differs."""
    one, of_f = d.get("reliability"), d.get("reliability_of_f")
    iv = interval_text(d.get("reliability_interval"))[2:-1]
    inner = [iv] if iv else []
    if of_f is not None and (one is None or abs(float(of_f) - float(one)) > 5e-3):
        inner.append(f"of f {fmt(of_f)}")
    return f"reliability {fmt(one)}" + (f" ({'; '.join(inner)})" if inner else "")


def interval_text(interval) -> str:
    """`` (90% 0.45-0.88)`` for a reliability interval ``[low, high]``; empty where there is none."""
    iv = list(interval or [])
    if len(iv) != 2 or any(v is None for v in iv):
        return ""
    return f" (90% {iv[0]:.2f}-{iv[1]:.2f})"


def paired_se(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """Standard error of ``mean(a) - mean(b)`` for two models scored on the same rows, ``a[r][i]`` the
    loss of seed ``r`` on row ``i``: the seed noise of each (its seeds are its own, so the two add as
    independent) plus the rows' own noise (the spread over rows of the seed-averaged differences: rows
    both find hard cancel), so a difference that another draw of seeds or of evaluation rows would undo
    is not read as a finding. The row term also holds part of the seed-by-row residual, so the sum errs
    slightly on the side of "within the noise". Identical models (the same subset and seeds) differ by 0."""
    A, B = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if A.ndim != 2 or A.shape != B.shape or A.shape[1] == 0:
        raise ValueError("paired_se needs two equal (seeds, rows) arrays")
    if np.array_equal(A, B):
        return 0.0
    R, n = A.shape
    seed_var = (float(np.var(A.mean(axis=1), ddof=1)) + float(np.var(B.mean(axis=1), ddof=1))) / R if R > 1 else 0.0
    row_var = float(np.var(A.mean(axis=0) - B.mean(axis=0), ddof=1)) / n if n > 1 else 0.0
    return math.sqrt(seed_var + row_var)
