"""Column generation for large derived partitions (docs/formulations.md, "Grouping").

For partition mode with a derived group value on more tasks than subset tables allow
(``CG_MAX_TASKS`` in :mod:`planner.grouping.highs`), the value of a group of size s is

    value(G) = a_s * sum_{i < k in G} W[i][k] + b_s * sum_{i in G} d_i      (W = M + M^T, d = diag M)

(signed for min problems). The set-partitioning master over groups is solved by column generation.
Pricing (reduced cost rc(G) = value(G) - sum_{i in G} pi_i - mu) is done by greedy growth + swap
descent, then swap descent from random groups, and when those find nothing, exactly by the
branch-and-bound of :mod:`planner.grouping.pricing` (``options["pricing"] = "mip"``: one
Boolean quadratic program over all sizes in HiGHS, :class:`_ScaledPricing`). Every exact pass gives
per-size upper bounds on the reduced cost, hence the Lagrangian bound of :func:`lagrangian_bound`
(valid for any duals, also when the pass was stopped); when the pass proves no improving column
exists, it is the LP bound of the full master. The integer master over the generated columns and the
local-search grouping give the incumbent. When a gap to the converged LP remains, reduced-cost
enumeration (every group with rc > incumbent - z_LP - K eps, listed by the same tree) and the integer
master over those groups prove the optimum.
"""
from __future__ import annotations

import math

import numpy as np

from planner import interrupt
from planner.grouping.common import Clock, PartitionMaster, new_highs, result_from_chosen
from planner.grouping.pricing import price_exact
from planner.status import SolveResult, SolveStatus, SolverUnavailable

EPS = 1e-7  # a column improves the master when its reduced cost exceeds this
OPT_REL_TOL = 1e-6  # relative gap reported as optimal (see solve_partition_colgen)
SMALL = 3  # sizes up to this are priced by enumeration


class _Values:
    """Signed group values of a derived partition instance, by size: a_s, b_s and the admissible sizes."""

    def __init__(self, problem):
        n = self.n = problem.n
        sign = 1.0 if problem.maximize else -1.0
        M = sign * np.asarray(problem.onto, dtype=float)
        self.W = M + M.T
        np.fill_diagonal(self.W, 0.0)
        self.d = np.diag(M).copy()
        include = problem.diagonal == "include"
        rule = problem.rule
        lo = max(problem.size_min, 1)
        if rule == "tag" and not include:
            lo = max(lo, 2)
        hi = n if problem.size_max is None else min(n, problem.size_max)
        self.a = np.zeros(n + 1)
        self.b = np.zeros(n + 1)
        for s in range(1, n + 1):
            if rule == "pairwise_mean_by_size":
                self.a[s] = 1.0 / s
                self.b[s] = 1.0 / s if include else 0.0
            elif include:
                self.a[s] = self.b[s] = 1.0 / s
            elif s == 1:
                self.a[s], self.b[s] = 0.0, (1.0 if rule == "hoa" else 0.0)
            else:
                self.a[s], self.b[s] = 1.0 / (s - 1), 0.0
        self.sizes = list(range(lo, hi + 1))
        names = [r for r, _ in problem.per_group_budgets]
        self.res = np.array([[dict(problem.task_resources[i]).get(r, 0.0) for r in names] for i in range(n)]).reshape(n, len(names))
        self.caps = np.array([cap * (1 + 1e-9) + 1e-12 for _, cap in problem.per_group_budgets])

    def value(self, x: np.ndarray) -> float:
        """Signed value of the group with indicator (or index) vector x."""
        idx = np.flatnonzero(x) if x.dtype == bool else x
        s = len(idx)
        if s == 0:
            return 0.0
        sub = self.W[np.ix_(idx, idx)]
        return float(self.a[s] * sub.sum() / 2.0 + self.b[s] * self.d[idx].sum())

    def fits(self, idx) -> bool:
        if not len(self.caps):
            return True
        return bool(np.all(self.res[idx].sum(axis=0) <= self.caps))


def _mask(idx) -> int:
    m = 0
    for i in idx:
        m |= 1 << int(i)
    return m


def _members(mask: int, n: int) -> np.ndarray:
    return np.array([i for i in range(n) if mask >> i & 1], dtype=int)


# ---------------------------------------------------------------------- heuristic pricing
def price_heuristic(V: _Values, pi: np.ndarray, mu: float, limit: int, rng) -> list[tuple[float, int]]:
    """Greedy growth from every task (then 1-swap descent on the best groups per size).

    Returns up to ``limit`` distinct (reduced cost, mask) with reduced cost > EPS, best first."""
    n, W, d = V.n, V.W, V.d
    sizes = set(V.sizes)
    smax = max(V.sizes)
    found: dict[int, float] = {}
    best_per_size: dict[int, tuple[float, np.ndarray]] = {}
    has_res = len(V.caps) > 0
    for seed in range(n):
        x = np.zeros(n, dtype=bool)
        x[seed] = True
        A = W[:, seed].copy()  # A[k] = sum_{j in G} W[k, j]
        P, D, Pi, s = 0.0, d[seed], pi[seed], 1
        R = V.res[seed].copy() if has_res else None
        if has_res and np.any(R > V.caps):
            continue
        while True:
            if s in sizes:
                rc = V.a[s] * P + V.b[s] * D - Pi - mu
                cur = best_per_size.get(s)
                if cur is None or rc > cur[0] + 1e-12:
                    best_per_size[s] = (rc, x.copy())
                if rc > EPS:
                    found.setdefault(_mask(np.flatnonzero(x)), rc)
            if s >= smax:
                break
            s1 = s + 1
            gain = V.a[s1] * (P + A) + V.b[s1] * (D + d) - (Pi + pi)
            gain[x] = -np.inf
            if has_res:
                over = np.any(R[None, :] + V.res > V.caps[None, :], axis=1)
                gain[over] = -np.inf
            k = int(np.argmax(gain))
            if not math.isfinite(gain[k]):
                break
            x[k] = True
            P += A[k]
            D += d[k]
            Pi += pi[k]
            A += W[:, k]
            s = s1
            if has_res:
                R += V.res[k]
    # 1-swap descent from the best group of each size
    for s, (rc0, x0) in best_per_size.items():
        if s == n:
            continue
        x = _swap_descent(V, pi, s, x0.copy())
        idx = np.flatnonzero(x)
        rc = V.value(idx) - pi[idx].sum() - mu
        if rc > EPS:
            found.setdefault(_mask(idx), rc)
    out = sorted(((rc, m) for m, rc in found.items()), reverse=True)
    return out[:limit]


def _swap_descent(V: _Values, pi: np.ndarray, s: int, x: np.ndarray) -> np.ndarray:
    """Best-improvement 1-swap descent of the group ``x`` (bool, size s) on its reduced cost, within
    the per-group budgets; ``x`` is changed in place and returned."""
    n, W = V.n, V.W
    has_res = len(V.caps) > 0
    own = V.b[s] * V.d - pi  # linear part per task
    for _ in range(4 * n):
        inn, out = np.flatnonzero(x), np.flatnonzero(~x)
        A = W[:, inn].sum(axis=1)
        # swapping i (in) for k (out): delta P = A[k] - A[i] - W[i, k]
        delta = V.a[s] * (A[out][None, :] - A[inn][:, None] - W[np.ix_(inn, out)]) + own[out][None, :] - own[inn][:, None]
        if has_res:
            R = V.res[inn].sum(axis=0)
            newR = R[None, None, :] - V.res[inn][:, None, :] + V.res[out][None, :, :]
            delta[np.any(newR > V.caps, axis=2)] = -np.inf
        j = int(np.argmax(delta))
        i, k = divmod(j, len(out))
        if delta[i, k] <= 1e-12:
            break
        x[inn[i]] = False
        x[out[k]] = True
    return x


def price_swaps(V: _Values, pi: np.ndarray, mu: float, limit: int, rng, starts: int = 3) -> list[tuple[float, int]]:
    """1-swap descent from ``starts`` random groups of every admissible size (seeded ``rng``), for when
    greedy growth finds nothing. Returns up to ``limit`` distinct improving (rc, mask), best first."""
    n = V.n
    found: dict[int, float] = {}
    has_res = len(V.caps) > 0
    for s in V.sizes:
        if s >= n:
            continue
        for _ in range(starts):
            x = np.zeros(n, dtype=bool)
            x[rng.choice(n, s, replace=False)] = True
            if has_res and not V.fits(np.flatnonzero(x)):
                continue
            x = _swap_descent(V, pi, s, x)
            idx = np.flatnonzero(x)
            rc = V.value(idx) - pi[idx].sum() - mu
            if rc > EPS:
                found.setdefault(_mask(idx), rc)
    return sorted(((rc, m) for m, rc in found.items()), reverse=True)[:limit]


def lagrangian_bound(pi: np.ndarray, mu: float, ub: dict, n: int, K: int) -> float:
    """Lagrangian bound from per-size upper bounds ``ub[s]`` on the best reduced cost of a group of size
    s: every partition into at most K groups has value sum_a pi_a + sum_G (v_G - pi(G)), and
    v_G - pi(G) <= ub[|G|] + mu, with the group sizes summing to n. The best such size multiset is a small
    knapsack (at most K parts); where none exists, the plain ``sum pi + K max(0, max ub + mu)``."""
    plain = float(pi.sum()) + K * max(0.0, max(ub.values()) + mu)
    g = {s: u + mu for s, u in ub.items() if math.isfinite(u + mu) or u + mu > 0}
    if any(math.isinf(v) and v > 0 for v in g.values()):
        return plain
    NEG = -math.inf
    best = [NEG] * (n + 1)  # best[t]: largest sum over at most m groups of total size t
    best[0] = 0.0
    for _ in range(K):
        nxt = best[:]
        for t in range(n + 1):
            if best[t] == NEG:
                continue
            for s, v in g.items():
                if t + s <= n and best[t] + v > nxt[t + s]:
                    nxt[t + s] = best[t] + v
        best = nxt
    if best[n] == NEG:
        return plain
    return min(plain, float(pi.sum()) + best[n])


# ---------------------------------------------------------------------- master
# ---------------------------------------------------------------------- driver
def solve_partition_colgen(problem, clock: Clock, options: dict) -> SolveResult:
    """Column generation with heuristic-then-exact (MIP) pricing; the integer master over the columns."""
    from planner.grouping.heuristic import local_search, partition_share_bound

    n = problem.n
    sign = 1.0 if problem.maximize else -1.0
    V = _Values(problem)
    if not V.sizes:
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs", message="no admissible group size")
    if len(V.caps) and any(not V.fits([i]) for i in range(n)):
        i = next(i for i in range(n) if not V.fits([i]))
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs",
                           message=f"task {problem.tasks[i]!r} alone breaks a per-group budget")
    threads = int(options.get("threads", 1))
    K = problem.max_groups
    Kb = min(K, n) if K is not None else n  # groups in any partition: at most n
    if K is not None and len(V.caps) and np.all(V.res >= 0):
        # the groups of a partition share out all the tasks: K groups hold at most K budgets' worth
        need = V.res.sum(axis=0)
        for r, (name, cap) in enumerate(problem.per_group_budgets):
            if need[r] > Kb * V.caps[r]:
                return SolveResult(SolveStatus.INFEASIBLE, solver="highs",
                                   message=f"the tasks need {need[r]:g} of {name!r} in all, more than "
                                           f"max_groups x the per-group budget ({Kb} x {cap:g})")
    rng = np.random.default_rng(int(options.get("seed", 0)))
    # incumbent: local search
    heur = None
    budget = clock.left()
    try:
        heur = local_search(problem, time_limit=min(float(options.get("heuristic_seconds", 3.0)),
                                                    0.1 * budget if budget is not None else 3.0), seed=0)
    except SolverUnavailable:  # pragma: no cover - derived partition instances only
        heur = None
    scale_w = 0.5 * float(np.abs(V.W).sum()) + float(np.abs(V.d).sum()) + 1.0
    rmp = PartitionMaster(n, K, big=2.0 * n * scale_w, threads=threads)
    heur_masks: list[int] = []
    if heur is not None:
        for g in heur[0]:
            idx = np.array([problem.index[t] for t in g])
            m = _mask(idx)
            heur_masks.append(m)
            rmp.add(m, V.value(idx))
    for s_ in V.sizes[:1]:
        if s_ == 1:
            for i in range(n):
                rmp.add(1 << i, V.value(np.array([i])))
    per_round = int(options.get("columns_per_round", 40))
    per_call = float(options.get("pricing_mip_seconds", 30.0))
    method = options.get("pricing", "bb")
    pricer = _ScaledPricing(V, problem) if method == "mip" else None
    rounds = exact_passes = 0
    best_bound = math.inf  # internal (signed, unscaled) Lagrangian bound
    converged = False
    ip_reserve = float(options.get("ip_seconds_fraction", 0.15))
    total = clock.limit
    stop_at = None if total is None else total * (1 - ip_reserve)
    while True:
        rounds += 1
        z_lp, pi, mu, art_cols = rmp.solve_lp()
        art = float(np.max(art_cols)) if n else 0.0
        if (stop_at is not None and clock.elapsed() >= stop_at) or interrupt.requested():
            break
        cols = price_heuristic(V, pi, mu, per_round, rng)
        if not cols:
            cols = price_swaps(V, pi, mu, per_round, rng)
        if not cols:
            exact_passes += 1
            cap = per_call if stop_at is None else min(per_call, stop_at - clock.elapsed())
            if pricer is not None:
                cols, ub = pricer.solve(pi, mu, max(cap, 0.01), threads=threads)
                if math.isfinite(ub):  # Lagrangian bound, valid for any duals pi
                    best_bound = min(best_bound, float(pi.sum()) + Kb * max(0.0, ub + mu))
                done = math.isfinite(ub)
            else:
                cap = None if stop_at is None else max(stop_at - clock.elapsed(), 0.01)
                res = price_exact(V, pi, mu, time_limit=cap, keep=per_round, threads=threads)
                cols, ub, done = res.columns, res.max_ub, res.done
                best_bound = min(best_bound, lagrangian_bound(pi, mu, res.ub, n, Kb))
            if not cols and ub <= EPS and done:
                converged = True
                break
            if not cols:  # time ran out inside exact pricing, or a stop was requested
                break
        for rc, m in cols:
            rmp.add(m, V.value(_members(m, n)))
    message = f"column generation ({'MIP' if method == 'mip' else 'branch-and-bound'} pricing): {rounds} rounds, {exact_passes} exact pricing passes, {len(rmp.masks)} columns"
    if converged and art > 1e-7:
        return SolveResult(SolveStatus.INFEASIBLE, solver="highs",
                           message=message + "; the linear relaxation has no partition meeting max_groups")
    stopped = interrupt.requested()
    if stopped:
        message += "; stopped on request (Ctrl-C)"
    # after a stop request: a last short integer master over the columns found (a second Ctrl-C ends it)
    left = interrupt.shortened(clock.left(), grace=2.0)
    ip_status, chosen, _ = rmp.solve_ip(left, start=heur_masks or None, abs_gap=1e-9)
    ip_opt = ip_status == rmp.hs.HighsModelStatus.kOptimal
    z_ip = float(sum(rmp.values[rmp.index[m]] for m in chosen)) if chosen else -math.inf
    message += f"; integer master {'optimal over the columns' if ip_opt else 'stopped'}"
    inc_masks, inc_val = chosen, z_ip
    if heur is not None:
        hv = sum(V.value(_members(m, n)) for m in heur_masks)
        if hv > inc_val + 1e-12:
            inc_masks, inc_val = heur_masks, hv
    # reduced-cost enumeration: with the converged (optimal) duals, a grouping better than the incumbent
    # has value sum rc + z_LP - (K - m) mu <= sum rc + z_LP, so each of its groups has
    # rc > inc - z_LP - K * EPS; listing every such group and solving the integer master over them
    # settles the gap (docs/formulations.md)
    proven = False
    gap = z_lp - inc_val if inc_masks else math.inf
    left = clock.left()
    if (converged and not stopped and method != "mip" and inc_masks and math.isfinite(gap)
            and inc_val < best_bound - OPT_REL_TOL * max(1.0, abs(best_bound))
            and (left is None or left > 1.0)):
        thr = -(max(gap, 0.0) + Kb * (EPS + max(0.0, -mu))) - 1e-9  # (m - K) mu <= K max(0, -mu)
        cap_cols = int(options.get("enumeration_columns", 200_000))
        res = price_exact(V, pi, mu, threshold=thr, keep=cap_cols, enumerate_all=True,
                          time_limit=None if left is None else 0.5 * left, threads=threads)
        if res.done:
            for _rc, m in res.columns:
                rmp.add(m, V.value(_members(m, n)))
            st2, chosen2, _ = rmp.solve_ip(clock.left(), start=inc_masks, abs_gap=1e-9)
            if st2 == rmp.hs.HighsModelStatus.kOptimal and chosen2:
                z2 = float(sum(rmp.values[rmp.index[m]] for m in chosen2))
                if z2 > inc_val + 1e-12:
                    inc_masks, inc_val = chosen2, z2
                proven = True
                message += (f"; reduced-cost enumeration: {len(res.columns)} groups with rc > {thr:.4g}, "
                            "integer master optimal over them")
            else:
                message += f"; reduced-cost enumeration: {len(res.columns)} groups, integer master stopped"
        else:
            message += "; reduced-cost enumeration did not finish"
    bound = None
    if math.isfinite(best_bound):
        bound = sign * best_bound * problem.scale
        if proven:
            message += "; bound: the optimum (the enumeration closed the gap to the full master's LP)"
        else:
            message += "; bound: LP of the full master" if converged else "; bound: Lagrangian (z_RMP + K max rc)"
    else:
        bound = partition_share_bound(problem)
        message += "; bound: best share per task (column generation did not finish a pricing pass)"
    if not inc_masks:
        return SolveResult(SolveStatus.NO_SOLUTION, bound=bound, solver="highs", message=message)
    status = SolveStatus.FEASIBLE
    # optimal within OPT_REL_TOL of the bound: the pricing proves reduced costs <= EPS (1e-7), so a
    # converged bound can sit up to about K * EPS above a truly optimal grouping
    if converged and inc_val >= best_bound - OPT_REL_TOL * max(1.0, abs(best_bound)):
        status = SolveStatus.OPTIMAL
        bound = sign * inc_val * problem.scale if inc_val > best_bound else bound
    elif proven:
        status = SolveStatus.OPTIMAL
        bound = sign * inc_val * problem.scale
    cands = [problem.derived_candidate([problem.tasks[i] for i in _members(m, n)]) for m in inc_masks]
    return result_from_chosen(problem, cands, status, bound, "highs", message,
                              extra={"columns": len(rmp.masks), "rounds": rounds})


# ---------------------------------------------------------------------- exact pricing, one BQP over all sizes
def _enumerate_size(V: _Values, s: int, pi: np.ndarray, mu: float, keep: int = 20):
    """Every group of size s (s <= SMALL): (best rc or -inf, up to ``keep`` improving columns)."""
    import itertools

    n = V.n
    combos = np.array(list(itertools.combinations(range(n), s)), dtype=int).reshape(-1, s)
    if len(combos) == 0:
        return -math.inf, []
    P = np.zeros(len(combos))
    for a_ in range(s):
        for b_ in range(a_ + 1, s):
            P += V.W[combos[:, a_], combos[:, b_]]
    rc = V.a[s] * P + (V.b[s] * V.d - pi)[combos].sum(axis=1) - mu
    if len(V.caps):
        ok = np.all(V.res[combos].sum(axis=1) <= V.caps[None, :], axis=1)
        rc = np.where(ok, rc, -np.inf)
    best = float(rc.max())
    top = np.argsort(-rc)[:keep]
    return best, [(float(rc[j]), _mask(combos[j])) for j in top if rc[j] > EPS]


class _ScaledPricing:
    """Exact pricing without fixing the size: with m(s) = 1/a_s = s - beta (beta = 0 for 1/s values,
    1 for 1/(s-1)), m(s) * rc(G) = sum_{i<k in G} Q_ik + sum_{i in G} q_i + beta mu, with
    Q_ik = W_ik - pi_i - pi_k and q_i = e_i - (1 - beta) pi_i - mu (e_i = d_i where the diagonal counts).
    Since m(s) > 0, a group improves the master exactly when this quadratic is positive: one Boolean
    quadratic program (McCormick rows, size and budget rows) instead of one MIP per size."""

    def __init__(self, V: "_Values", problem):
        self.V = V
        n = V.n
        include = problem.diagonal == "include"
        rule = problem.rule
        self.beta = 0 if (rule == "pairwise_mean_by_size" or include) else 1
        self.e = V.d.copy() if (include or False) else np.zeros(n)
        # sizes handled by the quadratic: those with a_s > 0 (hoa singletons are priced by enumeration)
        self.sizes = [s for s in V.sizes if V.a[s] > 0]
        self.singles = [s for s in V.sizes if V.a[s] == 0]
        self.iu = np.triu_indices(n, 1)
        self.triangles = True

    def solve(self, pi, mu, time_limit: float, threads: int = 1, cut: float = 1e-7, max_sols: int = 10):
        """(columns [(rc, mask)], upper bound on max rc over every group or +inf when not proven)."""
        import highspy

        V, n = self.V, self.V.n
        cols: list[tuple[float, int]] = []
        ub = -math.inf
        if self.singles:  # hoa singletons: value d_i
            rc1 = V.d - pi - mu
            ub = float(rc1.max())
            for i in np.flatnonzero(rc1 > EPS):
                cols.append((float(rc1[i]), 1 << int(i)))
        small = [s for s in self.sizes if s <= SMALL]
        for s in small:
            rc_s, best = _enumerate_size(V, s, pi, mu)
            ub = max(ub, rc_s)
            for rc, m in best:
                cols.append((rc, m))
        big_sizes = [s for s in self.sizes if s > SMALL]
        if not big_sizes:
            return sorted(cols, reverse=True), ub
        lo, hi = min(big_sizes), max(big_sizes)
        Q = V.W - pi[:, None] - pi[None, :]
        q = self.e - (1 - self.beta) * pi - mu
        const = self.beta * mu
        I, Kk = self.iu
        Qp = Q[I, Kk]
        keep = np.flatnonzero(Qp != 0.0)
        P = len(keep)
        inf = highspy.kHighsInf
        ncol = n + P
        # rows: size, then one or two McCormick rows per kept pair, then budgets
        starts, idx, val, rlo, rhi = [0], [], [], [], []

        def row(cols_, coefs, lb, ub_):
            idx.extend(cols_)
            val.extend(coefs)
            starts.append(len(idx))
            rlo.append(lb)
            rhi.append(ub_)

        row(list(range(n)), [1.0] * n, float(lo), float(hi))
        for j, p in enumerate(keep):
            i, k, c = int(I[p]), int(Kk[p]), n + j
            if Qp[p] > 0:  # y <= x_i, y <= x_k
                row([c, i], [1.0, -1.0], -inf, 0.0)
                row([c, k], [1.0, -1.0], -inf, 0.0)
            else:  # y >= x_i + x_k - 1
                row([i, k, c], [1.0, 1.0, -1.0], -inf, 1.0)
        for r in range(len(V.caps)):
            cs = [i for i in range(n) if V.res[i, r] != 0.0]
            row(cs, [float(V.res[i, r]) for i in cs], -inf, float(V.caps[r]))
        if self.triangles:
            # y_ij + y_ik - y_jk <= x_i where the LP would take the positive pairs ij, ik without jk
            col_of = {int(p): n + j for j, p in enumerate(keep)}
            pid = -np.ones((n, n), dtype=int)
            pid[I, Kk] = np.arange(len(I))
            pid[Kk, I] = np.arange(len(I))
            pos = Q > 0
            for i in range(n):
                js = np.flatnonzero(pos[i])
                for a_ in range(len(js)):
                    for b_ in range(a_ + 1, len(js)):
                        j, k = int(js[a_]), int(js[b_])
                        if Q[j, k] < 0:
                            row([col_of[int(pid[i, j])], col_of[int(pid[i, k])], col_of[int(pid[j, k])], i],
                                [1.0, 1.0, -1.0, -1.0], -inf, 0.0)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = ncol, len(rlo)
        # minimise -(m(s) rc) with the cutoff -cut: nodes that cannot reach m(s) rc > cut are pruned,
        # so "infeasible" proves that no group has m(s) rc > cut
        lp.col_cost_ = -np.concatenate([q, Qp[keep]])
        lp.col_lower_ = np.zeros(ncol)
        lp.col_upper_ = np.ones(ncol)
        lp.row_lower_, lp.row_upper_ = np.array(rlo), np.array(rhi)
        lp.offset_ = -float(const)
        lp.sense_ = highspy.ObjSense.kMinimize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(idx, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(val, dtype=float)
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n + [highspy.HighsVarType.kContinuous] * P
        h = new_highs()
        h.setOptionValue("threads", threads)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 1e-9)
        h.setOptionValue("objective_bound", -float(cut))
        h.setOptionValue("mip_max_improving_sols", int(max_sols))
        h.setOptionValue("mip_improving_solution_save", True)
        h.setOptionValue("time_limit", max(float(time_limit), 0.01))
        h.passModel(lp)
        with interrupt.highs_interruptible(h):
            h.run()
        ms = h.getModelStatus()
        info = h.getInfo()
        S = highspy.HighsModelStatus
        m_min = float(lo - self.beta)  # smallest m(s) over the quadratic's sizes (>= 1)
        sols = []
        if info.primal_solution_status == 2:
            sols.append(np.array(h.getSolution().col_value[:n]))
        try:
            sols += [np.array(s_.col_value[:n]) for s_ in h.getSavedMipSolutions()]
        except Exception:  # pragma: no cover - older highspy
            pass
        seen = set()
        for xs in sols:
            mem = np.flatnonzero(xs > 0.5)
            m = _mask(mem)
            if m in seen or not (lo <= len(mem) <= hi) or not V.fits(mem):
                continue
            seen.add(m)
            rc = V.value(mem) - pi[mem].sum() - mu
            if rc > EPS:
                cols.append((rc, m))
        if ms == S.kInfeasible or (ms == S.kOptimal and not sols):
            ub_q = float(cut) / m_min  # nothing above the cutoff
        elif ms == S.kOptimal:
            ub_q = -float(info.objective_function_value)
            ub_q = ub_q / m_min if ub_q > 0 else ub_q / float(n - self.beta)
        else:  # stopped: the dual bound still bounds every group (found columns or not)
            db = info.mip_dual_bound
            if db is None or not math.isfinite(db):
                return sorted(cols, reverse=True), math.inf
            ub_q = max(-float(db), float(cut)) / m_min
        return sorted(cols, reverse=True), max(ub, ub_q)
