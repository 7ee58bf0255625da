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
from planner import __version__
from planner.jobs import Job, JobRunner, SubsetRuns
from planner.selection import evidence
from planner.sampling import subset_seed
from planner.solve import solve
from planner.status import InfeasibleSolution, UsageError
from planner.store import Store
from planner.selection.surrogate import LinearSurrogate, masks_from_subsets

PAPER_GAMMA_GRID = tuple(round(-0.5 + 0.1 * i, 1) for i in range(11))  # -0.5 .. 0.5 (Section 4)
MAX_GAMMA_SETS = 12
POOL_MARGIN = 0.01  # a candidate replaces pooling only with a validation loss lower by 1% (and 2 SE)


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
    extra = MAX_GAMMA_SETS * plan_settings.cv_seeds + 5 * plan_settings.final_seeds
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
    program_set = list(result.solution["selected"])
    warnings = list(est.warnings)
    cons = constraints or {}
    pool_set = [t for t in est.sources if t not in set(cons.get("exclude", ()))]
    can_pool = _feasible(problem, pool_set)
    decision = "program"
    plan_set = program_set
    if not est.separable:
        if can_pool:
            plan_set, decision = pool_set, "all allowed: the runs cannot separate the sources"
            warnings.append(evidence.POOLING_RECOMMENDATION)
        else:
            warnings.append("the runs cannot separate the sources, and the constraints do not allow pooling; the "
                            "program's set below rests on noise")

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

    try:
        problem.evaluate({"selected": threshold_set})
    except InfeasibleSolution as exc:
        warnings.append(f"Algorithm 1's set (gamma {gamma:.3g}) breaks the constraints ({exc}); it is shown "
                        "for comparison only")

    # Candidates for the plan, each trained with `final_seeds` seeds and judged on validation only: the
    # program's set, pooling, and the best-scored quarter, half and three quarters of the allowed sources
    # (the surrogate's ranking can be right where its level is off). Then Algorithm 1, single-task.
    candidates = _candidates(est, problem, program_set, pool_set, can_pool, cons)
    arms = {name: tuple(sorted(data.task_index(t) for t in members)) for name, members in candidates.items()}
    arms.update({"threshold": cand_sets[best], "stl": (), "pooled": tuple(src_idx)})
    seed1 = final_seed_base(est_settings)
    jobs = [(name, subset, r) for name, subset in arms.items() for r in range(plan_settings.final_seeds)]
    # the final models keep the target's loss on each validation and test row: comparisons then count the
    # rows' own noise as well as the seeds'
    res = runner.run(data, dataclasses.replace(final_runs, rows=True),
                     [Job(s, r, subset_seed(seed1, s, r)) for _, s, r in jobs], seed1)
    runner.progress = progress
    if progress is not None:
        progress(len(jobs))
    metric = est.test_metric
    per_arm: dict[str, list[float]] = {}
    val_arm: dict[str, list[float]] = {}
    loss_arm: dict[str, list[float]] = {}   # the loss f is measured in, on the target's test rows
    rows_arm: dict[str, list[dict | None]] = {}  # per seed, the target's per-row losses (None: not stored)
    for name, s, r in jobs:
        rr = res[(s, r)]
        per_arm.setdefault(name, []).append(float(rr.test[metric]))
        val_arm.setdefault(name, []).append(float(rr.f))
        loss_arm.setdefault(name, []).append(float(rr.test.get("loss", math.nan)))
        rows_arm.setdefault(name, []).append(rr.rows)
    val = {name: float(np.mean(v)) for name, v in val_arm.items()}

    def beats(name: str, other: str) -> bool:
        """Is arm ``name`` clearly better than ``other`` on validation (seeds and validation rows)?"""
        return _clearly_better(val_arm[name], val_arm[other], _rows(rows_arm[name], "val"),
                               _rows(rows_arm[other], "val"))

    if est.separable or not can_pool:
        # Pooling is the baseline to beat (the program's set where the constraints forbid pooling); another
        # candidate, the target alone included, replaces it only when clearly better on validation: by more
        # than POOL_MARGIN and than twice the noise of seeds and validation rows.
        default = "all allowed" if "all allowed" in candidates else "program"
        chosen = min(candidates, key=lambda name: (val[name], name != "program"))
        if chosen != default and not beats(chosen, default):
            chosen = default
        plan_set = list(candidates[chosen])
        if chosen != "program":
            if chosen == default:
                decision = f"{chosen}: no candidate beat pooling on validation by a clear margin"
            elif chosen == "none":
                decision = "none: the target alone beat pooling on validation by a clear margin"
            else:
                decision = f"{chosen}: clearly the lowest validation loss among the candidate sets"
            if sorted(plan_set) != sorted(program_set):
                warnings.append(f"the program's set ({len(program_set)} sources) is not the plan: {decision} "
                                f"(validation loss {val['program']:.4g} against {val[chosen]:.4g})")
    else:
        # The runs cannot rank the sources, but whether sources help at all needs no ranking: the target
        # alone still replaces pooling when it is clearly better on validation.
        chosen = "all allowed"
        if "none" in candidates and beats("none", chosen):
            chosen = "none"
            plan_set, decision = [], ("none: the runs cannot separate the sources, and the target alone beat "
                                      "pooling on validation by a clear margin")
            warnings[warnings.index(evidence.POOLING_RECOMMENDATION)] = (
                f"the runs cannot separate the sources, and the target alone beat pooling on validation (loss "
                f"{val['none']:.4g} against {val['all allowed']:.4g}), so the plan trains the target alone; the "
                "scores below are not findings")
    per_arm["plan"], val_arm["plan"], loss_arm["plan"] = list(per_arm[chosen]), list(val_arm[chosen]), list(loss_arm[chosen])
    rows_arm["plan"] = rows_arm[chosen]
    test_noise = _test_noise(rows_arm, per_arm, metric, est.higher_is_better)
    val["plan"] = val[chosen]
    if val["plan"] > val["stl"]:
        warnings.append(f"the plan lost to the target alone on validation (loss {val['plan']:.4g} against "
                        f"{val['stl']:.4g}); training the target alone may be the safer choice")
    candidate_report = [{"name": n, "size": len(m), "validation": val[n], "test": float(np.mean(per_arm[n])),
                         "test_loss": float(np.mean(loss_arm[n]))} for n, m in candidates.items()]
    program_test = float(np.mean(per_arm["program"]))
    for name in candidates:
        per_arm.pop(name, None)
        val_arm.pop(name, None)
        loss_arm.pop(name, None)
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
            "estimator": est.estimator,
            "reliability": _num(diag.get("reliability")),
            "reliability_of_f": _num(diag.get("reliability_of_f")),
            "reliability_interval": diag.get("reliability_interval"),
            "reliability_of_f_interval": diag.get("reliability_of_f_interval"),
            "spearman_ceiling": _num(diag.get("spearman_ceiling")),
            "spearman_sd": _num(diag.get("spearman_sd")),
            "cv": diag.get("cv"),
            "stopped": est.stopped,
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
        "test_noise": test_noise,
        "test_loss": {name: float(np.mean(v)) for name, v in loss_arm.items()},
        "test_loss_sd": {name: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for name, v in loss_arm.items()},
        "validation": {name: float(np.mean(v)) for name, v in val_arm.items()},
        "program": {"selected": program_set, "predicted": result.objective, "status": result.status.value,
                    "test": program_test, "validation": val["program"]},
        "decision": decision,
        "candidates": candidate_report,
        "separable": est.separable,
        "estimator_choice": est.estimator_choice,
        "sample_counts": est.sample_counts,
        "warnings": warnings,
        "threshold": {"gamma": gamma, "selected": threshold_set, "scores": {t: float(v) for t, v in zip(est.sources, theta1)},
                      "candidates": [{"gamma": g, "size": len(s), "validation": v} for g, s, v in zip(gammas, cand_sets, scores_g)]},
        "plan": {"status": result.status.value, "predicted": result.objective, "solver": result.solver,
                 "bound": result.bound, "gap_percent": None if result.gap is None else round(100.0 * result.gap, 6)},
        "baseline": est.baseline,
        "selection_frequency": est.selection_frequency,
        "uncertain": est.uncertain,
        "identifiable": not any(t in est.uncertain for t in est.sources),
        "constraints": constraints or {},
        "final_seeds": plan_settings.final_seeds,
        "models_trained": runner.trained,
        "settings": {**{k: v for k, v in dataclasses.asdict(est_settings).items() if k not in ("batch_size", "executor")},
                     "train": config.to_dict(), "final_seeds": plan_settings.final_seeds,
                     "solver": plan_settings.solver, "time_limit": plan_settings.time_limit,
                     "constraints": constraints or {}},
        "version": __version__,
        "seconds": time.perf_counter() - t0,
    }
    report["verdict"] = verdict(report)
    extras = {"result": result, "problem": problem}
    return report, est, extras


def _clearly_better(candidate: list[float], default: list[float], candidate_rows=None, default_rows=None) -> bool:
    """Lower mean validation loss than the default by more than POOL_MARGIN of it and more than twice the
    standard error of the difference: over the final seeds and, where the per-row losses are there, over
    the target's validation rows too (a few validation rows cannot show a small gap)."""
    a, b = np.asarray(candidate, dtype=float), np.asarray(default, dtype=float)
    gap = float(b.mean() - a.mean())
    if candidate_rows is not None and default_rows is not None:
        se = evidence.paired_se(candidate_rows, default_rows)
    else:
        se = math.sqrt((a.var(ddof=1) / len(a) if len(a) > 1 else 0.0) + (b.var(ddof=1) / len(b) if len(b) > 1 else 0.0))
    return gap > max(POOL_MARGIN * abs(float(b.mean())), 2.0 * se)


def _rows(per_seed: list[dict | None], key: str) -> np.ndarray | None:
    """``(seeds, rows)`` per-row losses under ``key`` of one arm's final models; None where a model lacks
    them (a store written before they were kept) or the rows differ in number."""
    if not per_seed or any(r is None or key not in r for r in per_seed):
        return None
    lengths = {len(r[key]) for r in per_seed}
    if len(lengths) != 1 or 0 in lengths:
        return None
    return np.asarray([r[key] for r in per_seed], dtype=float)


def _test_noise(rows_arm: dict, per_arm: dict, metric: str, higher_is_better: bool) -> dict[str, Any] | None:
    """Standard errors of the plan's test differences from pooling and from the target alone, counting the
    seeds and the test rows (paired: every model is scored on the same rows); None without per-row losses.
    The metric's rows: classification accuracy from each row's 0-1 error; regression RMSE from the squared
    errors (delta method: ``d rmse = d mse / (rmse_a + rmse_b)``)."""
    out: dict[str, Any] = {"basis": "seeds and test rows", "metric": {}, "loss": {}}
    plan_loss = _rows(rows_arm.get("plan", []), "test")
    if plan_loss is None:
        return None
    out["rows"] = int(plan_loss.shape[1])
    for name in ("pooled", "stl"):
        other = _rows(rows_arm.get(name, []), "test")
        if other is None or other.shape != plan_loss.shape:
            return None
        out["loss"][name] = evidence.paired_se(plan_loss, other)
        if higher_is_better:  # accuracy = 1 - mean 0-1 error
            a, b = _rows(rows_arm["plan"], "test_error"), _rows(rows_arm[name], "test_error")
            if a is None or b is None:
                return None
            out["metric"][name] = evidence.paired_se(a, b)
        else:
            scale = float(np.mean(per_arm["plan"]) + np.mean(per_arm[name])) if metric == "rmse" else 1.0
            out["metric"][name] = out["loss"][name] / scale if scale > 0 else math.nan
    return out


def final_seed_base(est_settings) -> int:
    """The study seed of the final models (each model's own seed is ``subset_seed(base, subset, r)``)."""
    return est_settings.seed + 1299709


def save_final_models(data, report: dict[str, Any], config, est_settings, final_seeds: int, out_dir) -> list[str]:
    """Train the plan's final models again one by one (the same seeds, so the same models up to float
    rounding) and save each network's state dict to ``out_dir`` atomically, with ``index.json``
    (target, tasks in head-slot order, features, training settings, seed, validation loss, test metrics)."""
    import io
    import json
    from pathlib import Path

    import torch

    from planner.io import atomic_write_bytes, atomic_write_text
    from planner_models.train import train_one_module

    if getattr(config, "model", None):
        raise UsageError("--save-models saves the built-in network; with --model, save inside your own code")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_idx = data.task_index(report["target"])
    subset = tuple(sorted(data.task_index(t) for t in report["selected"]))
    final_config = dataclasses.replace(config, train_fraction=1.0, epoch_fraction=1.0)
    base = final_seed_base(est_settings)
    index, written = [], []
    for r in range(final_seeds):
        seed = subset_seed(base, subset, r)
        res, net = train_one_module(data, t_idx, subset, final_config, seed)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
        name = f"plan_seed{r}.pt"
        atomic_write_bytes(out / name, buf.getvalue())
        written.append(str(out / name))
        index.append({"file": name, "seed": int(seed), "validation_loss": float(res.f),
                      "test": {k: float(v) for k, v in res.test.items()}})
    meta = {"target": report["target"], "tasks": [data.task_names[t_idx]] + [data.task_names[i] for i in subset],
            "features": list(data.feature_names), "hidden": list(final_config.hidden),
            "classes": data.class_names, "train": final_config.to_dict(), "models": index,
            "heads": final_config.heads,
            "n_heads": 1 if final_config.heads == "shared" else 1 + len(subset),
            "load": "planner_models.mtl.MTLNet(in_dim, hidden, n_heads, out_dim).load_state_dict(torch.load(file))"}
    atomic_write_text(out / "index.json", json.dumps(meta, indent=2, default=str) + "\n")
    return written + [str(out / "index.json")]


def _candidates(est, problem, program_set: list[str], pool_set: list[str], can_pool: bool,
                cons: dict) -> dict[str, list[str]]:
    """Named candidate sets for the validated plan, each within the constraints' size limits."""
    must = [t for t in est.sources if t in set(cons.get("must_include", ()))]
    ranked = [t for t in sorted(pool_set, key=lambda t: (est.scores[t], t)) if t not in must]
    hi = cons.get("max_size")
    lo = int(cons.get("min_size", 0))
    out: dict[str, list[str]] = {"program": list(program_set)}
    if can_pool:
        out["all allowed"] = list(pool_set)
    if not must and lo == 0:
        out["none"] = []
    for frac in (0.25, 0.5, 0.75):
        m = int(round(frac * len(ranked)))
        members = must + ranked[:m]
        if (hi is not None and len(members) > hi) or len(members) < lo:
            continue
        if sorted(members) not in [sorted(v) for v in out.values()]:
            out[f"best {round(100 * frac)}%"] = members
    return {name: members for name, members in out.items() if name == "program" or _feasible(problem, members)}


def _feasible(problem, members: list[str]) -> bool:
    try:
        problem.evaluate({"selected": list(members)})
    except InfeasibleSolution:
        return False
    return True


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def verdict(report: dict[str, Any]) -> str:
    """Does the plan beat pooling and the target alone on test, beyond the noise of the seeds and the test
    rows (``test_noise``; the seeds' alone for a report without it)? Judged on the test metric and, where
    the report has it, on the loss f is measured in (the plan's objective)."""
    n = max(1, int(report.get("final_seeds", 1)))
    noise = report.get("test_noise") or {}
    out = "the plan " + _compare(report["test"], report["test_sd"], 1 if report["higher_is_better"] else -1, n,
                                 noise.get("metric"))
    loss = report.get("test_loss") or {}
    if all(math.isfinite(loss.get(k, math.nan)) for k in ("plan", "pooled", "stl")):
        out += "; on test loss it " + _compare(loss, report.get("test_loss_sd") or {}, -1, n, noise.get("loss"))
    return out


def _compare(t: dict[str, float], sd: dict[str, float], sign: int, n: int, paired: dict | None = None) -> str:
    """``paired``: standard errors of the differences over seeds and test rows (else the seeds' only)."""
    parts = []
    for name, label in (("pooled", "pooling"), ("stl", "the target alone")):
        diff = sign * (t["plan"] - t[name])
        if paired and paired.get(name) is not None and math.isfinite(paired[name]):
            se, what = paired[name], "the noise of seeds and test rows"
        else:
            se, what = math.sqrt((sd.get("plan", 0.0) ** 2 + sd.get(name, 0.0) ** 2) / n), "the seed noise"
        if abs(diff) <= max(2 * se, 1e-12):
            parts.append(f"ties with {label} ({diff:+.4f}, within twice {what} {2 * se:.4f})")
        else:
            parts.append(f"{'beats' if diff > 0 else 'loses to'} {label} by {abs(diff):.4f} (twice {what} "
                         f"{2 * se:.4f})")
    return "; ".join(parts)


def comparison_table(report: dict[str, Any]) -> list[str]:
    metric = report["metric"]
    arrow = "higher is better" if report["higher_is_better"] else "lower is better"
    sign = 1 if report["higher_is_better"] else -1
    best = round(max(report["test"].values(), key=lambda v: sign * v), 4)
    loss = report.get("test_loss") or {}
    rows = [
        f"target {report['target']}: test {metric} ({arrow}) and test loss (lower is better), mean over "
        f"{report['final_seeds']} seeds",
        f"{'method':<22}{'tasks':>6}  {metric:>10}  {'sd':>8}  {'loss':>8}  {'sd':>7}",
    ]
    sizes = {"plan": len(report["selected"]), "threshold": len(report["threshold"]["selected"]),
             "stl": 0, "pooled": len(report["scores"])}
    labels = {"plan": "plan",
              "threshold": f"Algorithm 1 (g={report['threshold']['gamma']:.3g})",
              "stl": "single-task", "pooled": "pooled (all sources)"}
    for name in ("plan", "threshold", "stl", "pooled"):
        v = report["test"][name]
        mark = "  *" if round(v, 4) == best else ""
        lv = loss.get(name, math.nan)
        lsd = (report.get("test_loss_sd") or {}).get(name, math.nan)
        rows.append(f"{labels[name]:<22}{sizes[name]:>6}  {v:>10.4f}  {report['test_sd'][name]:>8.4f}  "
                    f"{lv:>8.4f}  {lsd:>7.4f}{mark}")
    rows.append("verdict: " + verdict(report))
    prog = report.get("plan", {})
    if prog.get("status"):
        gap = prog.get("gap_percent")
        rows.append(f"program: {prog['status']} ({prog.get('solver')}), gap "
                    f"{'-' if gap is None else f'{gap:.3g}%'}")
    s = report["surrogate"]
    cv = s.get("cv") or {}
    rows.append(
        f"surrogate ({s['kind']}, {s.get('estimator', 'retrain')} estimate, {s['n_subsets']} subsets, stopped: "
        f"{s.get('stopped', 'fixed')}): {evidence.reliability_text(s)} (Spearman ceiling "
        f"{_f(s.get('spearman_ceiling'))}); {cv.get('repeats', 1)}x{cv.get('folds', '-')}-fold Spearman "
        f"{_f(s['spearman'])} +- {_f(s.get('spearman_sd'))}, transfer F1 {_f(s['f1_transfer'])}, "
        f"MSE {_f(s['mse'], 3)} vs seed noise {_f(s['noise_floor'], 3)}"
    )
    if report.get("decision", "program") != "program":
        rows.append(f"decision: {report['decision']} (the program chose {len(report['program']['selected'])} "
                    f"sources)")
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
