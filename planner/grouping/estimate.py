"""Task grouping from real training estimate affinities, solve, train, compare.

Three estimators of the onto-oriented matrix ``M[a][b]`` (the effect of b onto a) over the chosen tasks:

* ``subsets``: group models on ``n_subsets`` sampled task subsets of size ``alpha`` (no target; every
  run gives every member's validation loss ``L_a(S)``). With ``mu_a`` = a's mean loss over the
  subsets holding a and ``mu_ab`` its mean over the subsets holding a and b,
  ``M[a][b] = (mu_a - mu_ab) / |mu_a|``: the relative improvement of a's loss when b is present
  (higher = b helps a; the diagonal is 0). Default: partition, ``pairwise_mean_by_size``, max.
* ``tag``: the TAG lookahead during one model with every task (:func:`planner_models.grouping.tag_affinities`):
  ``M[a][b]`` = mean over steps of ``1 - L_a(after a step on b) / L_a(before)``. Default: cover,
  rule ``tag``, max, mean over tasks (as in the TAG paper).
* ``hoa``: single-task and pair models; ``M[a][a]`` = a's single-task validation loss, ``M[a][b]`` =
  a's validation loss in the pair {a, b}. Default: cover, rule ``hoa``, min, sum over tasks
  (Standley et al.'s higher-order approximation).

Budget: every network costs the training rows of its members (rows seen per epoch), so
``budget`` caps the rows summed over the chosen networks; single-task training of every task, or
one all-in-one network, costs the total ``R`` of the tasks' training rows.

Every trained model lands in the store (one study per training configuration, shared by the
methods: a pair model trained for ``hoa`` is reused by ``subsets`` with ``alpha = 2`` or by a
rerun), so an interrupted or repeated run trains only what is missing. The final comparison trains,
with the full configuration (``train_fraction = epoch_fraction = 1``), one model per chosen group,
one per task alone and one with every task, ``final_seeds`` seeds each; each task's test metric is
taken from the chosen group that serves it (the solution's ``served_by``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from planner.sampling import sample_fixed_size, subset_seed
from planner.status import PlannerError
from planner.jobs import GroupRuns, Job, JobRunner
from planner.store import RunRecord, Store

METHODS = ("subsets", "tag", "hoa")
# per method: mode, group value rule, sense, aggregate
DEFAULTS = {
    "subsets": ("partition", "pairwise_mean_by_size", "max", "sum"),
    "tag": ("cover", "tag", "max", "mean"),
    "hoa": ("cover", "hoa", "min", "sum"),
}
MODELS_PER_BATCH = 16   # models per store transaction


class GroupingError(PlannerError):
    """Bad settings for ``planner group`` (exit code 2)."""

    exit_code = 2


class NoPlan(PlannerError):
    """The grouping instance has no solution (infeasible: 3, nothing found in time: 4)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class GroupSettings:
    method: str
    max_groups: int
    mode: str | None = None          # default per method (DEFAULTS)
    tasks: tuple[str, ...] | None = None   # None: every task of the data
    seed: int = 0
    alpha: int | None = None         # subsets: subset size (default max(2, n // 2))
    n_subsets: int | None = None     # subsets: how many (default min(C(n, alpha), 6n))
    final_seeds: int = 1
    budget: float | None = None      # rows over the chosen networks (see the module docstring)
    max_group_size: int | None = None
    solver: str = "auto"
    time_limit: float | None = None
    lookahead_lr: float | None = None  # tag: SGD step of the lookahead (default: the training lr)
    tag_every: int = 1               # tag: lookahead at every k-th step
    executor: str = "local"          # where models are trained (planner.executors)
    batch_size: int = MODELS_PER_BATCH  # models per store transaction
    estimator: str = "retrain"       # subsets: retrain one group model per subset, or the gradient estimate


def parse_budget(text: str | None, total_rows: int) -> float | None:
    """``--rows-budget``: a number of training rows, or ``<x>x``: x times the tasks' total training rows."""
    if text is None:
        return None
    s = str(text).strip().lower()
    try:
        value = float(s[:-1]) * total_rows if s.endswith("x") else float(s)
    except ValueError:
        raise GroupingError(f"--rows-budget: expected a number of rows or a multiple like 1.5x, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise GroupingError(f"--rows-budget: must be positive, got {text!r}")
    return value


def resolve_tasks(data, tasks: Sequence[str] | None) -> list[int]:
    """Indices of the chosen tasks (all by default); unknown names are a usage error."""
    from planner_models.data import DataError

    if not tasks:
        return list(range(data.n_tasks))
    idx = []
    for t in tasks:
        try:
            i = data.task_index(t)
        except DataError as exc:
            raise GroupingError(f"--tasks: {exc}") from None
        if i in idx:
            raise GroupingError(f"--tasks: {t!r} is listed twice")
        idx.append(i)
    return idx


def _resolved(config, data):
    """Estimation loss for grouping: ``auto`` means cross-entropy (classification) or squared error,
    positive losses whose ratios the ``subsets`` and ``tag`` normalisations need."""
    if config.loss == "auto":
        return dataclasses.replace(config, loss="ce" if data.n_classes else "mse")
    return config


def _config_hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------- training through the store
class _Models:
    """Group models of one training configuration, through the job runner (store + executor)."""

    def __init__(self, runner: JobRunner, data, config, seed: int):
        self.runner, self.data, self.kind, self.seed = runner, data, GroupRuns(config), seed

    def get(self, groups: Sequence[Sequence[int]], replicates: int = 1) -> dict[tuple[tuple[int, ...], int], RunRecord]:
        """Runs for every (group, replicate), training what the store lacks; keyed by sorted indices."""
        jobs = []
        for g in groups:
            key = tuple(sorted(int(i) for i in g))
            jobs += [Job(key, r, subset_seed(self.seed, key, r)) for r in range(replicates)]
        return self.runner.run(self.data, self.kind, jobs, self.seed)


def _test_value(rec: RunRecord, task: str, metric: str) -> float:
    return float(rec.test[f"{task}|{metric}"])


# ---------------------------------------------------------------------------- estimators
def n_models(settings: GroupSettings, n: int) -> int:
    """Models the estimation step trains (before the store is consulted)."""
    if settings.method == "hoa":
        return n + n * (n - 1) // 2
    if settings.method == "tag":
        return 1
    alpha, m = subsets_design(settings, n)
    return m


def subsets_design(settings: GroupSettings, n: int) -> tuple[int, int]:
    alpha = settings.alpha if settings.alpha is not None else max(2, n // 2)
    if n < 3:
        raise GroupingError(f"--method subsets needs at least 3 tasks, got {n}")
    if not 2 <= alpha < n:
        raise GroupingError(f"--alpha must lie in 2..{n - 1} for {n} tasks, got {alpha}")
    total = math.comb(n, alpha)
    m = settings.n_subsets if settings.n_subsets is not None else min(total, 6 * n)
    if m > total:
        raise GroupingError(f"only {total} distinct subsets of size {alpha} exist among {n} tasks, asked for {m}")
    if m < 2:
        raise GroupingError("--subsets must be at least 2")
    return alpha, m


def affinity_subsets(models: _Models, tasks: list[int], settings: GroupSettings) -> tuple[np.ndarray, dict]:
    n = len(tasks)
    alpha, m = subsets_design(settings, n)
    design = [tuple(tasks[i] for i in s) for s in sample_fixed_size(n, alpha, m, settings.seed)]
    if settings.estimator == "gradient":
        return affinity_subsets_gradient(models.data, tasks, design, models.kind.config, settings, alpha, m)
    runs = models.get(design)
    names = models.data.task_names
    pos = {t: i for i, t in enumerate(tasks)}
    members = [[pos[t] for t in g] for g in design]
    losses = [{pos[t]: runs[(tuple(sorted(g)), 0)].val_losses.get(names[t]) for t in g} for g in design]
    M, info = affinity_from_losses(n, members, losses)
    info.update({"alpha": alpha, "n_subsets": m})
    return M, info


def affinity_subsets_gradient(data, tasks: list[int], design, config, settings: GroupSettings, alpha: int, m: int):
    """The same subsets affinity with each member's loss in each sampled group from the gradient estimate
    (:mod:`planner_models.gradient`): for every task a, one network on the chosen tasks with a as the target,
    and a's linearised loss with the other members of each group that holds it. Nothing is trained per
    group, so many more groups cost little."""
    from planner_models.gradient import GradientConfig, GradientEstimator, applies_to

    usable, why = applies_to(data, config)
    if not usable:
        raise GroupingError(f"the gradient estimate does not apply: {why}; use --estimator retrain")
    base = dataclasses.replace(config, train_fraction=1.0, epoch_fraction=1.0)
    pos = {t: i for i, t in enumerate(tasks)}
    members = [[pos[t] for t in g] for g in design]
    losses: list[dict[int, float]] = [{} for _ in design]
    for a in tasks:
        others = [t for t in tasks if t != a]
        holding = [r for r, g in enumerate(design) if a in g]
        est = GradientEstimator(data, a, GradientConfig(base=base, device=config.device),
                                seed=subset_seed(settings.seed, (a,), 7), sources=others)
        f = est.f([tuple(t for t in design[r] if t != a) for r in holding])
        for r, v in zip(holding, f):
            losses[r][pos[a]] = float(v)
    M, info = affinity_from_losses(len(tasks), members, losses)
    info.update({"alpha": alpha, "n_subsets": m, "estimator": "gradient"})
    return M, info


def affinity_from_losses(n: int, members: Sequence[Sequence[int]], losses: Sequence[dict[int, float | None]]):
    """The subsets affinity from measured group runs: ``members[r]`` the tasks (0..n-1) of run r and
    ``losses[r][a]`` task a's validation loss in it. M[a][b] = (mu_a - mu_ab) / |mu_a|, with mu_a a's
    mean loss over the runs holding a and mu_ab over those holding a and b (onto convention)."""
    sums = np.zeros(n)
    cnt = np.zeros(n)
    psum = np.zeros((n, n))
    pcnt = np.zeros((n, n))
    for idx, loss in zip(members, losses):
        for a in idx:
            v = loss.get(a)
            if v is None or not math.isfinite(v):
                continue
            sums[a] += v
            cnt[a] += 1
            for b in idx:
                psum[a, b] += v
                pcnt[a, b] += 1
    mu = np.divide(sums, cnt, out=np.full(n, np.nan), where=cnt > 0)
    mu_ab = np.divide(psum, pcnt, out=np.full((n, n), np.nan), where=pcnt > 0)
    scale = np.abs(mu)[:, None]
    M = np.where((pcnt > 0) & (scale > 0), (mu[:, None] - mu_ab) / np.where(scale > 0, scale, 1.0), 0.0)
    np.fill_diagonal(M, 0.0)
    unseen = int(((pcnt == 0) & ~np.eye(n, dtype=bool)).sum() // 2)
    return M, {"pairs_never_together": unseen, "together": pcnt.astype(int).tolist()}


def affinity_runs_file(path: str, tasks: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, dict]:
    """The subsets affinity from a RUNS.jsonl made elsewhere: each line's group is its ``subset`` and its
    ``losses`` must hold every member's validation loss."""
    from planner.runs_file import read_runs
    from planner.status import InstanceError

    runs = read_runs(path, tasks=tasks)
    names = list(tasks) if tasks is not None else sorted({t for r in runs for t in r.subset})
    pos = {t: i for i, t in enumerate(names)}
    members, losses = [], []
    for r in runs:
        missing = [t for t in r.subset if t not in (r.losses or {})]
        if missing:
            raise InstanceError(str(path), f"line {r.line}",
                                f"'losses' lacks {', '.join(map(repr, missing[:3]))}: grouping needs every member's loss")
        if len(r.subset) < 2:
            continue  # a single task's run carries no pair information
        members.append([pos[t] for t in r.subset])
        losses.append({pos[t]: float(r.losses[t]) for t in r.subset})
    if len(names) < 2 or not members:
        raise InstanceError(str(path), "runs", "no run with two or more tasks: nothing to group")
    M, info = affinity_from_losses(len(names), members, losses)
    info.update({"runs": len(runs), "source": str(path)})
    return names, M, info


def affinity_hoa(models: _Models, tasks: list[int], settings: GroupSettings) -> tuple[np.ndarray, dict]:
    n = len(tasks)
    names = models.data.task_names
    groups = [(t,) for t in tasks] + [(tasks[a], tasks[b]) for a in range(n) for b in range(a + 1, n)]
    runs = models.get(groups)
    M = np.zeros((n, n))
    for a in range(n):
        M[a, a] = runs[((tasks[a],), 0)].val_losses[names[tasks[a]]]
        for b in range(n):
            if a != b:
                rec = runs[(tuple(sorted((tasks[a], tasks[b]))), 0)]
                M[a, b] = rec.val_losses[names[tasks[a]]]
    if not np.isfinite(M).all():
        raise PlannerError("a task has no validation loss (no validation rows?); HOA needs one for every task")
    return M, {"models": len(groups)}


def affinity_tag(store: Store, data, tasks: list[int], config, settings: GroupSettings,
                 progress: Callable[[int], None] | None) -> tuple[np.ndarray, dict]:
    from planner_models.grouping import tag_affinities

    names = data.task_names
    lr = settings.lookahead_lr
    st = {"kind": "tag", "train": config.to_dict(), "tasks": [names[t] for t in tasks],
          "lookahead_lr": lr, "every": settings.tag_every}
    study = store.open_study(data.fingerprint(), f"tag:{_config_hash(st)}", settings.seed, st)
    stored = store.runs(study, known=data.task_names)
    n = len(tasks)
    if stored:
        rec = stored[0]
        M = np.array([[rec.val_losses[f"{names[a]}|{names[b]}"] for b in tasks] for a in tasks])
        info = {"trained": False, "lookahead_lr": rec.test.get("lookahead_lr"), "seconds": rec.seconds}
        if progress is not None:
            progress(1)
        return M, info
    seed = subset_seed(settings.seed, tuple(sorted(tasks)), 0)
    res = tag_affinities(data, tasks, config, seed, lookahead_lr=lr, every=settings.tag_every)
    M = np.array(res.matrix)
    vals = {f"{names[tasks[a]]}|{names[tasks[b]]}": float(M[a, b]) for a in range(n) for b in range(n)}
    store.add_batch(study, [RunRecord(subset=tuple(names[t] for t in tasks), replicate=0, seed=seed, f=res.model.f,
                                      val_losses=vals, test={"lookahead_lr": res.lookahead_lr},
                                      seconds=res.seconds, device=res.model.device)])
    if progress is not None:
        progress(1)
    return M, {"trained": True, "lookahead_lr": res.lookahead_lr, "seconds": res.seconds,
               "min_steps": int(np.min(res.steps))}


# ---------------------------------------------------------------------------- the command's work
def build_instance(task_names: list[str], M: np.ndarray, settings: GroupSettings, rows: dict[str, int],
                   name: str, meta: dict | None = None) -> dict[str, Any]:
    from planner.grouping.schema import instance_from_affinity

    mode, rule, sense, aggregate = DEFAULTS[settings.method]
    mode = settings.mode or mode
    hi = settings.max_group_size
    return instance_from_affinity(
        task_names, M.tolist(), name=name, mode=mode, rule=rule, sense=sense, aggregate=aggregate,
        convention="onto", diagonal="ignore", max_groups=settings.max_groups,
        group_size=(None, hi) if hi else None,
        task_resources={t: {"rows": float(rows[t])} for t in task_names},
        budgets={"rows": settings.budget} if settings.budget is not None else None, meta=meta)


def run_group(data, settings: GroupSettings, config, store_path: str = ":memory:",
              progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
              instance_name: str = "group", on_instance: Callable[[dict[str, Any]], None] | None = None,
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Estimate, solve, train the plan and the baselines; returns (report, instance mapping).

    ``on_instance(instance)`` is called with the estimated instance before it is solved (the CLI writes
    it then, so the affinities survive a solve or a final training that fails or is stopped)."""
    from planner.instance import parse_instance
    from planner.solve import solve

    t0 = time.perf_counter()
    if settings.method not in METHODS:
        raise GroupingError(f"unknown method {settings.method!r} (choose {', '.join(METHODS)})")
    tasks = resolve_tasks(data, settings.tasks)
    n = len(tasks)
    if n < 2:
        raise GroupingError(f"grouping needs at least 2 tasks, got {n}")
    if settings.max_group_size is not None and settings.max_group_size < (1 if settings.method == "hoa" else 2):
        raise GroupingError("--max-group-size is too small for this method")
    names = [data.task_names[t] for t in tasks]
    counts = data.counts()
    for t in tasks:
        if counts[t, 1] == 0 or counts[t, 2] == 0:
            raise GroupingError(f"task {data.task_names[t]!r} has no validation or no test rows")
    config = _resolved(config, data)
    final_config = dataclasses.replace(config, train_fraction=1.0, epoch_fraction=1.0)
    rows = {data.task_names[t]: int(counts[t, 0]) for t in tasks}

    total_rows = sum(rows.values())
    if settings.budget is not None and settings.budget < total_rows - 1e-9:
        # every task lies in a chosen network, so any plan costs at least the tasks' own rows
        raise NoPlan(f"the grouping instance is infeasible: the budget {settings.budget:g} is below the "
                     f"{total_rows} training rows of the tasks, the cost of the cheapest cover", 3)
    est_models = n_models(settings, n)
    if on_total is not None:
        on_total(est_models + settings.final_seeds * (n + 1 + settings.max_groups))
    stages: dict[str, float] = {}
    with Store(store_path) as store:
        runner = JobRunner(store, settings.executor, settings.batch_size, progress)
        models = _Models(runner, data, config, settings.seed)
        t1 = time.perf_counter()
        if settings.method == "hoa":
            M, info = affinity_hoa(models, tasks, settings)
        elif settings.method == "subsets":
            M, info = affinity_subsets(models, tasks, settings)
        else:
            M, info = affinity_tag(store, data, tasks, config, settings, progress)
        stages["estimate"] = time.perf_counter() - t1

        meta = {"method": settings.method, "estimate": info, "train_config": config.to_dict(),
                "seed": settings.seed}
        instance = build_instance(names, M, settings, rows, instance_name, meta)
        problem = parse_instance(instance, source=instance_name)
        if on_instance is not None:
            on_instance(instance)
        t1 = time.perf_counter()
        result = solve(problem, settings.solver, settings.time_limit)
        stages["solve"] = time.perf_counter() - t1
        if not result.status.has_solution:
            raise NoPlan(f"the grouping instance is {result.status.value}"
                         + (f" ({result.message})" if result.message else "")
                         + (": the budget may be below the cheapest cover" if settings.budget else ""),
                         result.status.exit_code)
        groups = [list(g) for g in result.solution["groups"]]
        served = dict(result.solution["served_by"])

        t1 = time.perf_counter()
        final = _Models(runner, data, final_config, settings.seed)
        index = {nm: t for nm, t in zip(names, tasks)}
        plan_groups = [[index[t] for t in g] for g in groups]
        runs = final.get(plan_groups + [[t] for t in tasks] + [list(tasks)], settings.final_seeds)
        stages["final"] = time.perf_counter() - t1
        trained = runner.trained + (1 if settings.method == "tag" and info.get("trained") else 0)

    metric = "accuracy" if data.n_classes else "rmse"
    reps = range(settings.final_seeds)

    def mean_metric(group_idx, task):
        key = tuple(sorted(group_idx))
        return float(np.mean([_test_value(runs[(key, r)], task, metric) for r in reps]))

    test = {"plan": {}, "stl": {}, "all_in_one": {}}
    for nm, t in zip(names, tasks):
        test["plan"][nm] = mean_metric(plan_groups[served[nm]], nm)
        test["stl"][nm] = mean_metric([t], nm)
        test["all_in_one"][nm] = mean_metric(tasks, nm)
    aggregate = {k: float(np.mean(list(v.values()))) for k, v in test.items()}
    cost = sum(sum(rows[t] for t in g) for g in groups)
    report = {
        "schema": 1,
        "method": settings.method,
        "mode": instance["mode"],
        "group_value": instance["group_value"],
        "sense": instance["sense"],
        "tasks": names,
        "max_groups": settings.max_groups,
        "groups": groups,
        "served_by": served,
        "status": result.status.value,
        "objective": result.objective,
        "bound": result.bound,
        "solver": result.solver,
        "gap": result.gap,
        "gap_percent": None if result.gap is None else round(100.0 * result.gap, 6),
        "metric": metric,
        "higher_is_better": bool(data.n_classes),
        "test": test,
        "aggregate": aggregate,
        "cost": {"rows": cost, "budget": settings.budget, "single_task_rows": total_rows},
        "affinity": {"matrix": M.tolist(), "convention": "onto"},
        "estimate": info,
        "final_seeds": settings.final_seeds,
        "models_trained": trained,
        "verdict": verdict(aggregate, bool(data.n_classes)),
        "seconds_by_stage": {k: round(v, 3) for k, v in stages.items()},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return report, instance


def verdict(aggregate: dict[str, float], higher_is_better: bool, tol: float = 1e-9) -> dict[str, str]:
    """Whether the plan's mean test metric beats each baseline: "better", "worse" or "tie"."""
    out = {}
    for key in ("all_in_one", "stl"):
        diff = aggregate["plan"] - aggregate[key]
        if not higher_is_better:
            diff = -diff
        out[key] = "tie" if abs(diff) <= tol else ("better" if diff > 0 else "worse")
    return out


def verdict_line(report: dict[str, Any]) -> str:
    """One plain sentence: does the plan beat the all-in-one model and single-task training on test?"""
    a, v, metric = report["aggregate"], report["verdict"], report["metric"]
    words = {"better": "beats", "worse": "loses to", "tie": "ties with"}
    return (f"verdict: the plan {words[v['all_in_one']]} the all-in-one model ({a['plan']:.4f} vs {a['all_in_one']:.4f}) "
            f"and {words[v['stl']]} single-task training ({a['stl']:.4f}) on mean test {metric}")


def report_table(report: dict[str, Any]) -> list[str]:
    """Human summary: one line per task (plan, single-task, all-in-one), the mean, the groups."""
    names = report["tasks"]
    w = max(8, max(len(t) for t in names) + 1)
    metric = report["metric"]
    lines = [f"{'task':<{w}} {'group':>5} {'plan':>9} {'single':>9} {'all-in-one':>10}   (test {metric})"]
    t = report["test"]
    for nm in names:
        lines.append(f"{nm:<{w}} {'G' + str(report['served_by'][nm] + 1):>5} {t['plan'][nm]:>9.4f} "
                     f"{t['stl'][nm]:>9.4f} {t['all_in_one'][nm]:>10.4f}")
    a = report["aggregate"]
    lines.append(f"{'mean':<{w}} {'':>5} {a['plan']:>9.4f} {a['stl']:>9.4f} {a['all_in_one']:>10.4f}")
    for i, g in enumerate(report["groups"]):
        lines.append(f"G{i + 1}: {', '.join(g)}")
    if "verdict" in report:
        lines.append(verdict_line(report))
    c = report["cost"]
    gap = report.get("gap")
    gap_txt = "" if gap is None else f", gap {100.0 * gap:.3g}%"
    lines.append(f"{report['method']} affinities, {report['mode']} with at most {report['max_groups']} groups: "
                 f"{report['status']} ({report['solver']}{gap_txt}); cost {c['rows']} rows "
                 f"(single-task {c['single_task_rows']}); {report['models_trained']} models trained; "
                 f"{report['seconds']:.1f} s")
    return lines
