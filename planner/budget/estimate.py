"""TABA's estimation step from data: a budget instance from learning curves and relatedness probes.

The setting (label budgets, ``docs/formulations.md``): every task starts with an initial pool of
``N_i`` labelled training rows (``initial``, drawn with the seed); the rest of its training rows are
held back, and buying ``n_i`` labels reveals ``n_i`` of them (so ``max_i`` = the held-back count).
Nothing outside the initial pools is looked at, and every measurement is a loss on the task's
validation split (the configured loss: negative margin for classes, squared error for numbers).

1. **Learning curves.** For task i, single-task models are trained on nested subsets of its pool,
   ``m_1 < ... < m_K = N_i`` rows (log-spaced from ``smallest * N_i``), ``repeats`` times each
   (another nesting order and initialisation per repeat). With ``L(m)`` the mean validation loss, the
   gains ``g_k = L(m_1) - L(m_k)`` after ``x_k = m_k - m_1`` labels are fitted by the contract's
   information models with ``n0 = m_1`` (``planner.budget.curves.fit_information_model``):
   geometric ``A * beta^m1 (1 - beta^x) / (1 - beta)`` (the m-th label worth ``A beta^m``) and power
   ``a (m1^-b - (m1 + x)^-b)``. Both have two free numbers; the fit error is the RMSE of the gains,
   and ``model="auto"`` keeps the smaller. The parameters are absolute (per label count), so the
   instance uses them with ``initial = N_i``: the fitted curve continued past the pool. A loss with a
   floor (cross-entropy, 0-1, squared error: 0) caps the fit: its total gain, continued forever, may
   not take the loss below the floor (without it, a curve still falling straight at the end of a
   small pool extrapolates to gains no loss allows).
2. **Relatedness probes.** For every ordered pair, a joint model of {i, j} on both pools is
   compared with task i alone on its pool (same seeds, paired): ``D_ij`` = the fall of i's validation
   loss. ``D_ij`` less one standard error (so noise alone gives nothing; negative transfer gives 0)
   is turned into labels of i by the fitted curve, ``I_i(e) = D``, and ``r[i][j] = e / N_j`` (at most
   ``max_relatedness``): one label of j counts as r[i][j] labels of i.

Curve points need their own rows, so each (task, count, repeat) is its own small call of the
trainer; the probes of one task (alone and with each other task, all repeats) are one batched call.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from planner.jobs import Job, JobRunner, SubsetRuns
from planner.status import InstanceError
from planner.store import Store

FIT_MODELS = ("geometric", "power")
MIN_ROWS = 4
MAX_WEIGHT = 1e12
"""Fewest labelled rows of a curve point (and of an initial pool)."""


@dataclass(frozen=True)
class BudgetEstimateSettings:
    """How the instance is estimated (see the module docstring)."""

    initial: int = 50
    points: int = 5
    smallest: float = 0.25
    repeats: int = 3
    model: str = "auto"
    relatedness: bool = True
    max_relatedness: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.initial < MIN_ROWS:
            problems.append(f"initial must be at least {MIN_ROWS} labelled rows per task")
        if self.points < 2:
            problems.append("a learning curve needs at least 2 points")
        if not 0 < self.smallest < 1:
            problems.append("smallest must be a fraction in (0, 1)")
        if self.repeats < 1:
            problems.append("repeats must be at least 1")
        if self.model not in ("auto",) + FIT_MODELS:
            problems.append(f"model must be auto, geometric or power, got {self.model!r}")
        if not self.max_relatedness >= 0:
            problems.append("max_relatedness must be >= 0")
        if problems:
            raise ValueError("budget estimate: " + "; ".join(problems))


# ---------------------------------------------------------------------------- label pools
@dataclass(frozen=True)
class LabelPools:
    """Per task index: its labelled training rows (the initial pool) and held-back rows, in reveal order."""

    labelled: dict[int, np.ndarray]
    held: dict[int, np.ndarray]

    def revealed(self, counts: Mapping[int, int]) -> dict[int, np.ndarray]:
        """Training rows per task once ``counts[t]`` held-back labels of t are bought (capped)."""
        return {t: np.concatenate([self.labelled[t], self.held[t][: int(counts.get(t, 0))]]) for t in self.labelled}


def label_pools(data, tasks: Sequence[int], initial: int, seed: int) -> LabelPools:
    """Each task's training rows in a seeded order (``default_rng([seed, t])``): the first ``initial``
    are labelled, the rest held back (revealed in this order when labels are bought)."""
    from planner_models.data import TRAIN

    labelled, held = {}, {}
    for t in tasks:
        rows = np.random.default_rng([seed, int(t)]).permutation(data.rows(int(t), TRAIN))
        labelled[int(t)], held[int(t)] = rows[:initial], rows[initial:]
    return LabelPools(labelled, held)


def with_training_rows(data, rows: Mapping[int, np.ndarray]):
    """Only the tasks in ``rows`` (in that order, re-indexed), each with exactly those training rows;
    their validation and test rows are kept."""
    from planner_models.data import TRAIN

    keep = np.zeros(len(data.y), dtype=bool)
    for t, r in rows.items():
        keep |= (data.task == t) & (data.split != TRAIN)
        keep[np.asarray(r, dtype=np.int64)] = True
    idx = np.flatnonzero(keep)
    taken = replace(data, X=data.X[idx], y=data.y[idx], task=data.task[idx], split=data.split[idx],
                    notes=list(data.notes), info=dict(data.info), dropped_tasks=dict(data.dropped_tasks))
    return taken.subset_tasks([int(t) for t in rows])


def curve_counts(pool: int, points: int, smallest: float) -> list[int]:
    """Log-spaced label counts from ``max(MIN_ROWS, smallest * pool)`` to ``pool`` (distinct integers)."""
    lo = max(MIN_ROWS, int(round(smallest * pool)))
    if pool <= lo:
        return [pool]
    raw = np.geomspace(lo, pool, points)
    return sorted({int(round(v)) for v in raw} | {pool})


# ---------------------------------------------------------------------------- fits
@dataclass
class CurveFit:
    """One task's learning curve and its fitted information models."""

    task: str
    pool: int                     # N_i, labelled rows in the initial pool
    held: int                     # rows that can be bought (max_i)
    labels: list[int]             # m_k
    loss: list[float]             # mean validation loss at m_k
    spread: list[float]           # standard deviation over repeats
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    chosen: str = "geometric"

    @property
    def info(self) -> dict[str, Any]:
        return self.fits[self.chosen]["info"]

    @property
    def scale(self) -> float:
        return self.fits[self.chosen]["scale"]

    @property
    def weight(self) -> float:
        """The amplitude written as the task's weight. A geometric fit with beta near 0 has a huge
        amplitude times a vanishing beta^N; when the gain left past the pool is nil it is written as 0."""
        if self.scale <= MAX_WEIGHT:
            return self.scale
        if self.value(math.inf) <= 1e-12 * max(1e-12, abs(self.loss[0] - self.loss[-1])):
            return 0.0
        raise InstanceError("", f"curves.{self.task}", f"fitted amplitude {self.scale:.3g} is out of range")

    def value(self, n: float) -> float:
        """The chosen model's gain after n labels beyond the pool: scale * I(n; N_i)."""
        return self.scale * float(_info_object(self.info).value(n, self.pool))

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "pool": self.pool, "held": self.held, "labels": self.labels,
                "loss": self.loss, "spread": self.spread, "fits": self.fits, "chosen": self.chosen}


def _info_object(info: Mapping[str, Any]):
    from planner.budget.problem import Geometric, Power

    if info["model"] == "geometric":
        return Geometric(info["beta"])
    return Power(info["a"], info["b"])


def fit_curve(labels: Sequence[int], loss: Sequence[float], model: str = "auto",
              floor: float | None = None) -> tuple[dict[str, dict[str, Any]], str]:
    """Fit the geometric and power models to a curve of validation loss against label count.

    ``labels`` are absolute counts (increasing), ``loss`` the loss at each. Returns
    ``({model: {"info", "scale", "rmse"} or {"error"}}, chosen)``: ``chosen`` is ``model`` itself, or
    under ``auto`` the fit with the smaller RMSE of the gains (geometric when neither rises: a task
    whose loss does not fall gets amplitude 0, so no labels are worth buying for itself).

    ``floor``: the least the loss can be (0 for cross-entropy, 0-1 and squared error). A fit whose
    total gain, continued forever, would take the loss below it (a curve still falling straight at
    the end of the pool, beta -> 1) is refitted with its amplitude capped there (``"capped": true``).
    """
    from planner.budget.curves import fit_information_model

    xs = np.asarray(labels, dtype=float)
    ys = np.asarray(loss, dtype=float)
    m1 = int(xs[0])
    new, gains = xs - m1, ys[0] - ys
    headroom = None if floor is None else max(0.0, float(ys[0]) - floor)
    fits: dict[str, dict[str, Any]] = {}
    for name in FIT_MODELS:
        capped = False
        try:
            info, scale = fit_information_model(new, gains, model=name, initial=m1)
            if headroom is not None and scale * float(_info_object(info).value(math.inf, m1)) > headroom:
                info, scale = _capped_fit(new, gains, name, m1, headroom)
                capped = True
        except InstanceError as exc:
            fits[name] = {"error": exc.why}
            continue
        pred = scale * _info_object(info).value(new, m1)
        rmse = float(np.sqrt(np.mean((pred - gains) ** 2)))
        fits[name] = {"info": info, "scale": float(scale), "rmse": rmse}
        if capped:
            fits[name]["capped"] = True
    ok = [m for m in FIT_MODELS if "info" in fits[m]]
    if model != "auto":
        if model not in ok:
            raise InstanceError("", "model", f"the {model} model cannot fit this curve: {fits[model]['error']}")
        return fits, model
    return fits, min(ok, key=lambda m: (fits[m]["rmse"], m != "geometric"))


def _capped_fit(new: np.ndarray, gains: np.ndarray, model: str, m1: int, headroom: float) -> tuple[dict, float]:
    """Least squares of ``amp * shape`` with the total gain ``amp * shape(inf)`` at most ``headroom``."""
    from scipy.optimize import minimize_scalar

    from planner.budget.problem import Geometric, Power

    make = (lambda q: Geometric(q)) if model == "geometric" else (lambda q: Power(1.0, q))
    bounds = (1e-6, 1 - 1e-9) if model == "geometric" else (1e-4, 5.0)

    def amp_and_loss(q: float) -> tuple[float, float]:
        shape = make(q).value(new, m1)
        denom = float(shape @ shape)
        amp = max(0.0, float(shape @ gains) / denom) if denom > 0 else 0.0
        amp = min(amp, headroom / float(make(q).value(math.inf, m1)))
        return amp, float(np.sum((amp * shape - gains) ** 2))

    q = float(minimize_scalar(lambda v: amp_and_loss(v)[1], bounds=bounds, method="bounded").x)
    amp = amp_and_loss(q)[0]
    if model == "geometric":
        return {"model": "geometric", "beta": q}, amp
    if amp <= 0:
        raise InstanceError("", "curve", "no room below the loss floor; a power model cannot fit")
    return {"model": "power", "a": amp, "b": q}, 1.0


def effective_labels(curve: CurveFit, gain: float, most: float) -> float:
    """Labels e of the task with scale * I(e) = gain, in [0, most] (``most`` when the curve never gets there)."""
    if gain <= 0 or curve.scale <= 0:
        return 0.0
    if curve.value(most) <= gain:
        return most
    lo, hi = 0.0, most
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if curve.value(mid) < gain else (lo, mid)
    return (lo + hi) / 2


# ---------------------------------------------------------------------------- the estimate
@dataclass
class BudgetEstimate:
    """Everything measured: the curves with their fits, the probes and the relatedness matrix."""

    tasks: list[str]
    curves: dict[str, CurveFit]
    settings: BudgetEstimateSettings
    probe_gain: list[list[float]] | None = None     # D_ij, mean fall of i's loss when trained with j
    probe_se: list[list[float]] | None = None       # its standard error over repeats
    relatedness: list[list[float]] | None = None     # r[i][j]
    trained: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def instance_dict(self, name: str, budget: float, costs: Mapping[str, float],
                      weights: Mapping[str, float] | None = None, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A validated budget instance: per task its cost, initial pool, max (held-back rows), the fitted
        model (weight = task weight x fitted amplitude) and the relatedness matrix when probed."""
        from planner.checks import Checker
        from planner.budget.problem import BudgetProblem

        tasks = []
        for tid in self.tasks:
            c = self.curves[tid]
            tasks.append({"id": tid, "cost": float(costs[tid]), "initial": c.pool, "max": c.held,
                          "weight": float((weights or {}).get(tid, 1.0)) * c.weight, "info": c.info})
        data: dict[str, Any] = {"schema": 1, "kind": "budget", "name": name, "budget": budget, "tasks": tasks}
        info_meta = dict(meta or {})
        info_meta["estimate"] = self.to_dict()
        data["meta"] = info_meta
        if self.relatedness is not None and any(v for i, row in enumerate(self.relatedness)
                                                for j, v in enumerate(row) if i != j):
            data["relatedness"] = [[1.0 if i == j else float(v) for j, v in enumerate(row)]
                                   for i, row in enumerate(self.relatedness)]
        BudgetProblem.from_dict(data, Checker("estimated instance"))
        return data

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {
            "method": "learning curves on nested subsets of each initial pool (validation loss), "
                      "geometric and power fits; relatedness from paired joint-training probes",
            "settings": {"initial": s.initial, "points": s.points, "smallest": s.smallest, "repeats": s.repeats,
                         "model": s.model, "relatedness": s.relatedness, "max_relatedness": s.max_relatedness,
                         "seed": s.seed},
            "curves": {t: self.curves[t].to_dict() for t in self.tasks},
            "trained": self.trained, "seconds": round(self.seconds, 3),
        }
        if self.relatedness is not None:
            out["probe_gain"] = self.probe_gain
            out["probe_se"] = self.probe_se
            out["relatedness"] = self.relatedness
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def estimate_budget(data, tasks: Sequence[str | int], settings: BudgetEstimateSettings, config,
                    progress: Callable[[int], None] | None = None,
                    total: Callable[[int], None] | None = None, store_path: str = ":memory:",
                    executor: str = "local", batch_size: int = 128) -> BudgetEstimate:
    """Measure learning curves (and, when asked, relatedness probes) of ``tasks`` on their initial pools.

    ``config`` is a ``planner_models.train.TrainConfig``; ``progress(k)`` is told of every k models trained
    or found in the store, ``total(n)`` once of the number of models. Every model goes through the job
    runner: a curve point is a single-task run on the data restricted to that many labels, a probe a
    pair run on the initial pools; a rerun with the same store trains nothing.
    """
    with Store(store_path) as store:
        runner = JobRunner(store, executor, batch_size, progress)
        return _estimate_budget(data, tasks, settings, config, total, runner)


def _estimate_budget(data, tasks, settings: BudgetEstimateSettings, config, total, runner: JobRunner) -> BudgetEstimate:
    from planner_models.data import DataError

    t0 = time.perf_counter()
    idx = [data.task_index(t) for t in tasks]
    if len(set(idx)) != len(idx):
        raise DataError("a task is listed twice")
    names = [data.task_names[i] for i in idx]
    pools = label_pools(data, idx, settings.initial, settings.seed)
    notes = []
    for t, name in zip(idx, names):
        n = len(pools.labelled[t])
        if n < MIN_ROWS:
            raise DataError(f"task {name!r} has {n} training rows; a learning curve needs at least {MIN_ROWS}")
        if n < settings.initial:
            notes.append(f"task {name!r} has only {n} training rows: all labelled, none to buy")
    counts = {t: curve_counts(len(pools.labelled[t]), settings.points, settings.smallest) for t in idx}
    for t, name in zip(idx, names):
        if len(counts[t]) < 2:
            raise DataError(f"task {name!r}: its pool of {len(pools.labelled[t])} rows is too small for a curve")
    from planner_models.losses import resolve_loss

    floor = None if resolve_loss(config.loss, data.n_classes) == "margin" else 0.0
    if floor is None:
        notes.append("the negative margin has no floor, so fitted curves are not capped; "
                     "--loss ce caps each task's total gain at its loss")
    R = settings.repeats
    seeds = [settings.seed * 1000 + r for r in range(R)]
    n_curve = sum(len(c) for c in counts.values()) * R
    n_probe = len(idx) * len(idx) * R if settings.relatedness and len(idx) > 1 else 0
    if total is not None:
        total(n_curve + n_probe)

    curves: dict[str, CurveFit] = {}
    for t, name in zip(idx, names):
        pool = pools.labelled[t]
        losses = np.zeros((len(counts[t]), R))
        for r in range(R):
            order = np.random.default_rng([settings.seed, t, r]).permutation(pool)
            for k, m in enumerate(counts[t]):
                d = with_training_rows(data, {t: order[:m]})
                runs = runner.run(d, SubsetRuns(0, config), [Job((), r, seeds[r])], settings.seed)
                losses[k, r] = runs[((), r)].f
        mean = losses.mean(1)
        fits, chosen = fit_curve(counts[t], mean, settings.model, floor)
        curves[name] = CurveFit(task=name, pool=len(pool), held=len(pools.held[t]), labels=list(counts[t]),
                                loss=[float(v) for v in mean],
                                spread=[float(v) for v in (losses.std(1, ddof=1) if R > 1 else np.zeros(len(mean)))],
                                fits=fits, chosen=chosen)
        if curves[name].scale == 0:
            notes.append(f"task {name!r}: its validation loss does not fall with more labels in the pool; "
                         "its own labels are valued at 0")
    est = BudgetEstimate(tasks=names, curves=curves, settings=settings, trained=n_curve, notes=notes)

    if n_probe:
        joint = with_training_rows(data, {t: pools.labelled[t] for t in idx})
        T = len(idx)
        gain = np.zeros((T, T))
        se = np.zeros((T, T))
        rel = np.zeros((T, T))
        for i in range(T):
            others = [j for j in range(T) if j != i]
            jobs = [Job((), r, seeds[r]) for r in range(R)] + [Job((j,), r, seeds[r]) for j in others for r in range(R)]
            runs = runner.run(joint, SubsetRuns(i, config), jobs, settings.seed)
            alone = np.asarray([runs[((), r)].f for r in range(R)])
            ci = curves[names[i]]
            for n_j, j in enumerate(others):
                with_j = np.asarray([runs[((j,), r)].f for r in range(R)])
                diff = alone - with_j  # paired by seed: the fall of i's loss when trained with j
                gain[i, j] = float(diff.mean())
                se[i, j] = float(diff.std(ddof=1) / math.sqrt(R)) if R > 1 else 0.0
                pool_j = curves[names[j]].pool
                e = effective_labels(ci, gain[i, j] - se[i, j], settings.max_relatedness * pool_j)
                rel[i, j] = e / pool_j
        est.probe_gain = gain.tolist()
        est.probe_se = se.tolist()
        est.relatedness = rel.tolist()
    est.trained = runner.trained
    est.seconds = time.perf_counter() - t0
    return est


# ---------------------------------------------------------------------------- parsing --costs
def parse_costs(text: str, task_names: Sequence[str]) -> dict[str, float]:
    """``task=c,task=c,...`` (``*=c`` gives every task not named cost c) -> ``{task: cost}`` in data order.

    Raises ``ValueError`` with one line naming what is wrong.
    """
    if not text or not text.strip():
        raise ValueError("expected task=cost pairs separated by commas, got nothing")
    named: dict[str, float] = {}
    default = None
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"{part!r} is not task=cost")
        task, _, raw = part.rpartition("=")
        task = task.strip()
        try:
            cost = float(raw)
        except ValueError:
            raise ValueError(f"cost of {task!r} is not a number: {raw.strip()!r}") from None
        if not (math.isfinite(cost) and cost > 0):
            raise ValueError(f"cost of {task!r} must be a positive number, got {raw.strip()}")
        if not task:
            raise ValueError(f"{part!r} names no task")
        if task == "*":
            if default is not None:
                raise ValueError("'*' is given twice")
            default = cost
            continue
        if task in named:
            raise ValueError(f"task {task!r} is given twice")
        if task not in task_names:
            shown = ", ".join(task_names[:8]) + (", ..." if len(task_names) > 8 else "")
            raise ValueError(f"unknown task {task!r}; tasks are: {shown}")
        named[task] = cost
    if default is None and not named:
        raise ValueError("expected task=cost pairs separated by commas")
    if default is not None:
        return {t: named.get(t, default) for t in task_names}
    return {t: named[t] for t in task_names if t in named}
