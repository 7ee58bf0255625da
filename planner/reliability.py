"""How much of f(S) is the subset and how much the seed: variance components, reliability, ceilings,
and repeated K-fold cross-validation of a surrogate. Pure numpy.

Model (one-way random effects): a run of subset ``S`` with seed ``s`` gives

    f_s(S) = F(S) + e_s(S),    Var over subsets of F(S) = sigma_b^2,    Var(e) = sigma_w^2,

where ``F(S)`` is the "true" f (the mean over infinitely many seeds) and ``e`` the seed noise.
From replicate runs (``subset -> [f over seeds]``, ``m`` subsets, ``N`` runs in all):

* ``seed_var`` = ``sigma_w^2``: pooled within-subset variance ``SSW / (N - m)`` (``df_within = N - m``);
* ``between_var`` = ``sigma_b^2``: ``(MSB - MSW) / n0`` with ``MSB = SSB / (m - 1)`` (``df_between =
  m - 1``) and ``n0 = (N - sum n_i^2 / N) / (m - 1)`` (the mean replicate count, for unequal counts),
  set to 0 when negative;
* ``reliability`` = ``sigma_b^2 / (sigma_b^2 + sigma_w^2)``, clipped to [0, 1]: the between-subset
  share of the variance of a single-seed f across subsets (the intraclass correlation ICC(1)). It is a
  ratio of mean squares with ``(df_between, df_within)`` degrees of freedom: with few of either
  (e.g. 20 subsets x 2 seeds: 19 and 20) it is uncertain by about +-0.1 to 0.2 around 0.7;
* ceilings: a single-seed f correlates with the true f at most ``pearson = sqrt(reliability)``
  (``Corr(F + e, F) = sigma_b / sqrt(sigma_b^2 + sigma_w^2)``); for Spearman, under joint normality,
  ``spearman = (6 / pi) * arcsin(sqrt(reliability) / 2)`` (Pearson's formula for the rank
  correlation of a bivariate normal pair). That is also the most a surrogate can reach against
  held-out measured f: a perfect one predicts F itself. Two noisy copies of F (one seed against another)
  correlate at only ``sigma_b^2 / (sigma_b^2 + sigma_w^2)``, Spearman ``(6 / pi) * arcsin(reliability /
  2)`` (``heldout_spearman_ceiling``): what predicting one run by another run of the same subset reaches;
  a surrogate that pools many subsets can do better than that;
* the mean of ``r`` seeds has reliability ``r R / (1 + (r - 1) R)`` (Spearman-Brown);
* :meth:`VarianceComponents.reliability_interval`: the exact confidence interval of ICC(1) under the
  normal model (Shrout & Fleiss): with ``F0 = MSB / MSW``, ``F_L = F0 / F_{1-a/2}(df_b, df_w)`` and
  ``F_U = F0 * F_{1-a/2}(df_w, df_b)``, the bounds are ``(F - 1) / (F + n0 - 1)`` at ``F_L`` and
  ``F_U``, clipped to [0, 1] (exact for equal replicate counts, close otherwise).

:func:`crossed_reliability`: the same reliability for a crossed design, where every subset is measured by
the same measurers (the gradient estimate's base networks): their own offsets cancel between subsets.

:func:`repeated_kfold` cross-validates any fit function over all subsets, repeated with different
fold assignments, and reports held-out Spearman and MSE with their spread over repeats.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either side is constant."""
    ra, rb = rankdata(np.asarray(a)), rankdata(np.asarray(b))
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def pearson_ceiling(reliability: float) -> float:
    """Highest Pearson correlation of a single-seed f with the true f: ``sqrt(reliability)``."""
    return math.sqrt(min(1.0, max(0.0, reliability)))


def spearman_of_pearson(r: float) -> float:
    """Spearman correlation of a bivariate normal pair with Pearson correlation ``r``: ``6/pi asin(r/2)``."""
    return 6.0 / math.pi * math.asin(max(-1.0, min(1.0, r)) / 2.0)


def spearman_brown(reliability: float, r: int) -> float:
    """Reliability of the mean of ``r`` seeds."""
    R = min(1.0, max(0.0, reliability))
    return r * R / (1.0 + (r - 1) * R) if R < 1.0 else 1.0


@dataclass
class VarianceComponents:
    """Seed noise against between-subset spread of f (see the module docstring for the formulas)."""

    seed_var: float
    between_var: float
    total_var: float
    reliability: float
    df_between: int
    df_within: int
    n_subsets: int
    n_runs: int
    mean_replicates: float
    f_ratio: float = math.nan          # MSB / MSW
    n0: float = math.nan               # the mean replicate count of the between-subset mean square
    pearson_ceiling: float = field(init=False)
    spearman_ceiling: float = field(init=False)
    heldout_spearman_ceiling: float = field(init=False)

    def __post_init__(self) -> None:
        self.pearson_ceiling = pearson_ceiling(self.reliability) if math.isfinite(self.reliability) else math.nan
        self.spearman_ceiling = (spearman_of_pearson(self.pearson_ceiling)
                                 if math.isfinite(self.pearson_ceiling) else math.nan)
        self.heldout_spearman_ceiling = (spearman_of_pearson(self.reliability)
                                         if math.isfinite(self.reliability) else math.nan)

    @property
    def seed_share(self) -> float:
        """Share of a single-seed f's variance across subsets that is seed noise: ``1 - reliability``."""
        return 1.0 - self.reliability if math.isfinite(self.reliability) else math.nan

    def reliability_of_mean(self, r: int) -> float:
        return spearman_brown(self.reliability, r)

    def reliability_interval(self, level: float = 0.9) -> tuple[float, float]:
        """Confidence interval of ``reliability`` at ``level`` (see the module docstring); nan where the
        replicates cannot give one."""
        if math.isnan(self.f_ratio) or not math.isfinite(self.n0) or self.df_between < 1 or self.df_within < 1:
            return math.nan, math.nan
        from scipy.stats import f as f_dist

        a = (1.0 - level) / 2.0
        lo_f = self.f_ratio / f_dist.ppf(1.0 - a, self.df_between, self.df_within)
        hi_f = self.f_ratio * f_dist.ppf(1.0 - a, self.df_within, self.df_between)

        def icc(F: float) -> float:
            return 1.0 if math.isinf(F) else min(1.0, max(0.0, (F - 1.0) / (F + self.n0 - 1.0)))

        return float(icc(lo_f)), float(icc(hi_f))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seed_share"] = self.seed_share
        return d


def variance_components(replicates: Mapping[Any, Sequence[float]] | Sequence[Sequence[float]]) -> VarianceComponents:
    """One-way random-effects variance components of f from replicate runs.

    ``replicates``: ``{subset: [f of each seed]}`` or a list of such lists. Subsets with one run add
    to the between-subset mean squares only. Needs at least two subsets and one subset with two runs
    for finite values (otherwise the missing parts are nan).
    """
    groups = list(replicates.values()) if isinstance(replicates, Mapping) else list(replicates)
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if len(g)]
    m = len(groups)
    n_i = np.array([len(g) for g in groups], dtype=float)
    N = float(n_i.sum())
    nan = math.nan
    if m == 0:
        return VarianceComponents(nan, nan, nan, nan, 0, 0, 0, 0, nan)
    means = np.array([g.mean() for g in groups])
    grand = float((n_i * means).sum() / N)
    ssw = float(sum(((g - g.mean()) ** 2).sum() for g in groups))
    ssb = float((n_i * (means - grand) ** 2).sum())
    df_w, df_b = int(N - m), m - 1
    msw = ssw / df_w if df_w > 0 else nan
    n0 = nan
    if df_b > 0 and df_w > 0:
        msb = ssb / df_b
        n0 = (N - float((n_i ** 2).sum()) / N) / df_b
        between = max(0.0, (msb - msw) / n0)
    else:
        between = nan
    total = between + msw if math.isfinite(between) and math.isfinite(msw) else nan
    if math.isfinite(total):
        rel = 1.0 if total == 0 else min(1.0, max(0.0, between / total))
    else:
        rel = nan
    f_ratio = nan
    if df_b > 0 and df_w > 0:
        f_ratio = msb / msw if msw > 0 else (math.inf if msb > 0 else nan)
    return VarianceComponents(seed_var=msw, between_var=between, total_var=total, reliability=rel,
                              df_between=df_b, df_within=df_w, n_subsets=m, n_runs=int(N),
                              mean_replicates=N / m, f_ratio=f_ratio, n0=n0)


def crossed_reliability(matrix, level: float = 0.9) -> tuple[float, float, float]:
    """Reliability of the row means of ``matrix`` (subsets x measurers, every subset measured by the same
    measurers, e.g. the gradient estimate's base networks), with its confidence interval at ``level``.

    Two-way ANOVA without replication: ``MS_S`` (subsets, ``m - 1`` df) and ``MS_E`` (residual,
    ``(m - 1)(k - 1)`` df). A measurer's own offset is shared by every subset, so it cancels in the
    comparison of subsets and is not noise here (the one-way :func:`variance_components` counts it as
    noise). The reliability of the mean of the ``k`` measurers is ``1 - MS_E / MS_S`` (the consistency
    ICC(C, k) of McGraw and Wong, 1996); with ``F0 = MS_S / MS_E`` its bounds are ``1 - 1 / (F0 /
    F_{1-a/2}(df_S, df_E))`` and ``1 - 1 / (F0 F_{1-a/2}(df_E, df_S))``, clipped to [0, 1]. Returns
    ``(reliability, low, high)``; nan where there are fewer than 2 subsets or 2 measurers.
    """
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2 or not np.isfinite(x).all():
        return math.nan, math.nan, math.nan
    m, k = x.shape
    grand = x.mean()
    ss_s = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand
    ss_e = float((resid ** 2).sum())
    df_s, df_e = m - 1, (m - 1) * (k - 1)
    ms_s, ms_e = ss_s / df_s, ss_e / df_e
    if ms_s <= 0:
        return 0.0, 0.0, 0.0
    if ms_e <= 0:
        return 1.0, 1.0, 1.0
    from scipy.stats import f as f_dist

    def clip(v: float) -> float:
        return float(min(1.0, max(0.0, v)))

    f0 = ms_s / ms_e
    a = (1.0 - level) / 2.0
    low = 1.0 - 1.0 / (f0 / f_dist.ppf(1.0 - a, df_s, df_e))
    high = 1.0 - 1.0 / (f0 * f_dist.ppf(1.0 - a, df_e, df_s))
    return clip(1.0 - 1.0 / f0), clip(low), clip(high)


@dataclass
class CVResult:
    """Repeated K-fold cross-validation: per repeat, Spearman and MSE over all held-out predictions."""

    k: int
    repeats: int
    spearman: np.ndarray
    mse: np.ndarray

    @property
    def spearman_mean(self) -> float:
        return float(np.nanmean(self.spearman))

    @property
    def spearman_sd(self) -> float:
        return float(np.nanstd(self.spearman, ddof=1)) if len(self.spearman) > 1 else 0.0

    @property
    def mse_mean(self) -> float:
        return float(np.mean(self.mse))

    @property
    def mse_sd(self) -> float:
        return float(np.std(self.mse, ddof=1)) if len(self.mse) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "repeats": self.repeats, "spearman_mean": self.spearman_mean,
                "spearman_sd": self.spearman_sd, "mse_mean": self.mse_mean, "mse_sd": self.mse_sd}


def repeated_kfold(X: np.ndarray, y: np.ndarray, fit: Callable[[np.ndarray, np.ndarray], Any], k: int = 5,
                   repeats: int = 10, seed: int = 0) -> CVResult:
    """Repeated K-fold cross-validation over all rows (subsets) of ``X`` (e.g. 0/1 masks).

    ``fit(X_train, y_train)`` returns a predictor: a callable ``X -> predictions`` or an object with
    ``predict``. Each repeat draws a fold assignment from ``default_rng([seed, repeat])``, fits ``k``
    times, and scores the out-of-fold predictions of all rows together (Spearman with ``y``, MSE).
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=float)
    n = len(y)
    if not 2 <= k <= n:
        raise ValueError(f"k must lie in 2..{n}, got {k}")
    sp, ms = [], []
    for r in range(repeats):
        order = np.random.default_rng([seed, r]).permutation(n)
        pred = np.empty(n)
        for i in range(k):
            held = order[i::k]
            train = np.ones(n, dtype=bool)
            train[held] = False
            model = fit(X[train], y[train])
            predict = model.predict if hasattr(model, "predict") else model
            pred[held] = np.asarray(predict(X[held]), dtype=float)
        sp.append(spearman(pred, y))
        ms.append(float(np.mean((pred - y) ** 2)))
    return CVResult(k=k, repeats=repeats, spearman=np.array(sp), mse=np.array(ms))
