"""What every subset trainer shares (the batched engine in :mod:`planner_models.train` and the user-module
trainer in :mod:`planner_models.user_model`): the result of one subset model, the preparation of the data
(rows, labels, device), the per-model schedule (seeded rows, budget of steps) and the loss and metrics."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .data import TEST, TRAIN, VAL, DataError, TaskData
from .losses import PER_ROW, resolve_loss
from .mtl import head_slots


@dataclass
class SubsetResult:
    """One trained subset model.

    ``subset``: task indices, target first, then the sources in increasing order. ``f``: the target's
    validation loss under the configured loss. ``val_losses``: that loss on each member task's
    validation rows. ``test``: the target's test metrics (classification: ``loss``, ``accuracy``,
    ``ce``, ``margin``, ``zero_one``; regression: ``loss``, ``mse``, ``rmse``, ``mae``; regression
    losses in the label's own units). ``seconds``: wall time (for batched training, the group's time
    divided by its size). ``epochs``: epochs trained; ``best_epoch``: the epoch whose state was kept.
    """

    subset: tuple[int, ...]
    f: float
    val_losses: dict[int, float]
    test: dict[str, float]
    seconds: float
    device: str
    seed: int
    epochs: int = 0
    best_epoch: int = 0
    n_train: int = 0
    # the target's loss on each of its validation and test rows (see target_rows); not in to_dict
    rows: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("rows", None)
        d["subset"] = list(self.subset)
        d["val_losses"] = {str(k): v for k, v in self.val_losses.items()}
        return d


# ---------------------------------------------------------------------------- preparation
def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


@dataclass
class _Prepared:
    data: TaskData
    target: int
    loss: str
    train_loss: str
    device: torch.device
    X: torch.Tensor                 # (n, p) on device
    X1: torch.Tensor                # (n, p + 1): X with a column of ones (biases folded into weights)
    y: torch.Tensor                 # (n,) int64 or float32 (regression: standardised) on device
    y_scale: float                  # regression: std of training labels (losses in original units)
    out_dim: int
    train_rows: list[np.ndarray]    # per task, after train_fraction
    val_rows: list[np.ndarray]
    test_rows: np.ndarray           # the target's
    Xv: torch.Tensor = field(init=False)
    Xv1: torch.Tensor = field(init=False)
    yv: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        vr = torch.as_tensor(self.val_rows[self.target], device=self.device)
        self.Xv, self.Xv1, self.yv = self.X[vr], self.X1[vr], self.y[vr]


def scaled_labels(data: TaskData) -> tuple[np.ndarray, float]:
    """Labels as the trainer uses them: class indices, or regression targets standardised with the
    training rows' mean and standard deviation (returned as the scale that undoes it)."""
    if data.n_classes:
        return data.y.astype(np.int64), 1.0
    tr = data.y[data.split == TRAIN].astype(np.float64)
    mu = float(tr.mean()) if len(tr) else 0.0
    sd = float(tr.std()) if len(tr) > 1 else 1.0
    y_scale = sd if sd > 0 else 1.0
    return ((data.y.astype(np.float64) - mu) / y_scale).astype(np.float32), y_scale


def training_rows(data: TaskData, config: Any) -> list[np.ndarray]:
    """Each task's training rows; with ``train_fraction < 1`` the same seeded fraction for every model."""
    out = []
    for t in range(data.n_tasks):
        rows = data.rows(t, TRAIN)
        if config.train_fraction < 1.0 and len(rows):
            n_keep = max(1, int(round(config.train_fraction * len(rows))))
            rng = np.random.default_rng([config.subsample_seed, t])
            rows = np.sort(rng.choice(rows, size=n_keep, replace=False))
        out.append(rows)
    return out


def _prepare(data: TaskData, target: int, config: Any) -> _Prepared:
    if not isinstance(data, TaskData):
        raise TypeError("data must be a TaskData")
    target = data.task_index(target)
    loss = resolve_loss(config.loss, data.n_classes)
    device = resolve_device(config.device)
    counts = data.counts()
    if counts[target, VAL] == 0:
        raise DataError(f"target task {data.task_names[target]!r} has no validation rows")
    y_np, y_scale = scaled_labels(data)
    train_rows = training_rows(data, config)
    val_rows = [data.rows(t, VAL) for t in range(data.n_tasks)]
    return _Prepared(data=data, target=target, loss=loss, train_loss="ce" if data.n_classes else "mse",
                     device=device, X=torch.from_numpy(data.X).to(device),
                     X1=torch.from_numpy(np.hstack([data.X, np.ones((len(data.X), 1), np.float32)])).to(device),
                     y=torch.from_numpy(y_np).to(device),
                     y_scale=y_scale, out_dim=data.n_classes if data.n_classes else 1,
                     train_rows=train_rows, val_rows=val_rows, test_rows=data.rows(target, TEST))


@dataclass
class _Spec:
    """One model to train: its tasks (target first), seed, training rows and step budget."""

    index: int
    subset: tuple[int, ...]
    seed: int
    rows: np.ndarray
    steps_per_epoch: int
    budget: int
    n_heads: int = 0            # head slots of the built-in network (see planner_models.mtl.head_slots)
    slot_of: np.ndarray | None = None   # head slot of every task index


def _specs(prep: _Prepared, subsets: Sequence[Sequence[int]], seeds: Sequence[int],
           config: Any) -> list[_Spec]:
    if len(seeds) != len(subsets):
        raise ValueError(f"got {len(subsets)} subsets but {len(seeds)} seeds")
    n_tasks = prep.data.n_tasks
    out = []
    for i, (sub, seed) in enumerate(zip(subsets, seeds)):
        srcs = set()
        for s in sub:
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or not 0 <= s < n_tasks:
                raise ValueError(f"subset {i}: {s!r} is not a task index in 0..{n_tasks - 1}")
            if int(s) != prep.target:
                srcs.add(int(s))
        subset = (prep.target,) + tuple(sorted(srcs))
        rows = np.concatenate([prep.train_rows[t] for t in subset])   # task by task, each sorted
        spe = math.ceil(len(rows) / config.batch_size)
        budget = math.ceil(config.epoch_fraction * config.epochs * spe) if spe else 0
        if int(seed) < 0:
            raise ValueError(f"seed {seed} must be >= 0")
        n_heads, slot_of = head_slots(getattr(config, "heads", "task"), n_tasks, subset)
        out.append(_Spec(i, subset, int(seed), rows, spe, budget, n_heads, slot_of))
    return out



def early_stop_update(val: np.ndarray, alive: np.ndarray, best_val: np.ndarray, best_epoch: np.ndarray,
                      bad: np.ndarray, remaining: np.ndarray, epoch: int, keep: str,
                      patience: int) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's early-stopping bookkeeping of a batched trainer, for the models ``alive`` whose
    validation losses are ``val``: updates ``best_val``, ``best_epoch`` and ``bad`` in place and returns
    ``(take, done)``: whose current state to keep (improved, or every model with ``keep="last"``) and
    who stops (step budget spent, or ``patience`` epochs without improvement)."""
    improved = val < best_val[alive]
    take = improved if keep == "best" else np.ones_like(improved)
    best_val[alive] = np.where(improved, val, best_val[alive])
    best_epoch[alive] = np.where(take, epoch + 1, best_epoch[alive])
    bad[alive] = np.where(improved, 0, bad[alive] + 1)
    done = remaining[alive] == 0
    if patience:
        done |= bad[alive] >= patience
    return take, done

# ---------------------------------------------------------------------------- metrics
def _metric_dict(out: torch.Tensor, y: torch.Tensor, prep: _Prepared, loss: str) -> dict[str, torch.Tensor]:
    """Per-model mean metrics over rows: ``out (M, n, C)``, ``y (n,)`` or ``(M, n)`` -> ``{name: (M,)}``."""
    if y.dim() == 1:
        y = y.unsqueeze(0).expand(out.shape[0], -1)
    if prep.data.n_classes:
        ce = PER_ROW["ce"](out, y).mean(1)
        mar = PER_ROW["margin"](out, y).mean(1)
        zo = PER_ROW["zero_one"](out, y).mean(1)
        d = {"ce": ce, "margin": mar, "zero_one": zo, "accuracy": 1.0 - zo}
        d["loss"] = d[loss]
    else:
        err = (out.squeeze(-1) - y) * prep.y_scale
        mse = (err ** 2).mean(1)
        d = {"mse": mse, "rmse": mse.sqrt(), "mae": err.abs().mean(1), "loss": mse}
    return d


def target_rows(out_v: torch.Tensor, out_t: torch.Tensor | None, prep: _Prepared, loss: str,
                test_y: torch.Tensor | None = None) -> list[dict[str, np.ndarray]]:
    """Per model, from the target's outputs on its validation rows ``out_v (M, n_val, C)`` and test rows
    ``out_t (M, n_test, C)`` (or None): its loss on each validation row (``"val"``) and test row
    (``"test"``) and, for classification, each test row's 0-1 error (``"test_error"``). Two models
    compared on the same rows need these for a paired standard error."""
    M = out_v.shape[0]
    yv = prep.yv.unsqueeze(0).expand(M, -1)
    cols = {"val": _per_row(out_v, yv, prep, loss).double().cpu().numpy()}
    if out_t is not None and out_t.shape[1]:
        yt = test_y.unsqueeze(0).expand(M, -1)
        cols["test"] = _per_row(out_t, yt, prep, loss).double().cpu().numpy()
        if prep.data.n_classes:
            cols["test_error"] = PER_ROW["zero_one"](out_t, yt).double().cpu().numpy()
    return [{k: v[m] for k, v in cols.items()} for m in range(M)]


def member_val_losses(prep: _Prepared, specs: Sequence[_Spec], forward, *, piece_rows: int, round_to: int = 1,
                      min_piece: int = 1, pad_first: bool = False) -> np.ndarray:
    """Every member's validation loss, ``(M, K)`` for ``M = len(specs)`` models of up to ``K`` members
    (column 0, the target, and members without validation rows stay NaN): per model, the validation rows
    of its source members, padded to one length ``R`` (a multiple of ``round_to``), go through
    ``forward(a, b, idx, slot)`` for the models ``a:b`` (``idx``, ``slot``: ``(b - a, R)`` row indices and
    member slots on the device; it returns their outputs ``(b - a, R, C)``) in pieces of about
    ``piece_rows`` rows and at least ``min_piece`` models, and are averaged per member. Padding repeats
    the model's first row with ``pad_first`` (some networks must not see made-up rows), else row 0; it
    has weight 0 either way."""
    dev = prep.device
    M = len(specs)
    K = max(len(s.subset) for s in specs)
    member = np.full((M, K), np.nan)
    if K == 1:
        return member
    empty = np.zeros(0, dtype=np.int64)
    rows_per = [np.concatenate([empty] + [prep.val_rows[t] for t in s.subset[1:]]) for s in specs]
    slot_per = [np.repeat(np.arange(1, len(s.subset), dtype=np.int64), [len(prep.val_rows[t]) for t in s.subset[1:]])
                for s in specs]
    R = -(-max(1, max(len(r) for r in rows_per)) // round_to) * round_to
    step = max(min_piece, piece_rows // R)
    bounds = list(range(0, M, step)) + [M]
    if min_piece > 1 and len(bounds) > 2 and bounds[-1] - bounds[-2] < min_piece:
        del bounds[-2]  # no piece below min_piece models
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = np.zeros((b - a, R), dtype=np.int64)
        sl = np.zeros((b - a, R), dtype=np.int64)
        wt = np.zeros((b - a, R), dtype=np.float32)
        for j in range(a, b):
            n = len(rows_per[j])
            idx[j - a, :n], sl[j - a, :n], wt[j - a, :n] = rows_per[j], slot_per[j], 1.0
            if pad_first and n < R and n:
                idx[j - a, n:], sl[j - a, n:] = rows_per[j][0], slot_per[j][0]
        idx_d, sl_d, wt_d = (torch.from_numpy(v).to(dev) for v in (idx, sl, wt))
        out = forward(a, b, idx_d, sl_d)
        per = _per_row(out, prep.y.index_select(0, idx_d.view(-1)).view(b - a, R), prep, prep.loss).double()
        per = per * wt_d.double()
        sums = torch.zeros(b - a, K, dtype=torch.float64, device=dev).scatter_add_(1, sl_d, per)
        cnts = torch.zeros(b - a, K, dtype=torch.float64, device=dev).scatter_add_(1, sl_d, wt_d.double())
        member[a:b] = (sums / cnts).cpu().numpy()
    return member


def _per_row(out: torch.Tensor, y: torch.Tensor, prep: _Prepared, loss: str) -> torch.Tensor:
    v = PER_ROW[loss](out, y)
    return v * prep.y_scale ** 2 if loss == "mse" else v


def _early_stop_loss(out: torch.Tensor, y: torch.Tensor, prep: _Prepared) -> torch.Tensor:
    """Training loss on the target's validation rows, per model: ``out (M, n, C)`` -> ``(M,)``."""
    y = y.unsqueeze(0).expand(out.shape[0], -1)
    return PER_ROW[prep.train_loss](out, y).mean(1)


