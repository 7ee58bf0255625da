"""Exact pricing for the column generation of large derived partitions: a dedicated branch-and-bound.

The pricing problem (docs/formulations.md, "Grouping") is, for duals pi (tasks) and mu (group count),

    max_G  rc(G) = a_s * sum_{i < k in G} W_ik + b_s * sum_{i in G} d_i - sum_{i in G} pi_i - mu,  s = |G|,

over the admissible sizes s and the groups within the per-group budgets. One depth-first tree over
"task j in / task j out" decisions serves every size at once. At a node with fixed-in set F (|F| = f)
and free set U, for each size s still alive with r = s - f tasks to add (1 <= r <= |U|),

    rc <= a_s P(F) + b_s D(F) - pi(F) - mu + (sum of the r largest c_j over j in U),
    c_j = a_s (sum_{i in F} W_ij + 0.5 * (sum of the r - 1 largest W_jk over k in U, k != j)) + b_s d_j - pi_j,

(each pair inside the added set is counted half by each end, and every added task has exactly r - 1
added partners), valid because a_s >= 0. With r = 1 the bound is exact (the best single addition).
A size is dropped from a subtree when its bound there is no better than the best group of that size
found so far (or the threshold), and the tree stops when no size is alive. Budgets (non-negative
resources) remove free tasks that no longer fit beside F.

The result is the improving columns found and, per size, an upper bound on the best reduced cost:
exact when the tree finishes, and still valid when it is stopped by the time limit (the bounds of the
open nodes are included). The caller turns the per-size bounds into a Lagrangian bound.
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from planner import interrupt

EPS = 1e-7


def _openblas():
    """numpy's bundled OpenBLAS (ctypes handle) with its thread setters, or None."""
    global _BLAS
    if _BLAS is None:
        _BLAS = False
        try:
            import ctypes
            import glob
            import os

            root = os.path.dirname(np.__file__)
            for path in sorted(glob.glob(os.path.join(root, os.pardir, "numpy.libs", "*openblas*"))):
                lib = ctypes.CDLL(path)
                for get, set_ in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                                  ("openblas_get_num_threads", "openblas_set_num_threads")):
                    if hasattr(lib, get) and hasattr(lib, set_):
                        _BLAS = (getattr(lib, get), getattr(lib, set_))
                        break
                if _BLAS:
                    break
        except OSError:  # pragma: no cover - no bundled OpenBLAS
            _BLAS = False
    return _BLAS or None


_BLAS = None


@contextlib.contextmanager
def blas_threads(k: int):
    """Run with at most k OpenBLAS threads (the small eigen-decompositions here are slower with more,
    above all on a loaded machine); restored afterwards. A no-op where the library is not found."""
    blas = _openblas()
    if blas is None:
        yield
        return
    get, set_ = blas
    old = int(get())
    if old > k:
        set_(int(k))
    try:
        yield
    finally:
        if old > k:
            set_(old)


class PricingResult:
    """Columns [(rc, mask)] best first, per-size upper bounds on max rc (dict size -> ub), done flag."""

    def __init__(self, columns, ub, done, nodes):
        self.columns = columns
        self.ub = ub
        self.done = done
        self.nodes = nodes

    @property
    def max_ub(self) -> float:
        return max(self.ub.values()) if self.ub else -math.inf


def _mask(idx) -> int:
    m = 0
    for i in idx:
        m |= 1 << int(i)
    return m


_BASIS: dict[int, np.ndarray] = {}


def _basis(u: int) -> np.ndarray:
    """An orthonormal basis (u x (u-1)) of the vectors orthogonal to the all-ones vector."""
    Z = _BASIS.get(u)
    if Z is None:
        q, _ = np.linalg.qr(np.column_stack([np.ones(u), np.eye(u)[:, : u - 1]]))
        Z = _BASIS[u] = np.ascontiguousarray(q[:, 1:])
    return Z


def _spectral(uc: dict, WUU: np.ndarray, rs: np.ndarray, a_s: np.ndarray, C0: np.ndarray, u: int) -> np.ndarray:
    """Upper bounds on max 0.5 a x^T W x + c^T x over x in {0,1}^u with sum x = r, one per row
    (r, a, c): with x = (r/u) 1 + y, y orthogonal to 1 and |y|^2 = r - r^2/u, the quadratic in y over
    that sphere is bounded by the dual function phi(g) = 0.5 g rho + 0.5 sum_i h_i^2 / (g - a lam_i)
    for any g > a lam_max (weak duality); Newton steps pick a good g. ``uc`` caches the
    eigen-decomposition for the free set (shared by the two children of a node)."""
    if "eig" not in uc:
        Z = _basis(u)
        lam, vec = np.linalg.eigh(Z.T @ WUU @ Z)
        w1 = WUU.sum(axis=1)
        uc["eig"] = (lam, Z @ vec, w1, float(w1.sum()))
    lam, ZV, w1, tot = uc["eig"]
    m = rs / u
    rho = np.maximum(rs - rs * m, 0.0)
    const = 0.5 * a_s * m * m * tot + m * C0.sum(axis=1)
    lin = (a_s * m)[:, None] * w1[None, :] + C0  # (sizes, u)
    h2 = (lin @ ZV) ** 2  # (sizes, u-1)
    A = a_s[:, None] * lam[None, :]
    amax = A[:, -1]
    hn = np.sqrt(h2.sum(axis=1))
    sr = np.sqrt(np.maximum(rho, 1e-300))
    # Newton on 1/|t(g)| = 1/sqrt(rho) (t = h / (g - A)) from g0 >= the minimiser; every g > a lam_max
    # gives a valid bound, so the best value seen is kept
    g = amax + hn / sr + 1e-12 * (1.0 + np.abs(amax))
    val = np.full(len(rs), np.inf)
    with np.errstate(all="ignore"):
        val = _newton(g, A, h2, rho, sr, amax, val)
    val = np.where(rho <= 1e-12, 0.0, val)  # r = u: x is fixed, the value is const
    return const + val + 1e-9 * (1.0 + np.abs(const) + np.abs(val))


def _newton(g, A, h2, rho, sr, amax, val):
    """Newton steps for :func:`_spectral` (vectorised over sizes); the smallest dual value seen."""
    for _ in range(8):
        inv = 1.0 / (g[:, None] - A)
        q = h2 * inv * inv
        val = np.minimum(val, np.where(np.isfinite(inv).all(axis=1),
                                       0.5 * g * rho + 0.5 * (h2 * inv).sum(axis=1), np.inf))
        S = np.maximum(q.sum(axis=1), 1e-300)
        dS = (q * inv).sum(axis=1)  # -S'/2
        psi = S ** -0.5 - 1.0 / sr
        dpsi = S ** -1.5 * dS
        step = np.where(dpsi > 0, psi / np.maximum(dpsi, 1e-300), 0.0)
        g_new = g - step
        g = np.where(np.isfinite(g_new) & (g_new > amax), g_new, 0.5 * (g + amax))
    return val


def _partners(uc: dict, WUU: np.ndarray, u: int) -> np.ndarray:
    """T[j, t]: the sum of the t largest W_jk over free k != j (t = 0..u-1), cached per free set."""
    T = uc.get("T")
    if T is None:
        WU = WUU.copy()
        np.fill_diagonal(WU, -np.inf)
        WU = -np.sort(-WU, axis=1)[:, : u - 1]
        T = uc["T"] = np.zeros((u, u))
        np.cumsum(WU, axis=1, out=T[:, 1:])
    return T


def price_exact(V, pi, mu, time_limit: float | None = None, threshold: float = EPS, keep: int = 40,
                node_limit: int | None = None, spectral: bool = True, threads: int = 1,
                native: bool | None = None, enumerate_all: bool = False) -> PricingResult:
    """Branch-and-bound over groups for the best reduced cost per size (see the module docstring).

    ``V`` is a :class:`planner.grouping.colgen._Values`. A size's subtree is pruned when its
    bound is <= max(best found for that size, ``threshold``); so a size's upper bound is exact where
    it exceeds ``threshold`` and otherwise only shown to be <= ``threshold`` (or the better bound met).
    Returns up to ``keep`` columns with rc > EPS. Runs with at most ``threads`` BLAS threads.

    With at most 63 tasks and per-group budgets (if any) on at most 8 non-negative resources, the same
    tree runs in C (``grouping_pricing.c``, built on first use like the training kernel, :mod:`planner_models.native`);
    ``native=False`` forces the Python tree, ``None`` uses C where it applies and builds.

    ``enumerate_all``: list every group with rc > ``threshold`` (subtrees are pruned by the threshold
    only, not by the best group of their size), up to ``keep`` of them; ``done`` is then True only when
    the list is complete (the tree finished and no more than ``keep`` groups qualified)."""
    if native is not False and V.n <= _NATIVE_MAX_TASKS and (
            len(V.caps) == 0 or (len(V.caps) <= _NATIVE_MAX_RESOURCES and bool(np.all(V.res >= 0)))):
        lib = _native_lib()
        if lib is not None:
            return _price_native(lib, V, pi, mu, time_limit, threshold, keep, node_limit, spectral, enumerate_all)
    with blas_threads(max(1, int(threads))):
        return _price_exact(V, pi, mu, time_limit, threshold, keep, node_limit, spectral, enumerate_all)


_NATIVE_MAX_TASKS = 63
_NATIVE_MAX_RESOURCES = 8
_NATIVE = None


def _native_lib():
    """The compiled tree (ctypes), or None where it cannot be built or is turned off."""
    global _NATIVE
    if _NATIVE is None:
        _NATIVE = False
        try:
            import ctypes
            from pathlib import Path

            from planner_models.native import build_library, enabled

            if enabled():
                path = build_library(Path(__file__).with_name("pricing.c"), [], "grouping_pricing")
                if path is not None:
                    lib = ctypes.CDLL(str(path))
                    P, I, D = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
                    lib.price_bb.restype = I
                    lib.price_bb.argtypes = [I, P, P, P, P, P, I, P, D, D, D, ctypes.c_longlong, I, I, I, P, P, P, I,
                                             P, P, P, P, P, P]
                    _NATIVE = lib
        except OSError:  # pragma: no cover - a library that does not load
            _NATIVE = False
    return _NATIVE or None


def _price_native(lib, V, pi, mu, time_limit, threshold, keep, node_limit, spectral, enumerate_all=False) -> PricingResult:
    """:func:`_price_exact` in C: same tree, bounds and results."""
    n = V.n
    sizes = np.array(sorted(V.sizes), dtype=np.intc)
    W = np.ascontiguousarray(V.W, dtype=float)
    d = np.ascontiguousarray(V.d, dtype=float)
    pi_ = np.ascontiguousarray(pi, dtype=float)
    a = np.ascontiguousarray(V.a, dtype=float)
    b = np.ascontiguousarray(V.b, dtype=float)
    ub = np.zeros(len(sizes))
    cap = int(keep) + 1 if enumerate_all else max(4 * int(keep), 256)
    cmask = np.zeros(cap, dtype=np.uint64)
    crc = np.zeros(cap)
    ncols = np.zeros(1, dtype=np.intc)
    nodes = np.zeros(1, dtype=np.longlong)
    overflow = np.zeros(1, dtype=np.intc)
    nr = len(V.caps)
    res = np.ascontiguousarray(V.res, dtype=float).reshape(n, nr) if nr else np.zeros((n, 1))
    caps = np.ascontiguousarray(V.caps, dtype=float) if nr else np.zeros(1)
    rc = lib.price_bb(n, W.ctypes.data, d.ctypes.data, pi_.ctypes.data, a.ctypes.data, b.ctypes.data,
                      len(sizes), sizes.ctypes.data, float(mu), float(threshold),
                      -1.0 if time_limit is None else max(float(time_limit), 0.0),
                      -1 if node_limit is None else int(node_limit), int(bool(spectral)), int(bool(enumerate_all)),
                      nr, res.ctypes.data, caps.ctypes.data, ub.ctypes.data, cap, cmask.ctypes.data, crc.ctypes.data, ncols.ctypes.data, nodes.ctypes.data,
                      overflow.ctypes.data, interrupt.flag_address())
    if rc < 0:
        raise MemoryError("grouping pricing: the branch-and-bound could not allocate its memory")
    k = int(ncols[0])
    found: dict[int, float] = {}
    for i in range(k):
        found[int(cmask[i])] = max(found.get(int(cmask[i]), -math.inf), float(crc[i]))
    cols = sorted(((r_, m) for m, r_ in found.items()), reverse=True)
    done = rc == 1
    if enumerate_all and (overflow[0] or len(cols) > keep):
        done = False
    cols = cols[:keep]
    ubd = {int(s): (float(u) if not (math.isinf(u) and u > 0) else math.inf) for s, u in zip(sizes, ub)}
    return PricingResult(cols, ubd, done, int(nodes[0]))


def _price_exact(V, pi, mu, time_limit, threshold, keep, node_limit, spectral, enumerate_all=False) -> PricingResult:
    """The branch-and-bound of :func:`price_exact`."""
    t0 = time.perf_counter()
    n = V.n
    W, d = V.W, V.d
    pi = np.asarray(pi, dtype=float)
    sizes = np.array(sorted(V.sizes), dtype=int)
    a, b = V.a, V.b
    has_res = len(V.caps) > 0
    monotone = not has_res or bool(np.all(V.res >= 0))
    lin = -pi  # linear part without b_s d
    # per-size state: best found, the largest bound of a pruned subtree
    best = {int(s): -math.inf for s in sizes}
    pruned = {int(s): -math.inf for s in sizes}
    found: dict[int, float] = {}

    def record(F, rc):
        s = len(F)
        best[s] = max(best[s], rc)
        if rc > (threshold if enumerate_all else EPS):
            found[_mask(F)] = rc

    def thr_of(s_):
        return threshold if enumerate_all else max(best[int(s_)], threshold)

    def fits(F):
        return not has_res or bool(np.all(V.res[list(F)].sum(axis=0) <= V.caps))

    U0 = np.arange(n)
    if has_res and monotone:
        U0 = U0[np.all(V.res <= V.caps[None, :], axis=1)]
    # stack entry: (F tuple, U array, alive sizes array, bounds for alive (inherited), AF, P, D, Pi, R, cache)
    zero_n = np.zeros(n)
    R0 = np.zeros(len(V.caps)) if has_res else None
    stack = [((), U0, sizes, np.full(len(sizes), math.inf), zero_n, 0.0, 0.0, 0.0, R0, {})]
    nodes = 0
    done = True
    while stack:
        if (node_limit is not None and nodes >= node_limit) or \
                (time_limit is not None and (nodes & 31) == 31 and time.perf_counter() - t0 > time_limit) or \
                ((nodes & 31) == 0 and interrupt.requested()):
            done = False
            break
        F, U, alive, inherited, AF, P, D, Pi, R, uc = stack.pop()
        # drop sizes already beaten since the parent was bounded
        thr_v = np.array([thr_of(s_) for s_ in alive])
        keepm = inherited > thr_v
        for i in np.flatnonzero(~keepm):
            s = int(alive[i])
            pruned[s] = max(pruned[s], float(inherited[i]))
        alive = alive[keepm]
        if len(alive) == 0:
            continue
        nodes += 1
        f = len(F)
        if f and alive[0] == f:  # F itself is a group of an alive size
            if fits(F):
                record(F, float(a[f] * P + b[f] * D - Pi - mu))
            alive = alive[1:]
        u = len(U)
        alive = alive[(alive > f) & (alive - f <= u)]
        if len(alive) == 0:
            continue
        rs = alive - f
        rmax = int(rs.max())
        WUU = W[np.ix_(U, U)] if rmax > 1 else None
        as_, bs_ = a[alive][:, None], b[alive][:, None]
        C0 = as_ * AF[U][None, :] + bs_ * d[U][None, :] + lin[U][None, :]  # linear part of the residual problem
        if rmax > 1:
            T = _partners(uc, WUU, u)
            C = C0 + as_ * (0.5 * T[:, rs - 1].T)
        else:
            C = C0
        Cs = -np.sort(-C, axis=1)
        cums = np.cumsum(Cs, axis=1)
        base = a[alive] * P + b[alive] * D - Pi - mu
        ar = np.arange(len(alive))
        bounds = base + cums[ar, rs - 1]
        # sizes one short of F: the bound is exact, take the best additions directly
        one = rs == 1
        if one.any():
            for i in np.flatnonzero(one):
                got = 0
                for jj in np.argsort(-C[i]):
                    G = F + (int(U[jj]),)
                    if fits(G):  # the best fitting addition is the best group of this size here
                        record(G, float(base[i] + C[i, jj]))
                        got += 1
                        if not enumerate_all and (got >= 3 or base[i] + C[i, jj] <= EPS):
                            break
                        if enumerate_all and base[i] + C[i, jj] <= threshold:
                            break
            keep2 = ~one
            alive, bounds, C, C0, rs, base, cums = (alive[keep2], bounds[keep2], C[keep2], C0[keep2],
                                                    rs[keep2], base[keep2], cums[keep2])
            if len(alive) == 0:
                continue
        thr_v = np.array([thr_of(s_) for s_ in alive])
        if spectral:
            sel = np.flatnonzero(bounds > thr_v)
            if len(sel):
                sb = _spectral(uc, WUU, rs[sel], a[alive[sel]], C0[sel], u) + base[sel]
                bounds[sel] = np.minimum(bounds[sel], sb)
        live = bounds > thr_v
        for i in np.flatnonzero(~live):
            s = int(alive[i])
            pruned[s] = max(pruned[s], float(bounds[i]))
        if not live.any():
            continue
        alive, bounds, C, rs, base, cums, thr_v = (alive[live], bounds[live], C[live], rs[live], base[live],
                                                   cums[live], thr_v[live])
        # free tasks in no group that can beat the thresholds: the best completion containing j is
        # bounded by base + min(top-r sum, c_j + top-(r-1) sum)
        ar = np.arange(len(alive))
        with_j = base[:, None] + np.minimum(cums[ar, rs - 1][:, None], C + cums[ar, rs - 2][:, None])
        useful = np.any(with_j > thr_v[:, None], axis=0)
        if not useful.all():
            gone = with_j[:, ~useful].max(axis=1)
            for i, s_ in enumerate(alive):
                pruned[int(s_)] = max(pruned[int(s_)], float(gone[i]))
            U = U[useful]
            C = C[:, useful]
            uc = {}
            if len(U) == 0:
                continue
        # branch on the best addition for the most promising size
        top = int(np.argmax(bounds))
        jj = int(np.argmax(C[top]))
        j = int(U[jj])
        Urest = np.delete(U, jj)
        child_cache: dict = {}
        # out-child first on the stack, so the in-child is explored first
        stack.append((F, Urest, alive, bounds, AF, P, D, Pi, R, child_cache))
        G = F + (j,)
        R2 = None
        U2 = Urest
        cache2 = child_cache
        if has_res:
            R2 = R + V.res[j]
            if monotone:
                if np.any(R2 > V.caps):
                    continue
                fit = np.all(R2[None, :] + V.res[Urest] <= V.caps[None, :], axis=1)
                if not fit.all():
                    U2, cache2 = Urest[fit], {}
        stack.append((G, U2, alive, bounds, AF + W[:, j], P + AF[j], D + d[j], Pi + pi[j], R2, cache2))
    if not done:  # open subtrees: their inherited bounds stand
        for F, U, alive, inherited, *_rest in stack:
            for i, s in enumerate(alive):
                s = int(s)
                if s == len(F) or s - len(F) <= len(U):
                    pruned[s] = max(pruned[s], float(inherited[i]))
    ub = {}
    for s in sizes:
        s = int(s)
        ub[s] = max(best[s], pruned[s])
        if not math.isfinite(ub[s]) and ub[s] > 0:  # pragma: no cover - an unbounded root
            ub[s] = math.inf
    cols = sorted(((rc, m) for m, rc in found.items()), reverse=True)
    if enumerate_all and len(cols) > keep:
        done = False
    return PricingResult(cols[:keep], ub, done, nodes)
