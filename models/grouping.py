"""Group models and TAG lookahead: the training side of task grouping (``planner group``).

A *group model* is one hard-sharing network (:class:`planner_models.mtl.MTLNet`) serving every task of a
group ``G`` with its own head. Unlike the subset models of :mod:`planner_models.train` there is no single
target: early stopping watches the mean over the members of their validation losses (the training
loss: cross-entropy or squared error, each task weighted equally), and every member's validation
loss and test metrics are returned. Schedule, fixed by the model's seed as in :mod:`planner_models.train`:

* initial weights: :func:`planner_models.mtl.init_params` with the seed;
* epoch ``e``: the ``e``-th permutation drawn by ``numpy.random.default_rng(seed)`` of the group's
  training rows, cut into mini-batches (each row's loss through its task's head, batch mean; Adam);
* at most ``ceil(epoch_fraction * epochs * steps_per_epoch)`` steps; after every epoch the mean
  validation loss of the members is measured, the best state kept, and training stops after
  ``patience`` epochs without a strict improvement;
* ``train_fraction < 1`` keeps the same random fraction of each task's training rows as
  :mod:`planner_models.train` does (``default_rng([subsample_seed, task])``); regression labels are
  standardised with the training rows of every task, so a task's numbers do not depend on its group.

:func:`tag_affinities` is the lookahead of TAG (Fifty et al., NeurIPS 2021, eq. 3): while one model
with every task trains, at every step ``s`` and for every task ``i`` with rows in the batch, a copy of
the shared encoder takes one SGD step on task i's loss of the batch,
``theta_i = theta - eta * grad_theta L_i``, and every task j's loss on the same batch is compared
before and after: ``Z_s[i -> j] = 1 - L_j(theta_i) / L_j(theta)``. Heads are not moved. The result is
the mean over steps, returned in the ONTO orientation ``A[j][i] = Z[i -> j]`` (the effect of i's
update onto j), the diagonal (self-affinity) kept.

This module never imports ``planner``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .data import TEST, VAL, DataError, TaskData
from .losses import PER_ROW, resolve_loss
from .mtl import MTLNet, head_slots, init_params
from .train import TrainConfig, resolve_device, scaled_labels, training_rows


@dataclass
class GroupResult:
    """One trained group model.

    ``members``: task indices in the order given. ``f``: the early-stopping criterion at the kept
    state (mean over members of the training loss on their validation rows). ``val_losses``: the
    configured loss (``config.loss``; regression in the label's units) on each member's validation
    rows. ``test``: per member, its test metrics (classification: ``loss``, ``accuracy``, ``ce``,
    ``margin``, ``zero_one``; regression: ``loss``, ``mse``, ``rmse``, ``mae``).
    """

    members: tuple[int, ...]
    seed: int
    f: float
    val_losses: dict[int, float]
    test: dict[int, dict[str, float]]
    seconds: float
    device: str
    epochs: int = 0
    best_epoch: int = 0
    n_train: int = 0


@dataclass
class TagResult:
    """TAG lookahead affinities. ``matrix[j][i]`` = mean over steps of ``Z[i -> j]`` (onto
    orientation); ``steps[j][i]`` = how many steps contributed (both tasks had rows in the batch)."""

    tasks: tuple[int, ...]
    matrix: list[list[float]]
    steps: list[list[int]]
    model: GroupResult
    lookahead_lr: float
    seconds: float


@dataclass
class _Prep:
    data: TaskData
    loss: str
    train_loss: str
    device: torch.device
    X: torch.Tensor
    y: torch.Tensor
    y_scale: float
    out_dim: int
    train_rows: list[np.ndarray]
    val_rows: list[np.ndarray]
    test_rows: list[np.ndarray] = field(default_factory=list)


def _prepare(data: TaskData, config: TrainConfig) -> _Prep:
    if not isinstance(data, TaskData):
        raise TypeError("data must be a TaskData")
    loss = resolve_loss(config.loss, data.n_classes)
    device = resolve_device(config.device)
    y_np, y_scale = scaled_labels(data)
    train_rows = training_rows(data, config)
    return _Prep(data=data, loss=loss, train_loss="ce" if data.n_classes else "mse", device=device,
                 X=torch.from_numpy(data.X).to(device), y=torch.from_numpy(y_np).to(device), y_scale=y_scale,
                 out_dim=data.n_classes if data.n_classes else 1, train_rows=train_rows,
                 val_rows=[data.rows(t, VAL) for t in range(data.n_tasks)],
                 test_rows=[data.rows(t, TEST) for t in range(data.n_tasks)])


def _members(prep: _Prep, group: Sequence[int]) -> tuple[int, ...]:
    n = prep.data.n_tasks
    out = []
    for t in group:
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or not 0 <= t < n:
            raise ValueError(f"{t!r} is not a task index in 0..{n - 1}")
        if int(t) in out:
            raise ValueError(f"task {int(t)} is listed twice in a group")
        out.append(int(t))
    if not out:
        raise ValueError("a group needs at least one task")
    return tuple(out)


def _row_loss(out: torch.Tensor, y: torch.Tensor, prep: _Prep, loss: str) -> torch.Tensor:
    v = PER_ROW[loss](out, y)
    return v * prep.y_scale ** 2 if loss == "mse" else v


def _metrics(out: torch.Tensor, y: torch.Tensor, prep: _Prep) -> dict[str, float]:
    if prep.data.n_classes:
        d = {name: float(PER_ROW[name](out, y).double().mean()) for name in ("ce", "margin", "zero_one")}
        d["accuracy"] = 1.0 - d["zero_one"]
        d["loss"] = d[prep.loss]
    else:
        err = (out.squeeze(-1).double() - y.double()) * prep.y_scale
        mse = float((err ** 2).mean())
        d = {"mse": mse, "rmse": math.sqrt(mse), "mae": float(err.abs().mean()), "loss": mse}
    return d


def _val_criterion(net: MTLNet, prep: _Prep, members: tuple[int, ...], heads: str = "task") -> float:
    """Mean over members (with validation rows) of the training loss on their validation rows."""
    vals = []
    _, slot_of = head_slots(heads, prep.data.n_tasks, members)
    for t in members:
        vr = prep.val_rows[t]
        if len(vr):
            vr_d = torch.as_tensor(vr, device=prep.device)
            vals.append(float(PER_ROW[prep.train_loss](net(prep.X[vr_d], int(slot_of[t])), prep.y[vr_d]).double().mean()))
    return float(np.mean(vals)) if vals else math.nan


# Called before each optimizer step with (net, batch row indices, their head slots).
StepHook = Callable[[MTLNet, torch.Tensor, torch.Tensor], None]


def _fit(prep: _Prep, members: tuple[int, ...], seed: int, config: TrainConfig,
         hook: StepHook | None = None) -> GroupResult:
    t0 = time.perf_counter()
    if int(seed) < 0:
        raise ValueError(f"seed {seed} must be >= 0")
    if not any(len(prep.val_rows[t]) for t in members):
        names = [prep.data.task_names[t] for t in members]
        raise DataError(f"no validation rows in the group {names}: nothing to stop on")
    dev = prep.device
    p, C, B = prep.data.n_features, prep.out_dim, config.batch_size
    if hook is not None and config.heads != "task":
        raise ValueError("per-task lookahead (TAG) needs one head per task; got heads=" + config.heads)
    n_heads, slot_of_task = head_slots(config.heads, prep.data.n_tasks, members)
    net = MTLNet.from_params(init_params(int(seed), p, config.hidden, n_heads, C), p, config.hidden).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
                           weight_decay=config.weight_decay)
    slot_all = torch.from_numpy(slot_of_task[prep.data.task]).to(dev)
    rows = np.concatenate([prep.train_rows[t] for t in members])
    spe = math.ceil(len(rows) / B)
    remaining = math.ceil(config.epoch_fraction * config.epochs * spe) if spe else 0
    rng = np.random.default_rng(int(seed))
    patience = config.patience or 0
    best_val, bad, best_epoch, epochs_run, epoch = math.inf, 0, 0, 0, 0
    best_state = [t.detach().clone() for t in net.parameters()]
    while True:
        steps = min(spe, remaining)
        if steps > 0:
            perm = torch.from_numpy(rng.permutation(rows)[:steps * B]).to(dev)
            for s in range(steps):
                b = perm[s * B:(s + 1) * B]
                slots = slot_all[b]
                if hook is not None:
                    hook(net, b, slots)
                out = net(prep.X[b], slots)
                loss = PER_ROW[prep.train_loss](out, prep.y[b]).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            remaining -= steps
            epochs_run += 1
        with torch.no_grad():
            val = _val_criterion(net, prep, members, config.heads)
        if val < best_val:
            best_val, bad, best_epoch = val, 0, epoch + 1
            best_state = [t.detach().clone() for t in net.parameters()]
        else:
            bad += 1
        epoch += 1
        if remaining <= 0 or (patience and bad >= patience) or not math.isfinite(val):
            break
    with torch.no_grad():
        for t, b in zip(net.parameters(), best_state):
            t.copy_(b)
        val_losses, test = {}, {}
        for t in members:
            k = int(slot_of_task[t])
            vr = torch.as_tensor(prep.val_rows[t], device=dev)
            val_losses[t] = (float(_row_loss(net(prep.X[vr], k), prep.y[vr], prep, prep.loss).double().mean())
                             if len(vr) else math.nan)
            tr = torch.as_tensor(prep.test_rows[t], device=dev)
            test[t] = _metrics(net(prep.X[tr], k), prep.y[tr], prep) if len(tr) else {}
    return GroupResult(members=members, seed=int(seed), f=float(best_val), val_losses=val_losses, test=test,
                       seconds=time.perf_counter() - t0, device=str(dev), epochs=epochs_run,
                       best_epoch=best_epoch, n_train=len(rows))


def train_groups(data: TaskData, groups: Sequence[Sequence[int]], config: TrainConfig, seeds: Sequence[int],
                 progress: Callable[[int], None] | None = None) -> list[GroupResult]:
    """Train one group model per group (task indices), each with its own seed; results in input order.

    ``progress``, when given, is called with 1 after each model.
    """
    if len(seeds) != len(groups):
        raise ValueError(f"got {len(groups)} groups but {len(seeds)} seeds")
    prep = _prepare(data, config)
    members = [_members(prep, g) for g in groups]
    out = []
    for m, seed in zip(members, seeds):
        out.append(_fit(prep, m, seed, config))
        if progress is not None:
            progress(1)
    return out


# ---------------------------------------------------------------------------- TAG lookahead
class _Lookahead:
    """The step hook that accumulates ``Z[i -> j]`` (see the module docstring)."""

    def __init__(self, prep: _Prep, members: tuple[int, ...], lr: float, every: int):
        self.prep, self.members, self.lr, self.every = prep, members, float(lr), int(every)
        K = len(members)
        self.sum = np.zeros((K, K))      # sum[i, j]: Z[i -> j] over steps
        self.cnt = np.zeros((K, K), dtype=np.int64)
        self.step = 0

    def __call__(self, net: MTLNet, b: torch.Tensor, slots: torch.Tensor) -> None:
        self.step += 1
        if (self.step - 1) % self.every:
            return
        prep, K = self.prep, len(self.members)
        present = torch.bincount(slots, minlength=K) > 0
        tasks_in = [k for k in range(K) if bool(present[k])]
        if not tasks_in:
            return
        x, y = prep.X[b], prep.y[b]
        linears = [m for m in net.encoder if isinstance(m, torch.nn.Linear)]
        enc = [p for lin in linears for p in (lin.weight, lin.bias)]
        # per-task gradients of the batch loss with respect to the shared encoder only
        out = net(x, slots)
        per_row = PER_ROW[prep.train_loss](out, y)
        onehot = torch.nn.functional.one_hot(slots, K).to(per_row.dtype)      # (R, K)
        counts = onehot.sum(0)
        task_loss = (per_row.unsqueeze(1) * onehot).sum(0) / counts.clamp(min=1)
        grads = []
        for k in tasks_in:
            g = torch.autograd.grad(task_loss[k], enc, retain_graph=k != tasks_in[-1])
            grads.append([gi.detach().double() for gi in g])
        with torch.no_grad():
            n_i = len(tasks_in)
            base = [p.detach().double() for p in enc]
            # stacked encoders: index 0 = current parameters, 1.. = after a step on task tasks_in[i - 1]
            stacked = [torch.stack([bp] + [bp - self.lr * g[q] for g in grads]) for q, bp in enumerate(base)]
            h = x.double().unsqueeze(0).expand(n_i + 1, -1, -1)
            for layer in range(len(linears)):
                W, bias = stacked[2 * layer], stacked[2 * layer + 1]          # (n, out, in), (n, out)
                h = torch.relu(torch.baddbmm(bias.unsqueeze(1), h, W.transpose(1, 2)))
            Hw = net.head_w.detach().double()[slots]                          # (R, h, C)
            Hb = net.head_b.detach().double()[slots]                          # (R, C)
            logits = torch.einsum("nrh,rhc->nrc", h, Hw) + Hb.unsqueeze(0)
            rl = PER_ROW[prep.train_loss](logits, y.unsqueeze(0).expand(n_i + 1, -1))   # (n + 1, R)
            L = (rl @ onehot.double()) / counts.double().clamp(min=1)         # (n + 1, K)
            before, after = L[0], L[1:]
            ok = (counts > 0).cpu().numpy() & (before > 0).cpu().numpy()
            Z = (1.0 - after / before.clamp(min=1e-300)).cpu().numpy()        # (n_i, K): Z[i -> j]
        for r, i in enumerate(tasks_in):
            self.sum[i, ok] += Z[r, ok]
            self.cnt[i, ok] += 1


def tag_affinities(data: TaskData, tasks: Sequence[int], config: TrainConfig, seed: int = 0, *,
                   lookahead_lr: float | None = None, every: int = 1) -> TagResult:
    """TAG inter-task affinities from one multitask model over ``tasks`` (trained as by
    :func:`train_groups`, with the lookahead measured at every ``every``-th step).

    ``lookahead_lr``: the SGD step size of the lookahead (default: ``config.lr``). Returns
    ``matrix[j][i]`` = mean over steps of ``1 - L_j(after a step on i) / L_j(before)`` (onto
    orientation; rows and columns in the order of ``tasks``); pairs never seen together in a batch
    get 0 and a step count of 0.
    """
    if every < 1:
        raise ValueError("every must be at least 1")
    prep = _prepare(data, config)
    members = _members(prep, tasks)
    lr = config.lr if lookahead_lr is None else float(lookahead_lr)
    if not lr > 0:
        raise ValueError("lookahead_lr must be positive")
    t0 = time.perf_counter()
    hook = _Lookahead(prep, members, lr, every)
    model = _fit(prep, members, seed, config, hook)
    K = len(members)
    mean = np.divide(hook.sum, hook.cnt, out=np.zeros((K, K)), where=hook.cnt > 0)
    onto = mean.T   # onto[j][i] = Z[i -> j]
    return TagResult(tasks=members, matrix=onto.tolist(), steps=hook.cnt.T.astype(int).tolist(), model=model,
                     lookahead_lr=lr, seconds=time.perf_counter() - t0)
