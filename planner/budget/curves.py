"""From measured learning curves to a budget instance (the plug for TABA's estimation step):
fit one information model per task and assemble a validated instance mapping."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from planner.budget.problem import INFO_MODELS, BudgetProblem, Geometric, Power, _plain
from planner.checks import Checker
from planner.status import InstanceError

def fit_information_model(
    labels: Sequence[float], gains: Sequence[float], model: str = "geometric", initial: int = 0
) -> tuple[dict[str, Any], float]:
    """Fit one task's information model to a measured curve of gain against new labels.

    ``labels[k]`` new labels (on top of ``initial``) gave a measured improvement ``gains[k]`` (the
    point (0, 0) is implied). Returns ``(info, scale)``: the ``info`` mapping for the instance file and a
    multiplier for the task's weight. The geometric model has no free amplitude (it is fixed by beta and
    n0), so its amplitude comes back as ``scale``; the power model's ``a`` absorbs it (scale 1), and a
    table is the curve itself (scale 1). Least squares on the gains; beta or b found by a bounded search.
    """
    xs = np.asarray(labels, dtype=float)
    ys = np.asarray(gains, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1 or xs.size == 0:
        raise InstanceError("", "curve", "labels and gains must be two lists of the same non-zero length")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))) or np.any(xs < 0):
        raise InstanceError("", "curve", "labels must be finite and >= 0, gains finite")
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    if model == "table":
        pts: dict[float, list[float]] = {0.0: [0.0]}
        for x, y in zip(xs, ys):
            if x > 0:
                pts.setdefault(float(x), []).append(float(y))
        points = [[_plain(x), float(np.mean(v)) if x > 0 else 0] for x, v in sorted(pts.items())]
        if len(points) < 2:
            raise InstanceError("", "curve", "a table needs at least one point with labels > 0")
        return {"model": "table", "points": points}, 1.0
    from scipy.optimize import minimize_scalar

    def amplitude_fit(shape: np.ndarray) -> tuple[float, float]:
        denom = float(shape @ shape)
        amp = max(0.0, float(shape @ ys) / denom) if denom > 0 else 0.0
        return amp, float(np.sum((amp * shape - ys) ** 2))

    if model == "geometric":
        def loss(beta: float) -> float:
            return amplitude_fit(Geometric(beta).value(xs, initial))[1]

        beta = float(minimize_scalar(loss, bounds=(1e-6, 1 - 1e-9), method="bounded").x)
        amp, _ = amplitude_fit(Geometric(beta).value(xs, initial))
        return {"model": "geometric", "beta": beta}, amp
    if model == "power":
        if initial < 1:
            raise InstanceError("", "initial", "the power model needs at least 1 initial label")

        def loss_b(b: float) -> float:
            return amplitude_fit(Power(1.0, b).value(xs, initial))[1]

        b = float(minimize_scalar(loss_b, bounds=(1e-4, 5.0), method="bounded").x)
        a, _ = amplitude_fit(Power(1.0, b).value(xs, initial))
        if a <= 0:
            raise InstanceError("", "curve", "the gains do not rise with labels; a power model cannot fit them")
        return {"model": "power", "a": a, "b": b}, 1.0
    raise InstanceError("", "model", f"must be one of {', '.join(INFO_MODELS)}, got {model!r}")


def budget_instance_from_curves(
    name: str,
    budget: float,
    costs: Mapping[str, float],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    initial: Mapping[str, int] | None = None,
    relatedness: Mapping[str, Mapping[str, float]] | Sequence[Sequence[float]] | None = None,
    model: str = "geometric",
    caps: Mapping[str, int] | None = None,
    weights: Mapping[str, float] | None = None,
    clip_negative: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A validated budget instance mapping (ready for ``planner.io.write_instance``) from measurements.

    ``curves[task] = (labels, gains)``: the gain measured after that many new labels of the task
    (TABA measures it with pseudo-labels). ``relatedness[i][j]`` (mapping of mappings, or a matrix in
    the order of ``costs``): how much one label of j counts for i; negative transfers are clipped to 0
    when ``clip_negative`` (the contract allows no negative coupling), else rejected.
    ``weights`` are task importances, multiplied by the fitted amplitude.
    """
    ids = list(costs)
    initial = dict(initial or {})
    tasks = []
    for tid in ids:
        if tid not in curves:
            raise InstanceError("", f"curves.{tid}", "no curve measured for this task")
        n0 = int(initial.get(tid, 0))
        info, scale = fit_information_model(*curves[tid], model=model, initial=n0)
        entry: dict[str, Any] = {"id": tid, "cost": costs[tid], "initial": n0}
        if caps and tid in caps:
            entry["max"] = int(caps[tid])
        entry["weight"] = float((weights or {}).get(tid, 1.0)) * scale
        entry["info"] = info
        tasks.append(entry)
    data: dict[str, Any] = {"schema": 1, "kind": "budget", "name": name, "budget": budget, "tasks": tasks}
    if meta:
        data["meta"] = dict(meta)
    if relatedness is not None:
        if isinstance(relatedness, Mapping):
            matrix = [[float(relatedness.get(i, {}).get(j, 0.0)) if i != j else 1.0 for j in ids] for i in ids]
        else:
            matrix = [[float(v) for v in row] for row in relatedness]
        for i, row in enumerate(matrix):
            for j in range(len(row)):
                if i == j and len(matrix) == len(ids):
                    row[j] = 1.0
                elif row[j] < 0 and clip_negative:
                    row[j] = 0.0
        data["relatedness"] = matrix
    BudgetProblem.from_dict(data, Checker("estimated instance"))  # raises InstanceError if anything is off
    return data
