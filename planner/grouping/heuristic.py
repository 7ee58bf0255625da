"""Heuristics for large grouping instances: local search and spectral clustering.

Each returns a feasible grouping (or NO_SOLUTION) with status ``feasible`` (never ``optimal``:
nothing is proven) and a cheap valid bound, so the result carries its gap:

* cover: the linear relaxation of the facility-location model (HiGHS);
* partition with a derived value: sum over tasks of the best share a task can get in any group
  (f(s) times its s-1 largest positive entries), or the column-generation LP bound where n <= 22
  when ``options["bound"] == "lp"``.
"""
from __future__ import annotations

import math

import numpy as np

from planner.grouping.common import Clock, result_from_chosen
from planner.status import SolveResult, SolveStatus, SolverUnavailable

PENALTY = 1e9


# ---------------------------------------------------------------------- partition (derived values)
class _PartitionState:
    """Groups as label vector; per group: size, P = sum_{i != k} M[i][k], D = sum M[i][i], resources."""

    def __init__(self, problem):
        self.p = problem
        self.n = problem.n
        sign = 1.0 if problem.maximize else -1.0
        self.M = sign * np.asarray(problem.onto, dtype=float)
        self.W = self.M + self.M.T
        np.fill_diagonal(self.W, 0.0)
        self.d = np.diag(self.M).copy()
        self.K = problem.max_groups if problem.max_groups is not None else self.n
        self.K = min(self.K, self.n)
        self.include = problem.diagonal == "include"
        self.res = np.array([[dict(r).get(name, 0.0) for name, _ in problem.per_group_budgets] for r in problem.task_resources]).reshape(self.n, -1)
        self.caps = np.array([cap for _, cap in problem.per_group_budgets])
        self.lo = max(problem.size_min, 2 if problem.rule == "tag" and not self.include else 1)
        self.hi = self.n if problem.size_max is None else problem.size_max

    def value(self, P: float, D: float, s: int, R) -> float:
        if s == 0:
            return 0.0
        pen = 0.0
        if s < self.lo or s > self.hi:
            pen += PENALTY * (1 + abs(s - min(max(s, self.lo), self.hi)))
        if len(self.caps):
            over = np.maximum(R - self.caps, 0.0)
            if over.any():
                pen += PENALTY * (1.0 + float(over.sum()))
        rule = self.p.rule
        if rule == "pairwise_mean_by_size":
            v = (P + (D if self.include else 0.0)) / s
        elif self.include:
            v = (P + D) / s
        elif s == 1:
            v = D if rule == "hoa" else 0.0
        else:
            v = P / (s - 1)
        return v - pen

    def setup(self, labels: np.ndarray) -> None:
        self.lab = labels.copy()
        K = self.K
        onehot = np.zeros((self.n, K))
        onehot[np.arange(self.n), labels] = 1.0
        self.A = self.W @ onehot  # A[i, g] = sum_{k in g} W[i, k]
        self.size = onehot.sum(axis=0).astype(int)
        self.P = np.einsum("ig,ig->g", onehot, self.A) / 1.0  # sum over ordered pairs i != k of W/2 ... see below
        # W = M + M^T, so sum_{i,k in g, i != k} W[i,k] counts each ordered pair of M twice.
        self.P = self.P / 2.0
        self.D = onehot.T @ self.d
        self.R = onehot.T @ self.res if self.res.size else np.zeros((K, 0))
        self.vals = np.array([self.value(self.P[g], self.D[g], self.size[g], self.R[g]) for g in range(K)])

    def total(self) -> float:
        return float(self.vals.sum())

    def move_delta(self, i: int, g: int) -> float:
        f = self.lab[i]
        if f == g:
            return 0.0
        pf = self.P[f] - self.A[i, f]
        pg = self.P[g] + self.A[i, g]
        vf = self.value(pf, self.D[f] - self.d[i], self.size[f] - 1, self.R[f] - self.res[i])
        vg = self.value(pg, self.D[g] + self.d[i], self.size[g] + 1, self.R[g] + self.res[i])
        return vf + vg - self.vals[f] - self.vals[g]

    def move(self, i: int, g: int) -> None:
        f = self.lab[i]
        self.P[f] -= self.A[i, f]
        self.P[g] += self.A[i, g]
        self.D[f] -= self.d[i]
        self.D[g] += self.d[i]
        self.size[f] -= 1
        self.size[g] += 1
        self.R[f] -= self.res[i]
        self.R[g] += self.res[i]
        self.A[:, f] -= self.W[:, i]
        self.A[:, g] += self.W[:, i]
        self.lab[i] = g
        for h in (f, g):
            self.vals[h] = self.value(self.P[h], self.D[h], self.size[h], self.R[h])

    def swap_delta(self, i: int, j: int) -> float:
        f, g = self.lab[i], self.lab[j]
        if f == g:
            return 0.0
        wij = self.W[i, j]
        pf = self.P[f] - self.A[i, f] + self.A[j, f] - wij
        pg = self.P[g] - self.A[j, g] + self.A[i, g] - wij
        vf = self.value(pf, self.D[f] - self.d[i] + self.d[j], self.size[f], self.R[f] - self.res[i] + self.res[j])
        vg = self.value(pg, self.D[g] - self.d[j] + self.d[i], self.size[g], self.R[g] - self.res[j] + self.res[i])
        return vf + vg - self.vals[f] - self.vals[g]

    def groups(self) -> list[list[str]]:
        out: dict[int, list[str]] = {}
        for i, g in enumerate(self.lab):
            out.setdefault(int(g), []).append(self.p.tasks[i])
        return list(out.values())


def _descend(st: _PartitionState, rng, clock: Clock) -> None:
    n, K = st.n, st.K
    improved = True
    while improved and not clock.over():
        improved = False
        for i in rng.permutation(n):
            best_d, best_g = 1e-12, None
            empty_done = False
            for g in range(K):
                if st.size[g] == 0:
                    if empty_done:
                        continue
                    empty_done = True
                d = st.move_delta(i, g)
                if d > best_d:
                    best_d, best_g = d, g
            if best_g is not None:
                st.move(i, best_g)
                improved = True
        if improved:
            continue
        for i in rng.permutation(n):
            for j in range(n):
                if st.lab[i] != st.lab[j] and st.swap_delta(i, j) > 1e-12:
                    f, g = st.lab[i], st.lab[j]
                    st.move(i, g)
                    st.move(j, f)
                    improved = True
            if clock.over():
                break


def _start_labels(st: _PartitionState, rng) -> np.ndarray:
    n = st.n
    k_lo = math.ceil(n / st.hi) if st.hi else 1
    k_hi = min(st.K, n // st.lo) if st.lo else st.K
    k = int(rng.integers(max(1, k_lo), max(k_lo, k_hi) + 1)) if k_hi >= k_lo else max(1, k_lo)
    k = min(k, st.K)
    perm = rng.permutation(n)
    labels = np.empty(n, dtype=int)
    labels[perm] = np.arange(n) % k
    return labels


def local_search(problem, time_limit: float | None = 5.0, seed: int = 0, start: np.ndarray | None = None,
                 patience: int = 25):
    """Iterated local search (moves and swaps, random restarts) for partition mode with derived values.
    Stops at the time limit or after ``patience`` restarts without improvement.
    Returns (groups, objective) for the best feasible grouping found, or None."""
    if problem.mode != "partition" or not problem.derived:
        raise SolverUnavailable("local search works on partition instances with derived values")
    clock = Clock(time_limit)
    rng = np.random.default_rng(seed)
    st = _PartitionState(problem)
    best_val, best_groups = -np.inf, None
    first = True
    stale = 0
    while (first or not clock.over()) and stale < patience:
        before = best_val
        labels = start if (first and start is not None) else _start_labels(st, rng)
        first = False
        st.setup(labels)
        _descend(st, rng, clock)
        # perturb and descend again a few times (iterated local search)
        for _ in range(5):
            val = st.total()
            if val > best_val:
                best_val, best_groups = val, st.groups()
            if clock.over():
                break
            saved = st.lab.copy()
            for i in rng.choice(st.n, size=max(2, st.n // 8), replace=False):
                st.move(i, int(rng.integers(0, st.K)))
            _descend(st, rng, clock)
            if st.total() < val:
                st.setup(saved)
        stale = 0 if best_val > before + 1e-12 else stale + 1
        if time_limit is None:
            break
    if best_groups is None or best_val <= -PENALTY / 2:
        return None
    return best_groups, best_val


def spectral_groups(problem, k: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering of the affinity graph (weights max(M + M^T, 0)) into k clusters."""
    n = problem.n
    sign = 1.0 if problem.maximize else -1.0
    M = sign * np.asarray(problem.onto, dtype=float)
    A = np.maximum(M + M.T, 0.0)
    np.fill_diagonal(A, 0.0)
    deg = A.sum(axis=1)
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    L = np.eye(n) - dinv[:, None] * A * dinv[None, :]
    _, vecs = np.linalg.eigh(L)
    X = vecs[:, :k]
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    X = X / np.where(norms > 0, norms, 1.0)
    rng = np.random.default_rng(seed)
    best_lab, best_inertia = None, np.inf
    for _ in range(8):  # k-means with restarts
        centers = X[rng.choice(n, size=k, replace=False)]
        for _ in range(100):
            dist = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
            lab = dist.argmin(axis=1)
            new = np.array([X[lab == g].mean(axis=0) if np.any(lab == g) else centers[g] for g in range(k)])
            if np.allclose(new, centers):
                break
            centers = new
        inertia = float(((X - centers[lab]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best_lab = inertia, lab
    return best_lab


# ---------------------------------------------------------------------- bounds
def partition_share_bound(problem) -> float:
    """Valid bound for derived partition values: each task's share is at most its best share in any group."""
    st = _PartitionState(problem)
    M = st.M
    n = st.n
    total = 0.0
    for i in range(n):
        pos = sorted((M[i][k] for k in range(n) if k != i and M[i][k] > 0), reverse=True)
        best = -np.inf
        for s in range(max(st.lo, 1), min(st.hi, n) + 1):
            top = sum(pos[: s - 1])
            rule = problem.rule
            if rule == "pairwise_mean_by_size":
                v = (top + (M[i][i] if st.include else 0.0)) / s
            elif st.include:
                v = (top + M[i][i]) / s
            elif s == 1:
                v = M[i][i] if rule == "hoa" else 0.0
            else:
                v = top / (s - 1)
            best = max(best, v)
        total += best
    sign = 1.0 if problem.maximize else -1.0
    return sign * total * problem.scale


def cover_lp_bound(problem, cands) -> float | None:
    import pyomo.environ as pyo

    from planner.grouping.milp import build_cover, run_highs_pyomo

    m = build_cover(problem, cands)
    if getattr(m, "_infeasible_reason", None):
        return None
    pyo.TransformationFactory("core.relax_integer_vars").apply_to(m)
    status, _has, bound, _ = run_highs_pyomo(m, Clock(30.0), {})
    return bound if status is SolveStatus.OPTIMAL else None


# ---------------------------------------------------------------------- backends
def solve_local(problem, time_limit: float | None, options: dict) -> SolveResult:
    limit = time_limit if time_limit is not None else float(options.get("heuristic_seconds", 5.0))
    seed = int(options.get("seed", 0))
    if problem.mode == "cover":
        return _cover_local(problem, limit, seed)
    if not problem.derived:
        return _explicit_partition_local(problem, limit, seed)
    found = local_search(problem, time_limit=limit, seed=seed, patience=int(options.get("patience", 25)))
    return _partition_result(problem, found, "local", "iterated local search (moves, swaps, restarts)", options)


def solve_spectral(problem, time_limit: float | None, options: dict) -> SolveResult:
    if problem.mode != "partition" or not problem.derived:
        raise SolverUnavailable("spectral clustering needs partition mode with an affinity matrix")
    st = _PartitionState(problem)
    best = None
    seed = int(options.get("seed", 0))
    k_hi = min(st.K, problem.n)
    for k in range(1, k_hi + 1):
        lab = spectral_groups(problem, k, seed) if k > 1 else np.zeros(problem.n, dtype=int)
        lab = np.unique(lab, return_inverse=True)[1]
        st.setup(lab)
        val = st.total()
        if best is None or val > best[1]:
            best = (st.groups(), val)
    polished = False
    if best is not None and best[1] <= -PENALTY / 2:
        # spectral clusters break a size or resource limit: repair them by local moves
        labels = np.empty(problem.n, dtype=int)
        for g, members in enumerate(best[0]):
            for t in members:
                labels[problem.index[t]] = g
        best = local_search(problem, time_limit=2.0, seed=seed, start=labels)
        polished = True
    note = "spectral clustering, best k" + (" (repaired by local search)" if polished else "")
    return _partition_result(problem, best, "spectral", note, options)


def _partition_result(problem, found, name: str, note: str, options: dict) -> SolveResult:
    bound = partition_share_bound(problem)
    if found is None:
        return SolveResult(SolveStatus.NO_SOLUTION, bound=None, solver=name, message=note + ": no feasible grouping found")
    cands = [problem.derived_candidate(g) for g in found[0]]
    return result_from_chosen(problem, cands, SolveStatus.FEASIBLE, bound, name, note + "; bound: best share per task")


LP_BOUND_CELLS = 20_000  # candidates x tasks up to which the local search's LP bound is cheap to build


def _cover_local(problem, limit: float, seed: int) -> SolveResult:
    """Swap local search over chosen candidates (add / drop / exchange), penalising uncovered tasks."""
    clock = Clock(limit)
    cands = problem.candidate_list()
    if not cands:
        return SolveResult(SolveStatus.INFEASIBLE, solver="local", message="no admissible candidate")
    n, m = problem.n, len(cands)
    sign = 1.0 if problem.maximize else -1.0
    V = np.full((m, n), -PENALTY)
    for c, cand in enumerate(cands):
        for t, v in zip(cand.members, cand.values):
            V[c, problem.index[t]] = sign * v
    R = np.array([[c.resource(r) for r, _ in problem.budgets] for c in cands]).reshape(m, -1)
    caps = np.array([cap for _, cap in problem.budgets])
    K = problem.max_groups if problem.max_groups is not None else m
    rng = np.random.default_rng(seed)

    def score(sel):
        if not sel:
            return -PENALTY * n
        used = R[sel].sum(axis=0)
        over = float(np.maximum(used - caps, 0).sum()) if len(caps) else 0.0
        return float(V[sel].max(axis=0).sum()) - PENALTY * over * 10

    best_sel, best_val = None, -np.inf
    while True:
        sel = [int(rng.integers(m))]
        val = score(sel)
        improved = True
        while improved and not clock.over():
            improved = False
            moves = []
            if len(sel) < K:
                moves += [sel + [c] for c in range(m) if c not in sel]
            if len(sel) > 1:
                moves += [[x for x in sel if x != o] for o in sel]
            for o in sel:
                rest = [x for x in sel if x != o]
                base = V[rest].max(axis=0) if rest else np.full(n, -PENALTY)
                gains = np.maximum(base[None, :], V).sum(axis=1)
                for c in np.argsort(-gains)[:20]:
                    if int(c) not in sel:
                        moves.append(rest + [int(c)])
            for cand_sel in moves:
                v = score(cand_sel)
                if v > val + 1e-12:
                    sel, val, improved = cand_sel, v, True
                    break
        if val > best_val:
            best_sel, best_val = sel, val
        if clock.over():
            break
    if best_sel is None or best_val <= -PENALTY / 2:
        return SolveResult(SolveStatus.NO_SOLUTION, solver="local", message="local search found no feasible cover")
    left = clock.left()
    if left is None or (left > 0 and m * n <= LP_BOUND_CELLS):
        bound, how = cover_lp_bound(problem, cands), "linear relaxation"
    else:  # building the LP of a large instance would overrun the time limit by seconds
        bound, how = sign * float(V.max(axis=0).sum()) * problem.scale, "best value per task"
    return result_from_chosen(problem, [cands[c] for c in best_sel], SolveStatus.FEASIBLE, bound, "local",
                              f"swap local search; bound: {how}")


def _explicit_partition_local(problem, limit: float, seed: int) -> SolveResult:
    """For explicit partition candidates the exact set-partitioning model is the right tool;
    the 'heuristic' here is HiGHS stopped at 1% gap."""
    from planner.grouping.milp import build_partition_columns, run_highs_pyomo

    cands = problem.candidate_list()
    m = build_partition_columns(problem, cands)
    if getattr(m, "_infeasible_reason", None):
        return SolveResult(SolveStatus.INFEASIBLE, solver="local", message=m._infeasible_reason)
    status, has, bound, msg = run_highs_pyomo(m, Clock(limit), {}, gap=0.01)
    if not has:
        return SolveResult(status if not status.has_solution else SolveStatus.NO_SOLUTION, solver="local", message=msg)
    chosen = [cands[c] for c in m.CANDS if m.y[c].value > 0.5]
    return result_from_chosen(problem, chosen, SolveStatus.FEASIBLE, bound, "local", "HiGHS at 1% gap; " + msg)
