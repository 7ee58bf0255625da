"""Exhaustive search for small grouping instances (the oracle the other backends are tested against).

Every solution of either mode is described by a set partition of the tasks into blocks, each
block with the candidate that serves it: in ``partition`` mode the candidate's members ARE the
block; in ``cover`` mode they contain it (the tasks a chosen group serves best form its block;
a chosen group that serves nobody can be dropped). The search enumerates every set partition
(the block holding the lowest remaining task first), every serving candidate per block, and keeps
per remaining task set only the Pareto-optimal (value, resources used, groups used) partial
solutions, which is exact: a dominated partial solution cannot complete to a better whole.
Cost about 3^n times the frontier size, so it refuses more than ``max_tasks`` tasks (default 10).
"""
from __future__ import annotations

from planner.grouping.common import Clock, mask_of, result_from_chosen
from planner.status import SolveResult, SolveStatus, SolverUnavailable

DEFAULT_MAX_TASKS = 10
DEFAULT_MAX_CANDIDATES = 70_000


class _Timeout(Exception):
    pass


def solve_brute(problem, time_limit: float | None, options: dict) -> SolveResult:
    max_tasks = int(options.get("max_tasks", DEFAULT_MAX_TASKS))
    if problem.n > max_tasks:
        raise SolverUnavailable(
            f"brute force enumerates set partitions and stops at {max_tasks} tasks; this instance has {problem.n} "
            "(use highs or cpsat, or options max_tasks)"
        )
    clock = Clock(time_limit)
    cands = problem.candidate_list(limit=int(options.get("max_candidates", DEFAULT_MAX_CANDIDATES)))
    sign = 1.0 if problem.maximize else -1.0
    res_names = [r for r, _ in problem.budgets]
    caps = [m for _, m in problem.budgets]
    kmax = problem.max_groups if problem.max_groups is not None else problem.n
    nres = len(res_names)

    # options[C] = Pareto list of (signed value, resources tuple, candidate) for block mask C.
    opts: dict[int, list] = {}
    for c in cands:
        cm = mask_of(problem, c.members)
        rvec = tuple(c.resource(r) for r in res_names)
        if any(rv > cap * (1 + 1e-9) + 1e-12 for rv, cap in zip(rvec, caps)):
            continue
        if problem.mode == "partition":
            opts.setdefault(cm, []).append((sign * c.total, rvec, c))
            continue
        vals = {problem.index[t]: sign * v for t, v in zip(c.members, c.values)}
        sub = cm
        while sub:  # every non-empty subset of the members
            v = 0.0
            bits = sub
            while bits:
                low = bits & -bits
                v += vals[low.bit_length() - 1]
                bits ^= low
            opts.setdefault(sub, []).append((v, rvec, c))
            sub = (sub - 1) & cm
        if clock.over():
            return SolveResult(SolveStatus.NO_SOLUTION, message="time limit reached while listing blocks")
    for key, lst in opts.items():
        opts[key] = _pareto([(v, r, 0, [c]) for v, r, c in lst], nres)

    full = (1 << problem.n) - 1
    memo: dict[int, list] = {0: [(0.0, (0.0,) * nres, 0, [])]}
    counter = [0]

    def frontier(S: int) -> list:
        if S in memo:
            return memo[S]
        counter[0] += 1
        if counter[0] % 256 == 0 and clock.over():
            raise _Timeout
        low = S & -S
        rest_bits = S ^ low
        out = []
        sub = rest_bits
        while True:
            block = sub | low
            if block in opts:
                tail = frontier(S ^ block)
                for v1, r1, _k, c1 in opts[block]:
                    for v2, r2, k2, c2 in tail:
                        k = k2 + 1
                        if k > kmax:
                            continue
                        r = tuple(a + b for a, b in zip(r1, r2))
                        if any(rv > cap * (1 + 1e-9) + 1e-12 for rv, cap in zip(r, caps)):
                            continue
                        out.append((v1 + v2, r, k, c1 + c2))
            if sub == 0:
                break
            sub = (sub - 1) & rest_bits
        memo[S] = _pareto(out, nres)
        return memo[S]

    try:
        best = frontier(full)
    except _Timeout:
        return SolveResult(SolveStatus.NO_SOLUTION, message="time limit reached before the enumeration finished")
    except RecursionError:  # pragma: no cover - n is capped well below the recursion limit
        raise SolverUnavailable("brute force: instance too large")
    if not best:
        return SolveResult(SolveStatus.INFEASIBLE, message="no set of candidate groups meets the constraints")
    v, _r, _k, chosen = max(best, key=lambda e: (e[0], -e[2]))
    return result_from_chosen(problem, chosen, SolveStatus.OPTIMAL, sign * v * problem.scale, "brute",
                              message=f"exhaustive: {len(memo)} task subsets")


def _pareto(entries: list, nres: int) -> list:
    """Keep entries not dominated in (value higher, resources lower, groups fewer)."""
    if not entries:
        return []
    entries.sort(key=lambda e: (-e[0], e[2], e[1]))
    if nres == 0:
        kept, best_k = [], None
        for e in entries:  # best value first: keep one per improvement in group count
            if best_k is None or e[2] < best_k:
                kept.append(e)
                best_k = e[2]
        return kept
    kept = []
    for e in entries:
        dominated = False
        for f in kept:
            if f[2] <= e[2] and all(a <= b + 1e-12 for a, b in zip(f[1], e[1])):
                dominated = True
                break
        if not dominated:
            kept.append(e)
    return kept
