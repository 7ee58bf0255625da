"""``planner plan``: estimate, decide (the selection program and Algorithm 1), train the final
models, and compare them on the target's test split with single-task and pooled training."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from planner.selection.estimate import Estimate, EstimateSettings, estimate
from planner.jobs import Job, JobRunner, SubsetRuns
from planner.sampling import subset_seed
from planner.solve import solve
from planner.store import Store
from planner.selection.surrogate import LinearSurrogate, masks_from_subsets

PAPER_GAMMA_GRID = tuple(round(-0.5 + 0.1 * i, 1) for i in range(11))  # -0.5 .. 0.5 (Section 4)
MAX_GAMMA_SETS = 12


@dataclass
class PlanSettings:
    final_seeds: int = 3  # seeds per final model (test metric: mean over them)
    cv_seeds: int = 1  # seeds per candidate set when choosing gamma on validation
    solver: str = "auto"
    time_limit: float | None = 60.0


def algorithm1_scores(est: Estimate) -> np.ndarray:
    """The paper's surrogate g(S) = sum_{i in S} theta_i (no intercept) on the sampled subsets."""
    masks = masks_from_subsets(est.subsets, len(est.sources))
    return LinearSurrogate(fit_intercept=False, random_state=est.settings.seed).fit(masks, est.f).coef_


def gamma_candidates(theta: np.ndarray) -> list[float]:
    """The paper's grid plus midpoints between sorted scores (so every threshold set is reachable),
    thinned to at most MAX_GAMMA_SETS distinct selections."""
    s = np.sort(theta)
    mids = list((s[:-1] + s[1:]) / 2) if len(s) > 1 else []
    cands = sorted(set(PAPER_GAMMA_GRID) | {float(m) for m in mids} | {float(s[0]) - 1e-9, float(s[-1]) + 1e-9})
    by_set: dict[tuple[int, ...], float] = {}
    for g in cands:
        key = tuple(np.flatnonzero(theta < g))
        by_set.setdefault(key, g)
    items = sorted(by_set.items(), key=lambda kv: kv[1])
    if len(items) > MAX_GAMMA_SETS:
        keep = np.unique(np.round(np.linspace(0, len(items) - 1, MAX_GAMMA_SETS)).astype(int))
        items = [items[i] for i in keep]
    return [g for _, g in items]


def run_plan(data, target: str, est_settings: EstimateSettings, config, plan_settings: PlanSettings,
             store_path: str = ":memory:", constraints: dict | None = None,
             progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
             log: Callable[[str], None] = lambda s: None) -> tuple[dict[str, Any], Estimate, dict[str, Any]]:
    """Returns (the contract's report, the estimate, extras for plots and tables)."""
    with Store(store_path) as store:
        runner = JobRunner(store, est_settings.executor, est_settings.batch_size, progress)
        return _run_plan(data, target, est_settings, config, plan_settings, runner, constraints, on_total, log)


def _run_plan(data, target, est_settings, config, plan_settings, runner: JobRunner, constraints, on_total, log):
    t0 = time.perf_counter()
    progress = runner.progress
    extra = MAX_GAMMA_SETS * plan_settings.cv_seeds + 4 * plan_settings.final_seeds
    total_hook = None if on_total is None else (lambda n: on_total(n + extra))
    est = estimate(data, target, est_settings, config, constraints=constraints, on_total=total_hook, runner=runner)
    t_idx = data.task_index(est.target)
    src_idx = [i for i in range(data.n_tasks) if i != t_idx]
    log(f"surrogate fitted on {est.diagnostics['n_fit']} subsets ({est.trained} trained now); "
        f"held-out Spearman {est.diagnostics['spearman']:.2f}")

    # The tool's choice: the selection program over the fitted surrogate and the user's constraints.
    problem = est.problem(constraints)
    result = solve(problem, plan_settings.solver, plan_settings.time_limit)
    if not result.status.has_solution:
        from planner.status import PlannerError

        err = PlannerError(f"the selection program found no plan: {result.status.value} ({result.message})")
        err.exit_code = result.status.exit_code
        raise err
    plan_set = list(result.solution["selected"])

    # Validation and final models are trained in full (the row/epoch fractions speed up subset runs only).
    final_config = dataclasses.replace(config, train_fraction=1.0, epoch_fraction=1.0)

    # Algorithm 1: theta from the paper's surrogate; gamma by validation loss of trained models.
    theta1 = algorithm1_scores(est)
    gammas = gamma_candidates(theta1)
    cand_sets = [tuple(sorted(src_idx[i] for i in np.flatnonzero(theta1 < g))) for g in gammas]
    cv_jobs = [(s, r) for s in cand_sets for r in range(plan_settings.cv_seeds)]
    seed0 = est_settings.seed + 104729
    final_runs = SubsetRuns(t_idx, final_config)
    runner.progress = None  # counted below, per step
    cv_res = runner.run(data, final_runs, [Job(s, r, subset_seed(seed0, s, r)) for s, r in cv_jobs], seed0)
    cv_loss = {}
    for s, r in cv_jobs:
        cv_loss.setdefault(s, []).append(cv_res[(s, r)].f)
    scores_g = [float(np.mean(cv_loss[s])) for s in cand_sets]
    best = int(np.argmin(scores_g))
    gamma = gammas[best]
    threshold_set = [data.task_names[i] for i in cand_sets[best]]
    if progress is not None:
        progress(len(cv_jobs) + (MAX_GAMMA_SETS - len(cand_sets)) * plan_settings.cv_seeds)

    # Final models: plan, Algorithm 1, single-task, pooled; `final_seeds` seeds each.
    arms = {
        "plan": tuple(sorted(data.task_index(t) for t in plan_set)),
        "threshold": cand_sets[best],
        "stl": (),
        "pooled": tuple(src_idx),
    }
    seed1 = est_settings.seed + 1299709
    jobs = [(name, subset, r) for name, subset in arms.items() for r in range(plan_settings.final_seeds)]
    res = runner.run(data, final_runs, [Job(s, r, subset_seed(seed1, s, r)) for _, s, r in jobs], seed1)
    runner.progress = progress
    if progress is not None:
        progress(len(jobs))
    metric = est.test_metric
    per_arm: dict[str, list[float]] = {}
    val_arm: dict[str, list[float]] = {}
    for name, s, r in jobs:
        rr = res[(s, r)]
        per_arm.setdefault(name, []).append(float(rr.test[metric]))
        val_arm.setdefault(name, []).append(float(rr.f))
    test = {name: float(np.mean(v)) for name, v in per_arm.items()}
    test_sd = {name: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for name, v in per_arm.items()}

    diag = est.diagnostics
    report = {
        "schema": 1,
        "target": est.target,
        "selected": plan_set,
        "test": test,
        "metric": metric,
        "higher_is_better": est.higher_is_better,
        "scores": est.scores,
        "interval": est.interval,
        "surrogate": {
            "n_subsets": diag["n_subsets"],
            "spearman": _num(diag["spearman"]),
            "f1_transfer": _num(diag["f1_transfer"]),
            "mse": _num(diag["mse"]),
            "noise_floor": _num(diag["noise_floor"]),
            "positive_transfer_rate": _num(diag["positive_transfer_rate"]),
            "kind": diag["surrogate"],
            "n_fit": diag["n_fit"],
            "n_held_out": diag["n_held_out"],
            "learning_curve": diag["learning_curve"],
        },
        "test_sd": test_sd,
        "validation": {name: float(np.mean(v)) for name, v in val_arm.items()},
        "threshold": {"gamma": gamma, "selected": threshold_set, "scores": {t: float(v) for t, v in zip(est.sources, theta1)},
                      "candidates": [{"gamma": g, "size": len(s), "validation": v} for g, s, v in zip(gammas, cand_sets, scores_g)]},
        "plan": {"status": result.status.value, "predicted": result.objective, "solver": result.solver},
        "baseline": est.baseline,
        "selection_frequency": est.selection_frequency,
        "uncertain": est.uncertain,
        "identifiable": not any(t in est.uncertain for t in est.sources),
        "constraints": constraints or {},
        "final_seeds": plan_settings.final_seeds,
        "models_trained": runner.trained,
        "seconds": time.perf_counter() - t0,
    }
    extras = {"result": result, "problem": problem}
    return report, est, extras


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def comparison_table(report: dict[str, Any]) -> list[str]:
    metric = report["metric"]
    arrow = "higher is better" if report["higher_is_better"] else "lower is better"
    sign = 1 if report["higher_is_better"] else -1
    best = round(max(report["test"].values(), key=lambda v: sign * v), 4)
    rows = [
        f"target {report['target']}: test {metric} ({arrow}), mean over {report['final_seeds']} seeds",
        f"{'method':<22}{'tasks':>6}  {metric:>10}  {'sd':>8}",
    ]
    sizes = {"plan": len(report["selected"]), "threshold": len(report["threshold"]["selected"]),
             "stl": 0, "pooled": len(report["scores"])}
    labels = {"plan": "plan (program)", "threshold": f"Algorithm 1 (g={report['threshold']['gamma']:.3g})",
              "stl": "single-task", "pooled": "pooled (all sources)"}
    for name in ("plan", "threshold", "stl", "pooled"):
        v = report["test"][name]
        mark = "  *" if round(v, 4) == best else ""
        rows.append(f"{labels[name]:<22}{sizes[name]:>6}  {v:>10.4f}  {report['test_sd'][name]:>8.4f}{mark}")
    s = report["surrogate"]
    rows.append(
        f"surrogate ({s['kind']}, {s['n_subsets']} subsets, held-out {s['n_held_out']}): Spearman {_f(s['spearman'])}, "
        f"transfer F1 {_f(s['f1_transfer'])}, MSE {_f(s['mse'], 3)} vs noise floor {_f(s['noise_floor'], 3)}"
    )
    rate = s.get("positive_transfer_rate")
    if rate in (0.0, 1.0):
        rows.append(f"  (every held-out subset {'beat' if rate == 1.0 else 'lost to'} the target alone, so transfer F1 "
                    "says nothing here)")
    chosen = report["selected"]
    shown = ", ".join(chosen[:12]) + (f", ... ({len(chosen) - 12} more)" if len(chosen) > 12 else "")
    rows.append(f"selected {len(chosen)} of {len(report['scores'])} sources: {shown or '(none: train the target alone)'}")
    if report["uncertain"]:
        shown = ", ".join(report["uncertain"][:10]) + (" ..." if len(report["uncertain"]) > 10 else "")
        rows.append(
            f"uncertain: {len(report['uncertain'])} of {len(report['scores'])} sources have 90% intervals that straddle 0 "
            f"({shown}): whether they help cannot be told from these runs"
        )
    return rows


def _f(x, digits=2):
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}" if digits <= 2 else f"{x:.{digits}g}"
