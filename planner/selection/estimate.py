"""From training runs to a surrogate: sample subsets, train (resumably), fit, diagnose, bootstrap.

The pipeline of ``planner estimate`` (Li, Nguyen, Zhang 2023, Section 2, with the checks the
adaptivity-limits paper asks for):

1. draw ``n`` subsets of size ``alpha`` of the k sources (seeded; n <= 8k by default);
2. measure f: by retraining (one model per subset, ``repeats`` single-task models, and a replicate
   design of ``replicate_subsets`` x ``replicate_seeds`` for the seed noise; adaptive rounds until the
   selected set is stable unless ``n_subsets`` is fixed; what the store holds is not trained again), or
   by the gradient estimate (:mod:`planner_models.gradient`; ``replicate_seeds`` base networks);
   ``estimator="auto"`` measures both on the replicate design and keeps the gradient estimate when one
   of its base networks clears the reliability bar and its f (their mean) is more reliable than
   retraining's, retraining otherwise;
3. fit the surrogate on every subset (the single-task rows anchor the intercept at the single-task
   loss, so theta_i reads as "adding i moves the target's loss by theta_i"); measure MSE, Spearman
   and transfer F1 by repeated K-fold cross-validation over all subsets;
4. the reliability (share of f's variance across subsets that is not seed noise) from the replicates,
   bootstrap intervals on every theta_i (none for a source never sampled) and selection
   frequencies, and the warnings (:mod:`planner.selection.evidence`) that say how far to trust it.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from planner.io import finite_or_null
from planner.jobs import Job, JobRunner, SubsetRuns
from planner.reliability import crossed_reliability, spearman_brown, spearman_of_pearson, variance_components
from planner.ridge import stack_rows
from planner.sampling import default_alpha, default_n_subsets, design, subset_seed
from planner.status import UsageError
from planner.store import Store
from planner.selection.evidence import MIN_RELIABILITY, fmt
from planner.selection.surrogate import (
    PairwiseSurrogate,
    bootstrap_scores,
    f1_transfer,
    fit_surrogate,
    learning_curve,
    masks_from_subsets,
    spearman,
)


ESTIMATORS = ("auto", "retrain", "gradient")


@dataclass(frozen=True)
class EstimateSettings:
    alpha: int | None = None  # subset size (default: 5, below k/2)
    n_subsets: int | None = None  # default: min(8k, C(k, alpha))
    seed: int = 0
    repeats: int = 3  # single-task replicates
    replicate_subsets: int = 40  # subsets of the sample measured with `replicate_seeds` seeds (seed noise)
    replicate_seeds: int = 3
    holdout: float = 0.2  # fraction held out for the learning curve (the other figures: repeated K-fold)
    cv_folds: int = 5
    cv_repeats: int = 10
    estimator: str = "auto"  # retrain | gradient | auto
    gradient_seeds: int = 4  # base networks of the gradient estimate (f is their mean)
    time_budget: float | None = None  # seconds of adaptive training (None: no limit)
    surrogate: str = "auto"  # linear | pairwise | auto
    n_boot: int = 200
    extra_design: str = "none"  # none | singletons | pairs | both
    batch_size: int = 128  # models per batch (one store transaction each)
    executor: str = "local"


@dataclass
class Estimate:
    target: str
    sources: list[str]
    settings: EstimateSettings
    train_config: dict[str, Any]
    subsets: list[tuple[int, ...]]  # sampled subsets (indices into sources), replicate 0
    f: np.ndarray  # f of each sampled subset
    stl_f: list[float]  # single-task replicates
    baseline: float  # mean single-task loss
    noise_floor: float
    held: np.ndarray  # boolean mask over `subsets`: held out
    model: Any  # surrogate refit on every row
    diagnostics: dict[str, Any]
    scores: dict[str, float]
    interval: dict[str, list[float]]
    selection_frequency: dict[str, float]
    uncertain: list[str]
    pred_held: np.ndarray
    test_metric: str
    higher_is_better: bool
    seconds: float
    trained: int  # models trained in this call (0 when everything was in the store)
    boot_thetas: np.ndarray = field(repr=False, default=None)
    estimator: str = "retrain"
    reliability: dict[str, Any] = field(default_factory=dict)  # variance components of single measurements
    estimator_choice: dict[str, Any] = field(default_factory=dict)  # what auto measured and why it chose
    warnings: list[str] = field(default_factory=list)
    separable: bool = True  # the runs can tell sources apart (else: pool)
    stopped: str = "fixed"  # why estimation stopped: fixed | stable | max_subsets | time_budget | runs
    sample_counts: dict[str, int] = field(default_factory=dict)

    def problem(self, constraints: dict | None = None, name: str | None = None):
        """The selection problem over the fitted surrogate, built directly (no file round trip)."""
        return selection_problem(name or f"estimate_{self.target}", self.target, self.sources,
                                 float(self.model.intercept_), self.model.coef_, self.model.pairwise_, constraints,
                                 baseline=float(self.baseline))

    def instance_dict(self, name: str | None = None, constraints: dict | None = None) -> dict[str, Any]:
        """A selection instance in the contract's schema holding the surrogate and the diagnostics."""
        pairs = [[self.sources[i], self.sources[j], round(v, 12)] for i, j, v in self.model.pairwise_ if v != 0.0]
        data: dict[str, Any] = {
            "schema": 1,
            "kind": "selection",
            "name": name or f"estimate_{self.target}",
            "target": self.target,
            "tasks": [self.target, *self.sources],
            "surrogate": {
                "intercept": float(self.model.intercept_),
                "linear": {t: float(v) for t, v in zip(self.sources, self.model.coef_)},
                "pairwise": pairs,
            },
            "baseline": float(self.baseline),
        }
        if constraints:
            data["constraints"] = constraints
        data["meta"] = finite_or_null({
            "surrogate_kind": "pairwise" if isinstance(self.model, PairwiseSurrogate) else "linear",
            "diagnostics": self.diagnostics,
            "interval": self.interval,
            "selection_frequency": self.selection_frequency,
            "uncertain": self.uncertain,
            "estimator": self.estimator,
            "reliability": self.reliability,
            "warnings": self.warnings,
            "separable": self.separable,
            "stopped": self.stopped,
            # what decides the result (batch size and executor do not)
            "settings": {k: v for k, v in asdict(self.settings).items() if k not in ("batch_size", "executor")},
            "train_config": self.train_config,
            "test_metric": self.test_metric,
        })
        return data


def selection_problem(name: str, target: str, sources: list[str], intercept: float, linear, pairs,
                      constraints: dict | None, baseline: float | None = None):
    """A :class:`SelectionProblem` over a fitted surrogate (``pairs``: ``(i, j, theta_ij)``, zero terms
    dropped) and the constraints mapping of the CLI and the instance files, built without a file round trip."""
    from planner.selection.problem import SelectionProblem

    c = constraints or {}
    costs = c.get("costs")
    return SelectionProblem(
        name=name, target=target, sources=tuple(sources), intercept=float(intercept),
        linear=tuple(float(v) for v in linear),
        pairwise=tuple(sorted((min(i, j), max(i, j), float(v)) for i, j, v in pairs if v != 0.0)),
        baseline=baseline, min_size=int(c.get("min_size", 0)), max_size=c.get("max_size"),
        must_include=frozenset(c.get("must_include", ())), exclude=frozenset(c.get("exclude", ())),
        costs=None if costs is None else tuple(float(costs.get(t, 0.0)) for t in sources),
        budget=c.get("budget"),
    )


def estimate(data, target: str, settings: EstimateSettings, config, store_path: str = ":memory:",
             constraints: dict | None = None, progress: Callable[[int], None] | None = None,
             on_total: Callable[[int], None] | None = None, runner: JobRunner | None = None) -> Estimate:
    """Run (or resume) the study and fit the surrogate; see the module docstring.

    Training goes through ``runner`` (a :class:`planner.jobs.JobRunner` over an open store) when given,
    else through a runner over the store at ``store_path``."""
    if runner is None:
        with Store(store_path) as store:
            own = JobRunner(store, settings.executor, settings.batch_size, progress)
            return estimate(data, target, settings, config, constraints=constraints, on_total=on_total, runner=own)
    t0 = time.perf_counter()
    start_trained = runner.trained
    t_idx = data.task_index(target)
    target = data.task_names[t_idx]
    src_idx = [i for i in range(data.n_tasks) if i != t_idx]
    sources = [data.task_names[i] for i in src_idx]
    k = len(sources)
    if k < 2:
        raise UsageError(f"the data has {k} source task(s) besides {target!r}; selection needs at least 2")
    if settings.estimator not in ESTIMATORS:
        raise UsageError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {settings.estimator!r}")
    alpha = settings.alpha if settings.alpha is not None else default_alpha(k)
    if not 1 <= alpha < k:
        raise UsageError(f"alpha must lie in 1..{k - 1} for {k} sources, got {alpha}")
    total = math.comb(k, alpha)
    n_max = settings.n_subsets if settings.n_subsets is not None else default_n_subsets(k, alpha)
    if n_max < 10:
        raise UsageError(f"at least 10 subsets are needed to fit and check a surrogate, got {n_max}")
    if n_max > total:
        raise UsageError(f"only {total} distinct subsets of size {alpha} exist among {k} sources, asked for {n_max}")
    if settings.replicate_seeds < 2 or settings.replicate_subsets < 2:
        raise UsageError("replicates need at least 2 subsets and 2 seeds")

    def to_data(s):
        return tuple(sorted(src_idx[i] for i in s))

    pos = {i: n_ for n_, i in enumerate(src_idx)}

    def by_position(records):
        """Records keyed by (subset as positions in ``sources``, replicate)."""
        return {(tuple(sorted(pos[i] for i in tasks)), rep): rec for (tasks, rep), rec in records.items()}

    kind = SubsetRuns(t_idx, config)
    n_rep = min(settings.replicate_subsets, n_max)
    base_jobs = [Job((), r, subset_seed(settings.seed, (), r)) for r in range(settings.repeats)]
    for s in design(k, alpha, n_rep, settings.seed, settings.extra_design)[:n_rep]:
        base_jobs += [Job(to_data(s), r, subset_seed(settings.seed, to_data(s), r)) for r in range(settings.replicate_seeds)]

    usable = gradient_usable(data, config)
    if settings.estimator == "gradient" and not usable[0]:
        raise UsageError(f"the gradient estimator cannot be used here: {usable[1]} (use --estimator retrain)")
    choice: dict[str, Any] = {"asked": settings.estimator}
    chosen = settings.estimator if settings.estimator != "auto" else ("gradient" if usable[0] else "retrain")
    if settings.estimator == "auto" and not usable[0]:
        choice["why"] = f"retrain: the gradient estimator does not apply ({usable[1]})"

    grad = None
    if chosen == "gradient":
        n = n_max
        subsets = design(k, alpha, n, settings.seed, settings.extra_design)
        grad = _gradient_f(data, t_idx, src_idx, [to_data(s) for s in subsets], config, settings)
        if settings.estimator == "auto":
            # measure retraining's seed noise on the replicate design too, and how far the two agree
            if on_total is not None:
                on_total(len(base_jobs))
            rgroups: dict[tuple, list[float]] = {}
            for (s, _r), r in by_position(runner.run(data, kind, base_jobs, settings.seed)).items():
                rgroups.setdefault(s, []).append(r.f)
            rcomp = variance_components({s: v for s, v in rgroups.items() if s})
            gcomp = grad["components"]
            rep_keys = [tuple(s) for s in subsets[:n_rep]]
            agree = spearman([np.mean(rgroups[s]) for s in rep_keys], [grad["f"][i] for i in range(n_rep)])
            choice.update({"gradient_reliability": finite_or_null(gcomp.reliability), "retrain_reliability": finite_or_null(rcomp.reliability),
                           "agreement_spearman": finite_or_null(agree)})
            # The gradient estimate's mean is nearly always the more repeatable f (its networks' offsets
            # cancel between subsets), even where the subsets move one of its networks less than its seed
            # does. So it is kept only when one of its networks clears the reliability bar, and its f is
            # more reliable than retraining's; otherwise retraining, whose one network then decides
            # whether the runs separate the sources.
            g_one, g_mean = gcomp.reliability, grad["crossed"][0]
            choice["gradient_reliability_of_mean"] = finite_or_null(g_mean)
            r_rel = rcomp.reliability
            if math.isfinite(g_one) and g_one < MIN_RELIABILITY:
                chosen, grad = "retrain", None
                choice["why"] = (f"retrain: one gradient base network's reliability {g_one:.2f} is below "
                                 f"{MIN_RELIABILITY} (the subsets move it less than its seed does, though the mean of "
                                 f"its networks reads {fmt(g_mean)}); one retrained network's is {fmt(r_rel)}")
            elif math.isfinite(r_rel) and r_rel > (g_mean if math.isfinite(g_mean) else -1):
                chosen, grad = "retrain", None
                choice["why"] = f"retrain: its reliability {r_rel:.2f} beats the gradient estimate's {fmt(g_mean)}"
            else:
                choice["why"] = (f"gradient: reliability {fmt(g_mean)} (one base network {fmt(g_one)}) against "
                                 f"retraining's {fmt(r_rel)}; agreement on the replicate subsets {fmt(agree)}")
    if grad is not None:
        f = grad["f"]
        return fit_estimate(
            target, sources, subsets, f, grad["stl"], grad["groups"], settings, constraints,
            train_config={"estimator": "gradient", **grad["config"]},
            test_metric="accuracy" if data.n_classes else "rmse", higher_is_better=bool(data.n_classes),
            trained=runner.trained - start_trained, t0=t0, estimator="gradient", choice=choice, stopped="fixed",
            f_replicates=max(2, settings.gradient_seeds), crossed=True)

    # Retraining: the replicate design and the single-task runs first, then the sample in rounds
    # (adaptive unless --subsets fixed the count) until the selected set is stable.
    adaptive = settings.n_subsets is None
    n = n_max if not adaptive else min(n_max, max(n_rep, 10, 4 * k))
    if on_total is not None:
        on_total(len(base_jobs) + n)
    history: list[frozenset] = []
    stopped = "fixed"
    while True:
        subsets = design(k, alpha, n, settings.seed, settings.extra_design)
        jobs = base_jobs + [Job(to_data(s), 0, subset_seed(settings.seed, to_data(s), 0)) for s in subsets]
        by_key = by_position(runner.run(data, kind, jobs, settings.seed))
        if not adaptive:
            break
        X = masks_from_subsets(subsets, k)
        theta = fit_surrogate(X, np.array([by_key[(tuple(s), 0)].f for s in subsets]), kind="linear",
                              random_state=settings.seed).coef_
        history.append(frozenset(np.flatnonzero(theta < 0).tolist()))
        if len(history) >= 3 and history[-1] == history[-2] == history[-3]:
            stopped = "stable"
            break
        if n >= n_max:
            stopped = "max_subsets"
            break
        if settings.time_budget is not None and time.perf_counter() - t0 > settings.time_budget:
            stopped = "time_budget"
            break
        n = min(n_max, n + max(2 * k, n // 2))  # the progress bar grows past its first total

    runs = list(by_key.values())
    f = np.array([by_key[(tuple(s), 0)].f for s in subsets])
    stl_f = [by_key[((), r)].f for r in range(settings.repeats) if ((), r) in by_key]
    groups: dict[tuple, list[float]] = {}
    for (s, _r), rec in by_key.items():
        groups.setdefault(s, []).append(rec.f)
    higher = "accuracy" in runs[0].test
    return fit_estimate(target, sources, subsets, f, stl_f, {s: v for s, v in groups.items() if len(v) > 1},
                        settings, constraints, train_config=config.to_dict(),
                        test_metric="accuracy" if higher else "rmse", higher_is_better=higher,
                        trained=runner.trained - start_trained, t0=t0, estimator="retrain", choice=choice,
                        stopped=stopped)


def gradient_usable(data, config) -> tuple[bool, str]:
    """The gradient estimate covers binary classification and regression with the built-in network."""
    from planner_models.gradient import applies_to

    return applies_to(data, config)


def _gradient_f(data, t_idx: int, src_idx: list[int], subsets: list[tuple[int, ...]], config, settings) -> dict:
    """f of every subset and of the target alone from ``replicate_seeds`` gradient estimators (each one
    network on all tasks with its own seed); f is their mean, and their spread gives the reliability."""
    import dataclasses

    from planner_models.gradient import GradientConfig, GradientEstimator

    base = dataclasses.replace(config, train_fraction=1.0, epoch_fraction=1.0)
    gcfg = GradientConfig(base=base, device=config.device)
    F = []
    for r in range(max(2, settings.gradient_seeds)):
        est = GradientEstimator(data, t_idx, gcfg, seed=subset_seed(settings.seed, (), 10_000 + r), sources=src_idx)
        F.append(est.f(list(subsets) + [()]))
    F = np.asarray(F)
    pos = {i: n for n, i in enumerate(src_idx)}
    keys = [tuple(sorted(pos[i] for i in s)) for s in subsets]
    groups = {key: [float(v) for v in F[:, j]] for j, key in enumerate(keys)}
    return {"f": F[:, :-1].mean(axis=0), "stl": [float(v) for v in F[:, -1]], "groups": groups,
            "components": variance_components(groups), "crossed": crossed_reliability(F[:, :-1].T),
            "config": {"dim": gcfg.dim, "ridge": gcfg.ridge, "seeds": max(2, settings.gradient_seeds),
                       "base": base.to_dict()}}


def fit_estimate(target: str, sources: list[str], subsets: list[tuple[int, ...]], f: np.ndarray, stl_f: list[float],
                 noise_groups: dict[tuple, list[float]], settings: EstimateSettings, constraints: dict | None = None,
                 *, train_config: dict | None = None, test_metric: str = "loss", higher_is_better: bool = False,
                 trained: int = 0, t0: float | None = None, estimator: str = "retrain",
                 choice: dict | None = None, stopped: str = "fixed", f_replicates: int = 1,
                 crossed: bool = False) -> Estimate:
    """The surrogate, its diagnostics, reliability, bootstrap and warnings from measured f values
    (whoever measured them): ``subsets`` are tuples of positions in ``sources`` with ``f`` their loss,
    ``stl_f`` the target alone, ``noise_groups`` repeated measurements of one subset (seed noise).

    Two reliabilities: ``reliability``, of one measurement (one trained network: how far the subset moves
    f against how far the seed does), which decides whether the runs separate the sources; and
    ``reliability_of_f``, of the f the surrogate is fitted to, the mean of ``f_replicates`` measurements
    (Spearman-Brown; with ``crossed``, every subset was measured by the same ``f_replicates`` measurers in
    the same order, e.g. the gradient estimate's base networks, whose offsets cancel between subsets:
    :func:`planner.reliability.crossed_reliability`), which bounds how well the surrogate can rank."""
    from planner.selection import evidence

    t0 = time.perf_counter() if t0 is None else t0
    k = len(sources)
    f = np.asarray(f, dtype=float)
    baseline = float(np.mean(stl_f))
    sizes = [len(s) for s in subsets]
    alpha = max(set(sizes), key=sizes.count)
    comps = variance_components({s: v for s, v in noise_groups.items() if s})
    noise = comps.seed_var
    # f of each subset is the mean of `f_replicates` measurements (gradient: one per base network)
    full = [v for s, v in noise_groups.items() if s and len(v) == f_replicates]
    if crossed and f_replicates > 1 and len(full) >= 2:
        rel_f, *ends = crossed_reliability(np.asarray(full))
        rel_f_interval = tuple(ends)
    else:
        rel_f = comps.reliability_of_mean(f_replicates) if f_replicates > 1 else comps.reliability
        # its 90% interval (Spearman-Brown is increasing, so the ends carry over)
        rel_f_interval = tuple(spearman_brown(v, f_replicates) if math.isfinite(v) else math.nan
                               for v in comps.reliability_interval(0.9))
    # the best held-out Spearman a surrogate can reach against the measured f: a perfect one predicts
    # the true f, which correlates with the measured f at sqrt(reliability of f)
    ceiling = spearman_of_pearson(math.sqrt(max(0.0, rel_f))) if math.isfinite(rel_f) else math.nan
    masks = masks_from_subsets(subsets, k)
    stl_masks = np.zeros((len(stl_f), k))
    stl_y = np.asarray(stl_f, dtype=float)
    counts = np.asarray(masks.sum(axis=0)).ravel().astype(int)

    # The surrogate's form on every row, then repeated K-fold with that form for the held-out figures.
    all_X = stack_rows([masks, stl_masks])
    all_y = np.concatenate([f, stl_y])
    model = fit_surrogate(all_X, all_y, kind=settings.surrogate, random_state=settings.seed)
    kind_name = "pairwise" if isinstance(model, PairwiseSurrogate) else "linear"
    cv = evidence.cross_validate(masks, f, stl_masks, stl_y,
                                 lambda X, y: fit_surrogate(X, y, kind=kind_name, random_state=settings.seed),
                                 folds=settings.cv_folds, repeats=settings.cv_repeats, seed=settings.seed)
    # the learning curve still uses one split (more subsets -> better held-out fit?)
    rng = np.random.default_rng(settings.seed + 7919)
    n_held = max(3, int(round(settings.holdout * len(subsets))))
    split = np.zeros(len(subsets), dtype=bool)
    split[rng.permutation(len(subsets))[:n_held]] = True
    fit_X = stack_rows([masks[~split], stl_masks])
    fit_y = np.concatenate([f[~split], stl_y])
    diagnostics: dict[str, Any] = {
        "n_subsets": int(len(subsets)),
        "n_fit": int(len(subsets)),
        "n_held_out": int(len(subsets)),
        "cv": {"folds": cv.folds, "repeats": cv.repeats},
        "alpha": int(alpha),
        "k": int(k),
        "mse": cv.mse_mean,
        "noise_floor": float(noise),
        "spearman": cv.spearman_mean,
        "spearman_sd": cv.spearman_sd,
        "f1_transfer": f1_transfer(cv.oof, f, baseline),
        "positive_transfer_rate": float(np.mean(f < baseline)),
        "baseline": baseline,
        "surrogate": kind_name,
        "learning_curve": learning_curve(fit_X, fit_y, masks[split], f[split], kind_name, random_state=settings.seed),
        "reliability": finite_or_null(comps.reliability),
        "reliability_of_f": finite_or_null(rel_f),
        "reliability_of_f_interval": [finite_or_null(v) for v in rel_f_interval],
        "spearman_ceiling": finite_or_null(ceiling),
        "reliability_interval": [finite_or_null(v) for v in comps.reliability_interval(0.9)],
        "replicates": {"subsets": comps.n_subsets, "runs": comps.n_runs},
    }

    boot = bootstrap_scores(all_X, all_y, model, settings.n_boot, settings.seed) if settings.n_boot else np.zeros((0, k))
    scores = {t: float(v) for t, v in zip(sources, model.coef_)}
    if len(boot):
        lo, hi = np.percentile(boot, [5, 95], axis=0)
        interval = {t: [float(a), float(b)] for t, a, b in zip(sources, lo, hi)}
    else:
        interval = {t: [v, v] for t, v in scores.items()}
    for t, c in zip(sources, counts):
        if c == 0:  # no data about it: no score and no interval, not a fake zero-width one
            interval[t] = None
    freq = selection_frequencies(boot, model, sources, constraints, target)
    uncertain = [t for t in sources if interval[t] is None or interval[t][0] < 0.0 < interval[t][1]]
    sample_counts = {t: int(c) for t, c in zip(sources, counts)}
    warns = evidence.warnings_for(
        reliability=comps.reliability, spearman_ceiling=ceiling,
        cv_spearman=cv.spearman_mean, cv_spearman_sd=cv.spearman_sd, sample_counts=sample_counts,
        uncertain=uncertain, n_sources=k, surrogate_kind=kind_name, fixed_size=len(set(sizes)) == 1,
        estimator=estimator, reliability_interval=comps.reliability_interval(0.9),
        reliability_of_f=rel_f, f_replicates=f_replicates)
    return Estimate(
        target=target, sources=sources, settings=settings, train_config=train_config or {}, subsets=subsets, f=f,
        stl_f=list(stl_f), baseline=baseline, noise_floor=noise, held=np.ones(len(subsets), dtype=bool), model=model,
        diagnostics=diagnostics, scores=scores, interval=interval, selection_frequency=freq, uncertain=uncertain,
        pred_held=cv.oof, test_metric=test_metric, higher_is_better=higher_is_better,
        seconds=time.perf_counter() - t0, trained=trained, boot_thetas=boot, estimator=estimator,
        reliability=comps.to_dict(), estimator_choice=dict(choice or {}), warnings=warns,
        separable=evidence.separable(comps.reliability, cv.spearman_mean), stopped=stopped,
        sample_counts=sample_counts,
    )


def estimate_from_runs(path: str, target: str, settings: EstimateSettings, constraints: dict | None = None,
                       tasks: list[str] | None = None) -> Estimate:
    """The same surrogate, diagnostics and bootstrap from runs made elsewhere (a RUNS.jsonl file, see
    :mod:`planner.runs_file`): one row per distinct subset with the mean loss over its seeds; the target
    alone from the runs with an empty subset; repeated subsets give the noise floor."""
    from planner.runs_file import read_runs, run_arrays, sources_of

    t0 = time.perf_counter()
    runs = read_runs(path, target=target, tasks=tasks)
    if not runs:
        raise UsageError(f"{path}: no runs in the file")
    arrays = run_arrays(runs, sources_of(runs, target, tasks))
    sources = arrays.sources
    if len(sources) < 2:
        raise UsageError(f"{path}: the runs name {len(sources)} source task(s); selection needs at least 2")
    stl = arrays.single_task
    if not stl.any():
        raise UsageError(f"{path}: no run of the target alone ({{\"subset\": []}}); it is the baseline every plan "
                         "is compared with")
    groups = arrays.replicate_groups()
    subsets = [s for s in arrays.unique if s]
    if len(subsets) < 10:
        raise UsageError(f"{path}: {len(subsets)} distinct non-empty subsets; at least 10 are needed to fit and "
                         "check a surrogate")
    f = np.array([np.mean(groups[s]) for s in subsets])
    noise_groups = {s: v for s, v in groups.items() if len(v) > 1}
    return fit_estimate(target, sources, subsets, f, list(arrays.f[stl]), noise_groups, settings, constraints,
                        train_config={"runs": str(path)}, t0=t0, estimator="runs", stopped="runs",
                        f_replicates=max(1, int(np.median([len(groups[s]) for s in subsets]))))


def selection_frequencies(boot: np.ndarray, model, sources: list[str], constraints: dict | None, target: str) -> dict[str, float]:
    """How often each source is in the optimal plan across bootstrap refits.

    Without pairwise terms or constraints the optimum is {i : theta_i < 0}; otherwise each refit's
    program is solved (with the fitted pairwise terms held fixed).
    """
    if len(boot) == 0:
        return {t: float(v < 0) for t, v in zip(sources, model.coef_)}
    pairs = [(i, j, v) for i, j, v in model.pairwise_ if v != 0.0]
    if not pairs and not constraints:
        return {t: float(v) for t, v in zip(sources, np.mean(boot < 0, axis=0))}
    from planner.solve import solve

    template = selection_problem("boot", target, sources, 0.0, [0.0] * len(sources), pairs, constraints)
    counts = np.zeros(len(sources))
    import dataclasses

    for theta in boot:
        problem = dataclasses.replace(template, linear=tuple(float(v) for v in theta))
        res = solve(problem, "highs", time_limit=10)
        if res.status.has_solution:
            counts += problem.mask_of(res.solution["selected"])
    return {t: float(c / len(boot)) for t, c in zip(sources, counts)}
