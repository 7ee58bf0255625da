"""Label budgets as a mixed-integer program, Pyomo + HiGHS (solver ``highs``); coupled or separable.

    max  sum_i t_i                                        (t_i stands for phi_i(e_i) = w_i I_i(e_i) / S)
    s.t. sum_i k_i n_i <= C                               m.budget_limit (integer cost units, as in dp)
         e_i = n_i + sum_{j != i} r[i][j] n_j              m.e (an expression)
         n_i integer in [0, K_i]                          m.n
         t_i <= phi_i(p) + phi_i'(p) (e_i - p)            m.cuts (geometric / power: tangents, or secants
                                                          through integer points when e_i is integral)
         t_i <= a_s + b_s e_i                             m.table_cuts (concave table: every segment)
         (e_i, t_i) on the table's polyline                m.table_pw (non-concave table: incremental
                                                          formulation, one binary per breakpoint)

S scales the objective to about 1 so HiGHS's absolute tolerances are relative ones.

Tables are piecewise linear by definition, so their constraints are exact for any real e_i. The
closed forms are strictly concave: tangent cuts (and, when e_i can only be an integer, the secants
through neighbouring integer points) lie on or above phi_i, so the MILP's optimum is an upper bound
on the true one. The cuts are refined by outer approximation: after each solve, where t_i exceeds
phi_i(e_i) at the solution a cut through that e_i is added and the MILP solved again. There are
finitely many allocations, so this stops with the exact optimum of the contract's objective (within
HiGHS's tolerances, about 1e-7 relative; mip_rel_gap = 0). Every round's MILP bound is a valid upper
bound, and the objective reported is recomputed from the allocation with the closed forms.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from planner import interrupt
from planner.pyomo_highs import solve_quietly
from planner.status import SolveResult, SolveStatus, SolverUnavailable

if TYPE_CHECKING:
    from planner.budget.problem import BudgetProblem

ALL_SECANTS = 64
"""Separable tasks with at most this many labels get every integer secant at once (exact in one solve)."""
GRID = 24
GAP_TOL = 1e-7
MAX_ROUNDS = 200


def _integral_row(problem: "BudgetProblem", i: int) -> bool:
    """e_i takes integer values only: every coupling coefficient of row i is a whole number."""
    a = problem.coupling[i]
    return all(float(v).is_integer() for j, v in enumerate(a) if j != i)


def _effective_caps(problem: "BudgetProblem") -> np.ndarray:
    return problem.coupling @ problem.caps.astype(float)


class _Model:
    """The Pyomo model plus what the outer-approximation loop needs to add cuts."""

    def __init__(self, problem: "BudgetProblem"):
        import pyomo.environ as pyo

        from planner.budget.dp import cost_units
        from planner.budget.problem import Table

        self.problem = problem
        self.pyo = pyo
        tasks = problem.tasks
        caps = problem.caps
        emax = _effective_caps(problem)
        self.emax = emax
        # Scale S: the largest possible term, so the objective is about 1.
        top = 0.0
        for i, t in enumerate(tasks):
            if isinstance(t.info, Table):
                xs = np.asarray([p[0] for p in t.info.points] + [emax[i]])
                top = max(top, float(np.max(np.abs(t.value(xs)))))
            else:
                top = max(top, abs(float(t.value(emax[i]))))
        self.scale = top if top > 0 else 1.0

        m = pyo.ConcreteModel(name=problem.name)
        ids = list(problem.task_ids)
        self.ids = ids
        m.TASKS = pyo.Set(initialize=ids, ordered=True)
        m.n = pyo.Var(m.TASKS, domain=pyo.Integers, bounds=lambda _, tid: (0, int(caps[ids.index(tid)])))
        a = problem.coupling

        def e_rule(_, tid):
            i = ids.index(tid)
            return sum(float(a[i, j]) * m.n[ids[j]] for j in range(len(ids)) if a[i, j] != 0)

        m.e = pyo.Expression(m.TASKS, rule=e_rule)
        self.active = [i for i, t in enumerate(tasks) if t.weight != 0 and emax[i] > 0]
        m.ACTIVE = pyo.Set(initialize=[ids[i] for i in self.active], ordered=True)
        m.t = pyo.Var(m.ACTIVE, bounds=lambda _, tid: self._t_bounds(ids.index(tid)))
        m.objective = pyo.Objective(expr=sum(m.t[tid] for tid in m.ACTIVE), sense=pyo.maximize)

        units = cost_units(problem)
        if max(units.costs + [units.capacity]) <= 10**12:
            self.exact_budget = True
            m.budget_limit = pyo.Constraint(
                expr=sum(k * m.n[tid] for k, tid in zip(units.costs, ids)) <= units.capacity
            )
        else:  # a tiny common unit: the money in floats (the allocation is checked exactly afterwards)
            self.exact_budget = False
            m.budget_limit = pyo.Constraint(
                expr=sum(t.cost * m.n[tid] for t, tid in zip(tasks, ids)) <= problem.budget
            )
        m.cuts = pyo.ConstraintList()
        m.table_cuts = pyo.ConstraintList()
        m.table_pw = pyo.Block(m.ACTIVE)
        self.m = m
        self.closed = []  # tasks whose curve is approximated by cuts
        for i in self.active:
            t = tasks[i]
            if isinstance(t.info, Table):
                self._add_table(i)
            else:
                self.closed.append(i)
                self._initial_cuts(i)

    # -- pieces ------------------------------------------------------------
    def phi(self, i: int, x) -> np.ndarray:
        return self.problem.tasks[i].value(x) / self.scale

    def _t_bounds(self, i: int) -> tuple[float, float]:
        from planner.budget.problem import Table

        t = self.problem.tasks[i]
        if isinstance(t.info, Table):
            xs = [p[0] for p in t.info.points if p[0] < self.emax[i]] + [self.emax[i]]
            vals = self.phi(i, np.asarray(xs))
            return float(np.min(vals)), float(np.max(vals))
        return 0.0, float(self.phi(i, self.emax[i]))

    def _add_table(self, i: int) -> None:
        pyo, m, tid = self.pyo, self.m, self.ids[i]
        info = self.problem.tasks[i].info
        xs = [p[0] for p in info.points if p[0] < self.emax[i]] + [float(self.emax[i])]
        vals = [float(v) for v in self.phi(i, np.asarray(xs))]
        if info.concave:
            for s in range(1, len(xs)):
                slope = (vals[s] - vals[s - 1]) / (xs[s] - xs[s - 1])
                m.table_cuts.add(m.t[tid] <= vals[s - 1] + slope * (m.e[tid] - xs[s - 1]))
            m.table_cuts.add(m.t[tid] <= vals[-1])  # the flat tail (and the point itself)
            return
        # Incremental formulation: delta_s = how much of segment s is used, in order (z_s gates s+1).
        blk = m.table_pw[tid]
        segs = list(range(1, len(xs)))
        blk.SEGMENTS = pyo.Set(initialize=segs, ordered=True)
        blk.delta = pyo.Var(blk.SEGMENTS, bounds=(0, 1))
        blk.z = pyo.Var(segs[:-1], domain=pyo.Binary)
        blk.order_lo = pyo.Constraint(segs[:-1], rule=lambda b, s: b.delta[s + 1] <= b.z[s])
        blk.order_hi = pyo.Constraint(segs[:-1], rule=lambda b, s: b.z[s] <= b.delta[s])
        blk.on_curve_e = pyo.Constraint(expr=m.e[tid] == sum((xs[s] - xs[s - 1]) * blk.delta[s] for s in segs))
        blk.on_curve_t = pyo.Constraint(
            expr=m.t[tid] == vals[0] + sum((vals[s] - vals[s - 1]) * blk.delta[s] for s in segs)
        )

    def _initial_cuts(self, i: int) -> None:
        top = float(self.emax[i])
        if _integral_row(self.problem, i):
            top_int = int(round(top))
            if self.problem.separable and top_int <= ALL_SECANTS:
                points = range(top_int)
            else:
                grid = np.unique(np.floor(np.geomspace(1, max(top_int, 1), GRID)).astype(np.int64))
                points = sorted({0, *[int(k) for k in grid if k < top_int]})
            for k in points:
                self.add_secant(i, int(k))
        else:
            for p in sorted({0.0, *np.geomspace(1, max(top, 1.0), GRID).tolist(), top}):
                if p <= top:
                    self.add_tangent(i, float(p))

    def add_secant(self, i: int, k: int) -> None:
        """t_i <= the line through (k, phi(k)) and (k+1, phi(k+1)): exact at integer e."""
        m, tid = self.m, self.ids[i]
        lo, hi = (float(v) for v in self.phi(i, np.asarray([k, k + 1])))
        m.cuts.add(m.t[tid] <= lo + (hi - lo) * (m.e[tid] - k))

    def add_tangent(self, i: int, p: float) -> None:
        """t_i <= phi(p) + phi'(p) (e - p): above the concave phi everywhere, touching it at p."""
        m, tid = self.m, self.ids[i]
        info = self.problem.tasks[i]
        value = float(self.phi(i, p))
        slope = float(info.weight * info.info.slope(p, info.initial)) / self.scale
        m.cuts.add(m.t[tid] <= value + slope * (m.e[tid] - p))

    def refine(self, n: np.ndarray, t_values: dict[int, float]) -> int:
        """Add cuts where t_i overestimates phi_i at the solution; return how many were added."""
        eff = self.problem.coupling @ n.astype(float)
        added = 0
        for i in self.closed:
            true = float(self.phi(i, eff[i]))
            if t_values[i] <= true + 1e-9 * max(1.0, abs(true)):
                continue
            if _integral_row(self.problem, i):
                k = int(round(eff[i]))
                for kk in (k - 1, k):
                    if 0 <= kk < round(self.emax[i]):
                        self.add_secant(i, kk)
            else:
                self.add_tangent(i, float(eff[i]))
            added += 1
        return added


def _repair(problem: "BudgetProblem", n: np.ndarray) -> tuple[np.ndarray, bool]:
    """Drop labels (least value lost per unit cost first) until the exact budget holds."""
    from planner.budget.problem import exact

    n = n.copy()
    caps = problem.caps
    n = np.clip(n, 0, caps)
    changed = False
    budget = exact(problem.budget)
    while problem.spent(n) > budget:
        base = problem.objective(n)
        best_i, best_loss = None, math.inf
        for i, t in enumerate(problem.tasks):
            if n[i] > 0:
                trial = n.copy()
                trial[i] -= 1
                loss = (base - problem.objective(trial)) / t.cost
                if loss < best_loss:
                    best_i, best_loss = i, loss
        n[best_i] -= 1
        changed = True
    return n, changed


def solve_highs(problem: "BudgetProblem", time_limit: float | None, options: dict) -> SolveResult:
    try:
        from pyomo.contrib.appsi.base import TerminationCondition as TC
        from pyomo.contrib.appsi.solvers import Highs
    except ImportError as exc:  # pragma: no cover - pyomo is a dependency
        raise SolverUnavailable(f"pyomo's HiGHS interface is not importable: {exc}") from None
    from planner.budget.problem import MAX_LABELS

    if len(problem.caps) and int(problem.caps.max()) > MAX_LABELS:
        raise SolverUnavailable(f"a task could receive more than {MAX_LABELS:.0e} labels; give it a max")
    opt = Highs()
    if not opt.available():
        raise SolverUnavailable("HiGHS (highspy) is not installed")
    from planner.budget.baselines import baselines, best_baseline

    start = time.perf_counter()
    model = _Model(problem)
    m = model.m
    opt.config.load_solution = False
    opt.config.stream_solver = bool(options.get("verbose", False))
    opt.config.mip_gap = 0.0
    # One thread, as every HiGHS backend of the project (HiGHS's scheduler is per process).
    opt.highs_options = {"mip_rel_gap": 0.0, "mip_abs_gap": 1e-12, "threads": int(options.get("threads", 1))}
    max_rounds = int(options.get("max_rounds", MAX_ROUNDS))

    table = baselines(problem)
    _, incumbent = best_baseline(problem, table)  # a feasible start: never worse than the best baseline
    lb = problem.objective(incumbent)
    ub = math.inf
    seen: set[tuple[int, ...]] = set()
    status, message, rounds = None, "", 0
    for rounds in range(1, max_rounds + 1):
        if interrupt.requested():
            status, message = SolveStatus.FEASIBLE, "stopped on request (Ctrl-C)"
            break
        if time_limit is not None:
            left = time_limit - (time.perf_counter() - start)
            if left <= 0:
                status, message = SolveStatus.FEASIBLE, "time limit reached"
                break
            opt.config.time_limit = left
        res = solve_quietly(opt, m)
        tc = res.termination_condition
        if tc == TC.infeasible:
            status = SolveStatus.INFEASIBLE  # cannot happen (n = 0 fits); mapped all the same
            break
        if tc in (TC.unbounded, TC.infeasibleOrUnbounded):
            status = SolveStatus.UNBOUNDED if tc == TC.unbounded else SolveStatus.ERROR
            message = f"HiGHS: {tc.name}"
            break
        if tc not in (TC.optimal, TC.maxTimeLimit, TC.maxIterations, TC.interrupted, TC.objectiveLimit):
            status, message = SolveStatus.ERROR, f"HiGHS stopped with {tc.name}"
            break
        bound = res.best_objective_bound
        if bound is not None and math.isfinite(bound):
            ub = min(ub, bound * model.scale)
        if res.best_feasible_objective is not None:
            res.solution_loader.load_vars()
            n = np.asarray([int(round(m.n[tid].value or 0)) for tid in model.ids], dtype=np.int64)
            n, repaired = _repair(problem, n)
            if repaired:
                message = "an allocation over budget by rounding was repaired"
            value = problem.objective(n)
            if value > lb:
                lb, incumbent = value, n
        if tc != TC.optimal:
            status, message = SolveStatus.FEASIBLE, "time limit reached"
            break
        if ub - lb <= GAP_TOL * max(1.0, abs(lb)):
            status = SolveStatus.OPTIMAL
            break
        key = tuple(int(k) for k in n)
        t_values = {i: float(m.t[model.ids[i]].value or 0.0) for i in model.closed}
        if model.refine(n, t_values) == 0 or key in seen:
            # The relaxation's optimum is exact at its own solution: optimal up to HiGHS's tolerances.
            status = SolveStatus.OPTIMAL
            break
        seen.add(key)
    else:
        status, message = SolveStatus.FEASIBLE, f"outer approximation stopped after {max_rounds} rounds"
    result = SolveResult(status=status, message=message, solver="highs")
    if status.has_solution:
        result.solution = problem.solution(incumbent)
        result.objective = lb
        result.bound = None if not math.isfinite(ub) else ub
    result.extra["rounds"] = rounds
    if options.get("baselines", True) and status.has_solution:
        result.extra["baselines"] = table
    return result
