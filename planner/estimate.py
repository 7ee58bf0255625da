"""From training runs to a surrogate: sample subsets, train (resumably), fit, diagnose, bootstrap.

The pipeline of ``planner estimate`` (Li, Nguyen, Zhang 2023, Section 2, with the checks the
adaptivity-limits paper asks for):

1. draw ``n`` subsets of size ``alpha`` of the k sources (seeded; n <= 8k by default);
2. train one model per subset plus ``repeats`` single-task models (the empty subset) and
   ``repeats`` replicates of a few subsets (for the noise floor), skipping what the store holds;
3. hold out a fraction of the sampled subsets; fit the surrogate on the rest (the single-task rows
   anchor the intercept at the single-task loss, so theta_i reads as "adding i moves the target's
   loss by theta_i"); measure MSE, Spearman and transfer F1 on the held-out subsets;
4. refit on every subset for the decision, bootstrap the fit for intervals on every theta_i and
   for each task's selection frequency, and say which tasks cannot be told apart from the cut.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from planner.executors import EXECUTORS, Job
from planner.ridge import stack_rows
from planner.sampling import default_alpha, default_n_subsets, design, subset_seed
from planner.status import PlannerError, UsageError
from planner.store import Store
from planner.surrogate import (
    PairwiseSurrogate,
    bootstrap_scores,
    f1_transfer,
    fit_surrogate,
    learning_curve,
    masks_from_subsets,
    spearman,
)


@dataclass(frozen=True)
class EstimateSettings:
    alpha: int | None = None  # subset size (default: 5, below k/2)
    n_subsets: int | None = None  # default: min(8k, C(k, alpha))
    seed: int = 0
    repeats: int = 3  # single-task replicates, and replicates of `noise_subsets` subsets
    noise_subsets: int = 3
    holdout: float = 0.2  # fraction of sampled subsets held out for the diagnostics
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
        data["meta"] = {
            "surrogate_kind": "pairwise" if isinstance(self.model, PairwiseSurrogate) else "linear",
            "diagnostics": self.diagnostics,
            "interval": self.interval,
            "selection_frequency": self.selection_frequency,
            "uncertain": self.uncertain,
            # what decides the result (batch size and executor do not)
            "settings": {k: v for k, v in asdict(self.settings).items() if k not in ("batch_size", "executor")},
            "train_config": self.train_config,
            "test_metric": self.test_metric,
        }
        return data


def _noise_floor(groups: dict[tuple, list[float]]) -> float:
    """Pooled variance of f across repeated seeds of the same subset."""
    num = den = 0.0
    for values in groups.values():
        if len(values) > 1:
            v = np.asarray(values)
            num += float(np.sum((v - v.mean()) ** 2))
            den += len(v) - 1
    return num / den if den else math.nan


def _fault_pause() -> float:
    """Seconds to wait after each stored batch: ``PLANNER_PAUSE_AFTER_BATCH``, a fault-injection hook
    so kill tests can stop a run between two transactions deterministically (0 when unset)."""
    import os

    try:
        return max(0.0, float(os.environ.get("PLANNER_PAUSE_AFTER_BATCH", "0") or 0))
    except ValueError:
        return 0.0


def run_jobs(data, target_idx: int, jobs: list[Job], config, store: Store, study: str, settings: EstimateSettings,
             progress: Callable[[int], None] | None = None) -> int:
    """Train the jobs the store lacks, one transaction per finished batch. Returns how many were trained."""
    from planner.store import subset_key

    names = data.task_names
    done = store.done(study)
    todo = [j for j in jobs if (subset_key(names[i] for i in j.subset), j.replicate) not in done]
    if progress is not None and len(jobs) > len(todo):
        progress(len(jobs) - len(todo))
    if not todo:
        return 0
    runner = EXECUTORS.get(settings.executor)
    if runner is None:
        raise PlannerError(f"unknown executor {settings.executor!r} (choose {', '.join(EXECUTORS)})")
    pause = _fault_pause()

    def write(records) -> None:
        store.add_batch(study, records)
        if pause:
            time.sleep(pause)

    runner(data, target_idx, todo, config, settings.batch_size, write, progress)
    return len(todo)


def estimate(data, target: str, settings: EstimateSettings, config, store_path: str = ":memory:",
             constraints: dict | None = None, progress: Callable[[int], None] | None = None,
             on_total: Callable[[int], None] | None = None) -> Estimate:
    """Run (or resume) the study and fit the surrogate; see the module docstring."""
    t0 = time.perf_counter()
    t_idx = data.task_index(target)
    target = data.task_names[t_idx]
    src_idx = [i for i in range(data.n_tasks) if i != t_idx]
    sources = [data.task_names[i] for i in src_idx]
    k = len(sources)
    if k < 2:
        raise UsageError(f"the data has {k} source task(s) besides {target!r}; selection needs at least 2")
    alpha = settings.alpha if settings.alpha is not None else default_alpha(k)
    if not 1 <= alpha < k:
        raise UsageError(f"alpha must lie in 1..{k - 1} for {k} sources, got {alpha}")
    n = settings.n_subsets if settings.n_subsets is not None else default_n_subsets(k, alpha)
    if n < 10:
        raise UsageError(f"at least 10 subsets are needed to fit and check a surrogate, got {n}")
    total = math.comb(k, alpha)
    if n > total:
        raise UsageError(f"only {total} distinct subsets of size {alpha} exist among {k} sources, asked for {n}")
    subsets = design(k, alpha, n, settings.seed, settings.extra_design)

    def to_data(s):
        return tuple(sorted(src_idx[i] for i in s))

    jobs = [Job((), r, subset_seed(settings.seed, (), r)) for r in range(settings.repeats)]
    jobs += [Job(to_data(s), 0, subset_seed(settings.seed, to_data(s), 0)) for s in subsets]
    for s in subsets[: settings.noise_subsets]:
        jobs += [Job(to_data(s), r, subset_seed(settings.seed, to_data(s), r)) for r in range(1, settings.repeats)]
    if on_total is not None:
        on_total(len(jobs))

    train_settings = config.to_dict()
    with Store(store_path) as store:
        study = store.open_study(data.fingerprint(), target, settings.seed, train_settings)
        trained = run_jobs(data, t_idx, jobs, config, store, study, settings, progress)
        runs = store.runs(study, known=sources)

    pos = {name: i for i, name in enumerate(sources)}
    by_key: dict[tuple[tuple[int, ...], int], Any] = {}
    for r in runs:
        by_key[(tuple(sorted(pos[t] for t in r.subset)), r.replicate)] = r
    missing = [s for s in subsets if (tuple(s), 0) not in by_key]
    if missing:
        raise PlannerError(f"{len(missing)} subset runs are missing from the store after training")
    f = np.array([by_key[(tuple(s), 0)].f for s in subsets])
    stl_f = [by_key[((), r)].f for r in range(settings.repeats) if ((), r) in by_key]
    baseline = float(np.mean(stl_f))
    groups: dict[tuple, list[float]] = {}
    for (s, _r), rec in by_key.items():
        groups.setdefault(s, []).append(rec.f)
    noise = _noise_floor({s: v for s, v in groups.items() if s == () or s in {tuple(x) for x in subsets[: settings.noise_subsets]}})
    any_rec = runs[0]
    higher = "accuracy" in any_rec.test
    metric = "accuracy" if higher else "rmse"

    # Held-out split of the sampled subsets (seeded).
    rng = np.random.default_rng(settings.seed + 7919)
    n_held = max(3, int(round(settings.holdout * len(subsets))))
    held = np.zeros(len(subsets), dtype=bool)
    held[rng.permutation(len(subsets))[:n_held]] = True
    masks = masks_from_subsets(subsets, k)
    stl_masks = np.zeros((len(stl_f), k))
    fit_X = stack_rows([masks[~held], stl_masks])
    fit_y = np.concatenate([f[~held], stl_f])
    model_fit = fit_surrogate(fit_X, fit_y, kind=settings.surrogate, random_state=settings.seed)
    pred_held = model_fit.predict(masks[held])
    diagnostics: dict[str, Any] = {
        "n_subsets": int(len(subsets)),
        "n_fit": int((~held).sum()),
        "n_held_out": int(held.sum()),
        "alpha": int(alpha),
        "k": int(k),
        "mse": float(np.mean((pred_held - f[held]) ** 2)),
        "noise_floor": float(noise),
        "spearman": spearman(pred_held, f[held]),
        "f1_transfer": f1_transfer(pred_held, f[held], baseline),
        "positive_transfer_rate": float(np.mean(f[held] < baseline)),
        "baseline": baseline,
        "surrogate": "pairwise" if isinstance(model_fit, PairwiseSurrogate) else "linear",
        "learning_curve": learning_curve(fit_X, fit_y, masks[held], f[held], settings.surrogate, random_state=settings.seed),
    }

    # Refit on everything for the decision; bootstrap for intervals and selection frequencies.
    all_X = stack_rows([masks, stl_masks])
    all_y = np.concatenate([f, stl_f])
    model = fit_surrogate(all_X, all_y, kind=diagnostics["surrogate"], random_state=settings.seed)
    boot = bootstrap_scores(all_X, all_y, model, settings.n_boot, settings.seed) if settings.n_boot else np.zeros((0, k))
    scores = {t: float(v) for t, v in zip(sources, model.coef_)}
    if len(boot):
        lo, hi = np.percentile(boot, [5, 95], axis=0)
        interval = {t: [float(a), float(b)] for t, a, b in zip(sources, lo, hi)}
    else:
        interval = {t: [v, v] for t, v in scores.items()}
    freq = selection_frequencies(boot, model, sources, constraints, target)
    uncertain = [t for t in sources if interval[t][0] < 0.0 < interval[t][1]]
    return Estimate(
        target=target, sources=sources, settings=settings, train_config=train_settings, subsets=subsets, f=f,
        stl_f=stl_f, baseline=baseline, noise_floor=noise, held=held, model=model, diagnostics=diagnostics,
        scores=scores, interval=interval, selection_frequency=freq, uncertain=uncertain, pred_held=pred_held,
        test_metric=metric, higher_is_better=higher, seconds=time.perf_counter() - t0, trained=trained,
        boot_thetas=boot,
    )


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
    from planner.problems.selection import SelectionProblem
    from planner.solve import solve
    from planner.instance import parse_instance

    base = {
        "schema": 1, "kind": "selection", "name": "boot", "target": target, "tasks": [target, *sources],
        "surrogate": {"intercept": 0.0, "linear": {t: 0.0 for t in sources},
                      "pairwise": [[sources[i], sources[j], v] for i, j, v in pairs]},
    }
    if constraints:
        base["constraints"] = constraints
    template: SelectionProblem = parse_instance(base, "bootstrap")
    counts = np.zeros(len(sources))
    import dataclasses

    for theta in boot:
        problem = dataclasses.replace(template, linear=tuple(float(v) for v in theta))
        res = solve(problem, "highs", time_limit=10)
        if res.status.has_solution:
            counts += problem.mask_of(res.solution["selected"])
    return {t: float(c / len(boot)) for t, c in zip(sources, counts)}
