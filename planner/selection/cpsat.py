"""Selection in OR-Tools CP-SAT.

Objective coefficients are scaled to integers (largest about 1e9); each rounding moves a term
by at most 0.5/s, so the program's optimum is within E = (number of terms) * 0.5/s of the true
one; the bound reported is lowered by E and E is stated in the message. Costs and the budget are
scaled exactly when they are decimals (up to 9 digits); otherwise costs are rounded up and the
budget down (every plan stays feasible) and optimality is not claimed.
"""
from __future__ import annotations

import math

from planner import interrupt
from planner.scaling import exact_integer_scale, map_cpsat_status, scale_objective
from planner.status import SolveResult, SolveStatus, SolverUnavailable


def _cp_model():
    try:
        from ortools.sat.python import cp_model
    except Exception as exc:  # pragma: no cover - depends on the install
        raise SolverUnavailable(f"OR-Tools CP-SAT cannot be imported ({exc})") from None
    return cp_model


def solve_cpsat(problem, time_limit: float | None, options: dict) -> SolveResult:
    cp_model = _cp_model()
    reason = problem.quick_infeasible_reason()
    if reason:
        return SolveResult(SolveStatus.INFEASIBLE, solver="cpsat", message=reason)
    if time_limit is not None and time_limit <= 0:
        return SolveResult(SolveStatus.NO_SOLUTION, solver="cpsat", message="time limit 0 s: no search was run")
    k = problem.k
    pairs = [(i, j, v) for i, j, v in problem.pairwise if v != 0.0]
    model = cp_model.CpModel()
    x = [model.NewBoolVar(f"x[{t}]") for t in problem.sources]  # source t is selected
    y = []
    for i, j, v in pairs:
        yp = model.NewBoolVar(f"y[{problem.sources[i]},{problem.sources[j]}]")  # y = x_i AND x_j
        model.AddImplication(yp, x[i])
        model.AddImplication(yp, x[j])
        model.AddBoolOr([x[i].Not(), x[j].Not(), yp])
        y.append(yp)
    idx = problem.index()
    for t in problem.must_include:
        model.Add(x[idx[t]] == 1)
    for t in problem.exclude:
        model.Add(x[idx[t]] == 0)
    if problem.min_size > 0:
        model.Add(sum(x) >= problem.min_size)
    if problem.max_size is not None:
        model.Add(sum(x) <= problem.max_size)
    notes = []
    exact_costs = True
    if problem.costs is not None:
        f = exact_integer_scale(list(problem.costs) + [problem.budget])
        if f is not None:
            cs = [int(round(c * f)) for c in problem.costs]
            cap = int(round(problem.budget * f))
        else:
            f = 10**6
            cs = [int(math.ceil(c * f - 1e-9)) for c in problem.costs]
            cap = int(math.floor(problem.budget * f + 1e-9))
            exact_costs = False
            notes.append("costs are not short decimals: rounded up (budget down) at 1e-6, optimality not claimed")
        model.Add(sum(c * xi for c, xi in zip(cs, x)) <= cap)
    coefs = list(problem.linear) + [v for _, _, v in pairs]
    ints, s, per_term = scale_objective(coefs)
    n_terms = sum(1 for c in coefs if c != 0.0)
    err = n_terms * per_term
    model.Minimize(sum(a * v for a, v in zip(ints[:k], x)) + sum(a * v for a, v in zip(ints[k:], y)))
    solver = cp_model.CpSolver()
    # One worker keeps runs reproducible; linearization level 2 gives that worker the LP relaxation of
    # the products, without which it rarely proves optimality (more workers: options["threads"]).
    solver.parameters.num_workers = int(options.get("threads", 1))
    solver.parameters.linearization_level = int(options.get("linearization_level", 2))
    solver.parameters.random_seed = int(options.get("random_seed", 0))
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    code = interrupt.cpsat_solve(solver, model)
    status = map_cpsat_status(cp_model, code, code in (cp_model.OPTIMAL, cp_model.FEASIBLE))
    solution = bound = None
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        solution = problem.make_solution([solver.Value(v) for v in x])
        bound = problem.intercept + solver.BestObjectiveBound() / s - err
        if not exact_costs:
            bound = None
            if status is SolveStatus.OPTIMAL:
                status = SolveStatus.FEASIBLE
    notes.append(f"objective scaled by {s:.6g}; rounding error at most {err:.3g}")
    return SolveResult(status, bound=bound, solution=solution, solver="cpsat",
                       message="; ".join(notes), extra={"rounding_error_bound": err})
