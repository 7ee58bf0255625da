"""Ridge regression on subset designs that scales with the number of tasks.

A surrogate's design has one 0/1 column per source task and ``alpha`` ones per row (a sampled
subset), so for k sources and n = 8k subsets a dense design holds 8k^2 numbers: at k = 10,000 that
is 6.4 GB, and a dense least-squares solve of it runs for minutes. From ``SPARSE_K`` columns on, the
design is a CSR matrix (n * alpha stored ones) and the ridge problem

    min_c ||(X - 1 xm') c - (y - ym)||^2 + sum_i lam_i c_i^2

is solved by LSQR on a linear operator that centres implicitly (no dense copy), which gives the
same answer as the dense solver: the minimum-norm solution when lam = 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

SPARSE_K = 1000  # from this many columns on, designs are sparse and solved iteratively


def masks_csr(subsets: Sequence[Sequence[int]], k: int) -> sp.csr_matrix:
    """The 0/1 subset indicators as a CSR matrix (one row per subset), built without a dense copy."""
    indptr = np.zeros(len(subsets) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in subsets], out=indptr[1:])
    indices = np.fromiter((i for s in subsets for i in s), dtype=np.int64, count=int(indptr[-1]))
    data = np.ones(len(indices))
    return sp.csr_matrix((data, indices, indptr), shape=(len(subsets), k))


def as_design(masks, sparse: bool | None = None):
    """A float design matrix: sparse input stays sparse (CSR); dense input becomes CSR when it has
    ``SPARSE_K`` or more columns (or ``sparse`` is True), else a dense array."""
    if sp.issparse(masks):
        return masks.tocsr().astype(float) if sparse is not False else masks.toarray().astype(float)
    arr = np.asarray(masks, dtype=float)
    if sparse or (sparse is None and arr.ndim == 2 and arr.shape[1] >= SPARSE_K):
        return sp.csr_matrix(arr)
    return arr


def stack_rows(blocks):
    """Stack row blocks, dense or sparse (sparse if any block is)."""
    if any(sp.issparse(b) for b in blocks):
        return sp.vstack([sp.csr_matrix(b) for b in blocks], format="csr")
    return np.vstack(blocks)


def column_scale(X) -> float:
    """Mean over columns of the centred sum of squares (the ridge grid's unit), for dense or sparse X."""
    n = X.shape[0]
    if n == 0 or X.shape[1] == 0:
        return 1.0
    if sp.issparse(X):
        sums = np.asarray(X.sum(axis=0)).ravel()
        squares = np.asarray(X.multiply(X).sum(axis=0)).ravel()
        ss = squares - sums * sums / n
    else:
        Xc = X - X.mean(axis=0)
        ss = np.sum(Xc * Xc, axis=0)
    return float(np.mean(ss)) or 1.0


def ridge_lsqr(X, y: np.ndarray, lam, intercept: bool = True, tol: float = 1e-10,
               iter_lim: int | None = None) -> tuple[float, np.ndarray]:
    """Ridge with an unpenalised intercept on a sparse (or dense) design, by LSQR on the centred
    design stacked with sqrt(lam) rows, never forming the centred matrix."""
    from scipy.sparse.linalg import LinearOperator, lsqr

    X = sp.csr_matrix(X, dtype=float)
    n, k = X.shape
    y = np.asarray(y, dtype=float)
    if k == 0:
        return (float(y.mean()) if intercept else 0.0), np.zeros(0)
    xm = np.asarray(X.mean(axis=0)).ravel() if intercept else np.zeros(k)
    ym = float(y.mean()) if intercept else 0.0
    root = np.sqrt(np.broadcast_to(np.asarray(lam, dtype=float), (k,)))
    XT = X.T.tocsr()

    def matvec(v):
        v = np.ravel(v)
        return np.concatenate([X @ v - xm @ v, root * v])

    def rmatvec(u):
        u = np.ravel(u)
        top = u[:n]
        return XT @ top - xm * top.sum() + root * u[n:]

    A = LinearOperator((n + k, k), matvec=matvec, rmatvec=rmatvec, dtype=float)
    b = np.concatenate([y - ym, np.zeros(k)])
    coef = lsqr(A, b, atol=tol, btol=tol, iter_lim=iter_lim or max(100, 20 * k))[0]
    return float(ym - xm @ coef), coef
