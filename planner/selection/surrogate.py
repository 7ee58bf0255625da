"""Surrogate models of the target's loss over source subsets (Li, Nguyen, Zhang 2023).

``LinearSurrogate``:   g(S) = b + sum_{i in S} theta_i          (ridge, b unpenalised)
``PairwiseSurrogate``: g(S) = b + sum theta_i + sum_{i<j in S} theta_ij, over the pairs seen together
                       in at least ``min_pair_count`` sampled subsets; a second penalty on the pairs.

Both follow scikit-learn's habits: ``fit(masks, y)`` returns self, learned state ends in ``_``,
randomness through ``random_state``. The ridge penalty is chosen by K-fold cross-validation over a
grid relative to the design's scale. ``masks`` is an (n, k) 0/1 array of subset indicators.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from planner.ridge import SPARSE_K, as_design, column_scale, masks_csr, ridge_lsqr

RIDGE_GRID = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def masks_from_subsets(subsets: Sequence[Sequence[int]], k: int) -> np.ndarray:
    if k >= SPARSE_K:  # sparse from k = SPARSE_K sources on (planner.ridge)
        return masks_csr(subsets, k)
    x = np.zeros((len(subsets), k))
    for r, s in enumerate(subsets):
        x[r, list(s)] = 1.0
    return x


def _ridge(X: np.ndarray, y: np.ndarray, lam: np.ndarray | float, intercept: bool = True) -> tuple[float, np.ndarray]:
    """Ridge with an unpenalised intercept; ``lam`` a scalar or one penalty per column.

    Solved as a least-squares problem on the centred data stacked with sqrt(lam) rows, so that
    lam = 0 gives the minimum-norm least-squares solution when the design is rank deficient
    (fixed-size subsets make the columns sum to a constant).
    """
    if X.shape[1] == 0:
        return (float(y.mean()) if intercept else 0.0), np.zeros(0)
    if sp.issparse(X):  # many sources: an iterative solver on the sparse design (planner.ridge)
        return ridge_lsqr(X, y, lam, intercept)
    xm = X.mean(axis=0) if intercept else np.zeros(X.shape[1])
    ym = y.mean() if intercept else 0.0
    Xc = X - xm
    yc = y - ym
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (X.shape[1],))
    if np.any(lam > 0):
        A = np.vstack([Xc, np.diag(np.sqrt(lam))])
        b = np.concatenate([yc, np.zeros(X.shape[1])])
    else:
        A, b = Xc, yc
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    return float(ym - xm @ coef), coef


def _folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i::k] for i in range(k)]


def _scale(X: np.ndarray) -> float:
    return column_scale(X)


def _cv_mse(X: np.ndarray, y: np.ndarray, lam, folds: list[np.ndarray], intercept: bool = True) -> float:
    errs = []
    for held in folds:
        if len(held) == 0:
            continue
        train = np.ones(len(y), dtype=bool)
        train[held] = False
        b, c = _ridge(X[train], y[train], lam, intercept)
        pred = b + X[held] @ c
        errs.append(np.mean((pred - y[held]) ** 2))
    return float(np.mean(errs))


@dataclass
class LinearSurrogate:
    ridge: float | None = None  # None: chosen by cross-validation
    cv_folds: int = 5
    random_state: int = 0
    fit_intercept: bool = True  # False: the paper's g(S) = sum_{i in S} theta_i

    def _features(self, masks: np.ndarray) -> np.ndarray:
        return as_design(masks)

    def fit(self, masks: np.ndarray, y: np.ndarray) -> "LinearSurrogate":
        X = self._features(masks)
        y = np.asarray(y, dtype=float)
        scale = _scale(X)
        if self.ridge is None:
            folds = _folds(len(y), min(self.cv_folds, len(y)), np.random.default_rng(self.random_state))
            scores = {g: _cv_mse(X, y, g * scale, folds, self.fit_intercept) for g in RIDGE_GRID}
            best = min(scores, key=lambda g: (scores[g], -g))
            self.cv_mse_ = scores[best]
            self.ridge_ = best
        else:
            self.ridge_ = self.ridge
            self.cv_mse_ = math.nan
        self.intercept_, self.coef_ = _ridge(X, y, self.ridge_ * scale, self.fit_intercept)
        self.n_fit_ = len(y)
        return self

    def predict(self, masks: np.ndarray) -> np.ndarray:
        return self.intercept_ + self._features(masks) @ self.coef_

    @property
    def pairwise_(self) -> list[tuple[int, int, float]]:
        return []


@dataclass
class PairwiseSurrogate:
    """Linear terms plus the pairs seen together often enough; two penalties chosen by CV."""

    min_pair_count: int = 8
    ridge: float | None = None
    pair_ridge: float | None = None
    cv_folds: int = 5
    random_state: int = 0

    def _features(self, masks: np.ndarray) -> np.ndarray:
        masks = as_design(masks)
        if not self.pairs_:
            return masks
        if sp.issparse(masks):
            cols = [masks[:, [i]].multiply(masks[:, [j]]) for i, j in self.pairs_]
            return sp.hstack([masks, *cols], format="csr")
        prods = np.stack([masks[:, i] * masks[:, j] for i, j in self.pairs_], axis=1)
        return np.hstack([masks, prods])

    def fit(self, masks: np.ndarray, y: np.ndarray) -> "PairwiseSurrogate":
        masks = as_design(masks)
        y = np.asarray(y, dtype=float)
        k = masks.shape[1]
        co = masks.T @ masks
        if sp.issparse(co):  # only the pairs seen together: linear in the design's size
            co = sp.triu(co, k=1).tocoo()
            keep = co.data >= self.min_pair_count
            self.pairs_ = sorted(zip(co.row[keep].tolist(), co.col[keep].tolist()))
        else:
            self.pairs_ = [(i, j) for i in range(k) for j in range(i + 1, k) if co[i, j] >= self.min_pair_count]
        X = self._features(masks)
        scale = _scale(X)
        n_lin = k
        folds = _folds(len(y), min(self.cv_folds, len(y)), np.random.default_rng(self.random_state))
        lin_grid = RIDGE_GRID if self.ridge is None else (self.ridge,)
        pair_grid = (1e-2, 1e-1, 1.0, 10.0, 100.0) if self.pair_ridge is None else (self.pair_ridge,)
        if not self.pairs_:  # no pair columns: their penalty changes nothing
            pair_grid = pair_grid[:1]
        best = None
        for g in lin_grid:
            for h in pair_grid:
                lam = np.concatenate([np.full(n_lin, g), np.full(len(self.pairs_), h)]) * scale
                score = _cv_mse(X, y, lam, folds) if (len(lin_grid) * len(pair_grid) > 1) else math.nan
                if best is None or score < best[0]:
                    best = (score, g, h)
        self.cv_mse_, self.ridge_, self.pair_ridge_ = best
        lam = np.concatenate([np.full(n_lin, self.ridge_), np.full(len(self.pairs_), self.pair_ridge_)]) * scale
        self.intercept_, full = _ridge(X, y, lam)
        self.coef_ = full[:k]
        self.pair_coef_ = full[k:]
        self.n_fit_ = len(y)
        return self

    def predict(self, masks: np.ndarray) -> np.ndarray:
        return self.intercept_ + self._features(masks) @ np.concatenate([self.coef_, self.pair_coef_])

    @property
    def pairwise_(self) -> list[tuple[int, int, float]]:
        return [(i, j, float(v)) for (i, j), v in zip(self.pairs_, self.pair_coef_)]


def fit_surrogate(masks: np.ndarray, y: np.ndarray, kind: str = "auto", random_state: int = 0,
                  min_pair_count: int = 8):
    """``linear``, ``pairwise``, or ``auto``: the pairwise model only when its CV error is lower."""
    lin = LinearSurrogate(random_state=random_state).fit(masks, y)
    if kind == "linear":
        return lin
    pw = PairwiseSurrogate(min_pair_count=min_pair_count, random_state=random_state).fit(masks, y)
    if kind == "pairwise":
        return pw
    if pw.pairs_ and pw.cv_mse_ < 0.98 * lin.cv_mse_:  # pairs must earn their place
        return pw
    return lin


# -- diagnostics ---------------------------------------------------------------

def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def f1_transfer(pred: np.ndarray, measured: np.ndarray, baseline: float) -> float:
    """F1 of predicting positive transfer (loss below the single-task loss) against what was measured."""
    p = np.asarray(pred) < baseline
    t = np.asarray(measured) < baseline
    tp = int(np.sum(p & t))
    fp = int(np.sum(p & ~t))
    fn = int(np.sum(~p & t))
    if tp == 0:
        return 0.0 if (fp or fn) else math.nan
    return 2 * tp / (2 * tp + fp + fn)


def bootstrap_scores(masks: np.ndarray, y: np.ndarray, model, n_boot: int, random_state: int) -> np.ndarray:
    """theta_i of ``n_boot`` refits on resampled rows (penalties fixed at the fitted ones)."""
    rng = np.random.default_rng(random_state)
    n = len(y)
    out = np.empty((n_boot, masks.shape[1]))
    for b in range(n_boot):
        rows = rng.integers(0, n, size=n)
        if isinstance(model, PairwiseSurrogate):
            m = PairwiseSurrogate(min_pair_count=model.min_pair_count, ridge=model.ridge_, pair_ridge=model.pair_ridge_)
        else:
            m = LinearSurrogate(ridge=model.ridge_, fit_intercept=model.fit_intercept)
        m.fit(masks[rows], y[rows])
        out[b] = m.coef_
    return out


def learning_curve(masks_fit, y_fit, masks_held, y_held, kind: str, fractions=(0.25, 0.5, 0.75, 1.0), random_state=0):
    """Held-out MSE and Spearman as the number of fitted subsets grows."""
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(y_fit))
    rows = []
    for frac in fractions:
        n = max(5, int(round(frac * len(y_fit))))
        take = order[:n]
        model = fit_surrogate(masks_fit[take], y_fit[take], kind=kind, random_state=random_state)
        pred = model.predict(masks_held)
        rows.append({"n": int(n), "mse": float(np.mean((pred - y_held) ** 2)), "spearman": spearman(pred, y_held)})
    return rows
