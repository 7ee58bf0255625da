"""The trainer: many multitask subset models trained at once, on CPU or GPU.

For a target task ``t`` and subsets ``S_1 .. S_M`` of source tasks, model ``m`` is a hard-sharing
network (:mod:`planner_models.mtl`) with one head per task of ``{t} ∪ S_m``, trained only on the training
rows of those tasks (each row's loss through its own task's head; cross-entropy for classification,
squared error for regression; Adam), with early stopping on the target's validation loss. It returns

    f(S_m) = mean over the target's validation rows of the chosen loss (Li, Nguyen, Zhang, eq. (1)),

the validation loss of every task in the subset, and the target's test metrics.

:func:`train_subsets` stacks the models (:class:`planner_models.mtl.BatchedMTL`) and steps all of them with
batched matrix products; :func:`train_subsets_plain` trains the same models one after another with an
``nn.Module`` and ``torch.optim.Adam``. Both follow one schedule, fixed by each model's own seed:

* initial weights: :func:`planner_models.mtl.init_params` with the model's seed;
* epoch ``e``: the ``e``-th permutation drawn by ``numpy.random.default_rng(seed)`` from the model's
  training rows, cut into mini-batches of ``batch_size`` (the last one smaller);
* a step budget of ``ceil(epoch_fraction * epochs * steps_per_epoch)`` Adam steps; after every epoch
  (the last one possibly partial) the target's validation loss (the training loss: cross-entropy or
  squared error) is measured; the best state so far is kept; training stops after ``patience``
  epochs without a strict improvement, or when the budget is spent;
* ``train_fraction < 1`` keeps the same random fraction of every task's training rows for all models
  (drawn from ``subsample_seed`` and the task index), so subsets are compared on equal data.

Nothing about a model depends on which other models share its batch, so results do not depend on
``chunk_size`` or on which subsets are trained together (up to floating-point rounding in the
matrix kernels; on the CPU they are bitwise equal in the tests).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import TaskData
from .mtl import HEADS, BatchedMTL, MTLNet, init_params, init_params_many
from .schedule import (  # noqa: F401 (public names kept importable from here)
    SubsetResult,
    _early_stop_loss,
    early_stop_update,
    _metric_dict,
    member_val_losses,
    target_rows,
    _per_row,
    _Prepared,
    _prepare,
    _Spec,
    _specs,
    resolve_device,
    scaled_labels,
    training_rows,
)

# fields of TrainConfig that cannot change a result (left out of to_dict / cache keys)
_NOT_IN_KEY = ("device", "chunk_size")


@dataclass(frozen=True)
class TrainConfig:
    """How each subset model is trained.

    ``patience``: epochs without improvement of the target's validation loss before stopping
    (``None`` or 0: never stop early). ``train_fraction`` / ``epoch_fraction``: the paper's speed-up
    (40% of the training rows, 20% of the iterations). ``loss``: the loss reported as ``f``:
    ``auto`` (``margin`` for classification, ``mse`` for regression), ``margin`` (negative
    classification margin), ``ce``, ``zero_one`` or ``mse``; training itself always minimises
    cross-entropy or squared error. ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``.
    ``chunk_size``: most models trained in one batched group (``None``: 128 on CPU, 4096 on CUDA).
    ``model``: ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``, the user's network instead of the
    built-in one (:mod:`planner_models.user_model`; ``hidden`` is then unused).
    ``keep``: the state reported: ``best`` (the epoch with the lowest target validation training
    loss) or ``last`` (the final state; early stopping, if any, still decides when to stop).
    ``heads``: ``task`` (one output head per task, the default) or ``shared`` (one head for every
    task: each source's labels train the target's classifier; see :func:`planner_models.mtl.head_slots`).
    Built-in network only: a user's model decides its own heads.
    """

    hidden: tuple[int, ...] = (32,)
    lr: float = 5e-3
    epochs: int = 20
    batch_size: int = 128
    patience: int | None = 5
    train_fraction: float = 1.0
    epoch_fraction: float = 1.0
    loss: str = "auto"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    subsample_seed: int = 0
    keep: str = "best"
    device: str = "auto"
    chunk_size: int | None = None
    model: str | None = None
    heads: str = "task"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        problems = []
        if any(h < 1 for h in self.hidden):
            problems.append("hidden sizes must be positive")
        if not self.lr > 0:
            problems.append("lr must be positive")
        if self.epochs < 1:
            problems.append("epochs must be at least 1")
        if self.batch_size < 1:
            problems.append("batch_size must be at least 1")
        if self.patience is not None and self.patience < 0:
            problems.append("patience must be >= 0 or None")
        if not 0 < self.train_fraction <= 1:
            problems.append("train_fraction must be in (0, 1]")
        if not 0 < self.epoch_fraction <= 1:
            problems.append("epoch_fraction must be in (0, 1]")
        if self.weight_decay < 0:
            problems.append("weight_decay must be >= 0")
        if self.chunk_size is not None and self.chunk_size < 1:
            problems.append("chunk_size must be at least 1")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append("device must be auto, cpu or cuda")
        if self.keep not in ("best", "last"):
            problems.append(f"keep must be best or last, got {self.keep!r}")
        if self.loss not in ("auto", "margin", "ce", "zero_one", "mse"):
            problems.append(f"unknown loss {self.loss!r}")
        if self.model is not None and not (isinstance(self.model, str) and ":" in self.model):
            problems.append("model must be FILE.py:FUNCTION or package.module:FUNCTION")
        if self.heads not in HEADS:
            problems.append(f"heads must be one of {', '.join(HEADS)}, got {self.heads!r}")
        elif self.heads != "task" and self.model is not None:
            problems.append("heads applies to the built-in network; a user's model decides its own heads")
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields that determine results (``device`` and ``chunk_size`` left out)."""
        d = asdict(self)
        for k in _NOT_IN_KEY:
            d.pop(k)
        for k, default in (("keep", "best"), ("heads", "task")):
            if d[k] == default:  # the default before the option existed: stored studies keep their keys
                d.pop(k)
        d["hidden"] = list(self.hidden)
        d["betas"] = list(self.betas)
        if self.model is None:
            d.pop("model")  # the built-in network: the same dict as before the option existed
        else:
            from .model_spec import model_fingerprint

            d["model_sha256"] = model_fingerprint(self.model)  # an edited model file is a new study
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k != "model_sha256"}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)


# ---------------------------------------------------------------------------- batched trainer
def _auto_chunk(device: torch.device) -> int:
    # CPU: groups small enough that a step's tensors stay in the caches (measured on 2 Xeon cores,
    # 256 models: groups of 128 took 2.9 ms per model, of 64 3.2, of 16 5.1, of 256 3.4 to 4.6);
    # GPU: as many as possible per kernel launch
    return 4096 if device.type == "cuda" else 128


def train_subsets(data: TaskData, target: int | str, subsets: Sequence[Sequence[int]], config: TrainConfig,
                  seeds: Sequence[int], progress: Callable[[int], None] | None = None,
                  builder: Any = None) -> list[SubsetResult]:
    """Train one model per subset (the target always added), all at once; results in input order.

    ``progress``, when given, is called with the number of models just finished after each group.
    ``builder`` (or else ``config.model``): the user's network (a :class:`planner_models.user_model.UserModel`,
    ``FILE.py:FUNCTION`` or a callable), trained by :func:`planner_models.user_model.train_subsets_user`.
    """
    if builder is None:
        builder = config.model
    if builder is not None:
        from .user_model import train_subsets_user

        return train_subsets_user(data, target, subsets, config, seeds, builder, progress=progress)
    prep = _prepare(data, target, config)
    specs = _specs(prep, subsets, seeds, config)
    if not specs:
        return []
    chunk = config.chunk_size or _auto_chunk(prep.device)
    # Groups hold models with the same number of tasks (= head slots), so every model always meets
    # the same matrix shapes whatever its batch-mates; within a size, models with similar step
    # counts go together (fewer idle steps). Neither choice changes a result.
    order = sorted(range(len(specs)), key=lambda i: (_slots(specs[i]), specs[i].steps_per_epoch, i))
    results: list[SubsetResult | None] = [None] * len(specs)
    start = 0
    while start < len(order):
        k = _slots(specs[order[start]])
        end = start
        while end < len(order) and end - start < chunk and _slots(specs[order[end]]) == k:
            end += 1
        group = [specs[i] for i in order[start:end]]
        for spec, res in zip(group, _train_group(prep, group, config)):
            results[spec.index] = res
        if progress is not None:
            progress(len(group))
        start = end
    return results  # type: ignore[return-value]


def _slots(spec: _Spec) -> int:
    """Head slots of a model: its number of tasks (one head per task) or 1 (a shared head)."""
    return spec.n_heads


def _train_group(prep: _Prepared, specs: list[_Spec], config: TrainConfig) -> list[SubsetResult]:
    """Train a group of models of equal size together (see the module docstring for the schedule)."""
    t0 = time.perf_counter()
    n_real = len(specs)
    if n_real == 1:
        # a lone model is trained beside a copy of itself: batched kernels with one matrix take
        # other code paths, and results must not depend on the group size
        specs = specs * 2
    dev = prep.device
    M, C = len(specs), prep.out_dim
    B = -(-config.batch_size // 16) * 16   # batches padded (zero weights) to a multiple of 16 rows
    K = max(_slots(s) for s in specs)
    p = prep.data.n_features
    kind = "regression" if not prep.data.n_classes else ("binary" if C == 2 else "multiclass")
    net = BatchedMTL(p, config.hidden, K, C)
    # a group's models all have K heads (see train_subsets): initial weights of all of them at once
    # (bitwise those of init_params, model by model)
    if all(_slots(s) == K for s in specs):
        theta = net.pack_many(init_params_many([s.seed for s in specs], p, config.hidden, K, C)).to(dev)
    else:
        theta = net.pack([init_params(s.seed, p, config.hidden, s.n_heads, C) for s in specs]).to(dev)
    m1 = torch.zeros_like(theta)
    m2 = torch.zeros_like(theta)
    gbuf = torch.zeros_like(theta)
    best = theta.clone()
    final = torch.empty_like(theta)
    n_steps = np.zeros(M, dtype=np.int64)                          # Adam steps taken, per model
    # Adam step counts as tensors (views of one table: no allocation or copy per step)
    step_table = torch.arange(1, int(max(s.budget for s in specs)) + 2, dtype=torch.float32, device=dev)
    best_val = np.full(M, np.inf)
    bad = np.zeros(M, dtype=np.int64)
    best_epoch = np.zeros(M, dtype=np.int64)
    epochs_run = np.zeros(M, dtype=np.int64)
    remaining = np.array([s.budget for s in specs], dtype=np.int64)
    spe = np.array([s.steps_per_epoch for s in specs], dtype=np.int64)
    rngs = [np.random.default_rng(s.seed) for s in specs]
    task_np = prep.data.task
    slot_table = np.zeros((M, prep.data.n_tasks), dtype=np.int64)
    for m, s in enumerate(specs):
        slot_table[m] = s.slot_of
    n_tasks = prep.data.n_tasks
    slot_flat_d = torch.from_numpy(slot_table.reshape(-1)).to(dev)
    task_d = torch.from_numpy(task_np).to(dev)
    y_train = prep.y.to(torch.float32) if kind == "binary" else prep.y
    x_buf = None
    b1, b2 = config.betas
    native = _native_kernel(prep, net, dev)
    if native is not None:
        from .native import run_epoch

        X1_np = prep.X1.numpy()
        y_np = prep.y.numpy()
        y_f = y_np.astype(np.float32, copy=False) if kind != "multiclass" else None
        y_i = y_np if kind == "multiclass" else None
    patience = config.patience or 0
    alive = np.arange(M)
    epoch = 0
    while len(alive):
        A = len(alive)
        s_m = np.minimum(spe[alive], remaining[alive])
        S = int(s_m.max())
        if S > 0:
            # this epoch's mini-batches: (S, A, B) row indices; padding rows have weight 0. The only
            # per-model work is drawing each model's permutation from its own generator.
            Bc = config.batch_size
            n_j = np.zeros(A, dtype=np.int64)
            flat = np.zeros((A, S * Bc), dtype=np.int64)
            for j, m in enumerate(alive):
                if s_m[j]:
                    perm = rngs[m].permutation(specs[m].rows)
                    n_j[j] = min(len(perm), int(s_m[j]) * Bc)
                    flat[j, :n_j[j]] = perm[:n_j[j]]
            if native is not None:
                # the C kernel (models/native): every step of the epoch, model after model
                run_epoch(native, X1=X1_np, y_float=y_f, y_int=y_i, task=task_np,
                          slot_table=np.ascontiguousarray(slot_table[alive]), flat=flat, n_j=n_j,
                          s_m=s_m.astype(np.int64), step0=n_steps[alive].astype(np.int64),
                          theta=theta.numpy(), m1=m1.numpy(), m2=m2.numpy(), batch=Bc, K=K, C=C, kind=kind,
                          lr=config.lr, betas=(b1, b2), eps=config.eps, weight_decay=config.weight_decay,
                          p1=p + 1, hw=net.width[0], threads=torch.get_num_threads())
                remaining[alive] -= s_m
                n_steps[alive] += s_m
                S = 0
        if S > 0:  # the PyTorch path
            alive_d = torch.from_numpy(alive).to(dev)
            pad_block = theta.new_zeros(A, net.P - net.offsets[-1])
            cnt = np.clip(n_j[None, :] - np.arange(S)[:, None] * Bc, 0, Bc)             # (S, A)
            idx = np.zeros((S, A, B), dtype=np.int64)
            idx[:, :, :Bc] = flat.reshape(A, S, Bc).transpose(1, 0, 2)
            w = (np.arange(B, dtype=np.int64) < cnt[:, :, None]).astype(np.float32)
            w *= (1.0 / np.maximum(cnt, 1)).astype(np.float32)[:, :, None]
            idx_d = torch.from_numpy(idx).to(dev)
            w_d = torch.from_numpy(w).to(dev)
            flat_d = idx_d.view(-1)
            # slot of each row in its model: slot_table[model, task[row]], one flat lookup
            key = task_d.index_select(0, flat_d).view(S, A, B).add_(alive_d.view(1, A, 1) * n_tasks)
            slot_d = slot_flat_d.index_select(0, key.view(-1)).view(S, A, B)
            y_d = y_train.index_select(0, flat_d).view(S, A, B)
            # the input rows of many steps in one gather, into a buffer kept for the whole group
            # (at most 2^23 floats: 32 MiB)
            per_step = A * B * (p + 1)
            span = max(1, min(S, (1 << 23) // per_step))
            if x_buf is None or x_buf.numel() < span * per_step:
                x_buf = prep.X1.new_empty(span * per_step)
            active = np.arange(S)[:, None] < s_m[None, :]
            for s in range(S):
                if s % span == 0:
                    n = min(span, S - s)
                    x_all = torch.index_select(prep.X1, 0, idx_d[s:s + n].view(-1),
                                               out=x_buf[:n * per_step].view(n * A * B, p + 1)).view(n, A, B, p + 1)
                x1 = x_all[s % span]
                grads = net.grads(theta, x1, slot_d[s], y_d[s], w_d[s], kind)
                if net.P > net.offsets[-1]:
                    grads.append(pad_block)
                torch.cat([g.reshape(A, -1) for g in grads], dim=1, out=gbuf)
                if s == 0 or (active[s] != active[s - 1]).any():
                    runs = _adam_runs(active[s], n_steps[alive])
                # Adam, one fused call per run of consecutive models with equal step counts (one call
                # for the whole group when all step together); the update of an element depends only
                # on its own values, so how models are cut into runs changes nothing
                for a, b, c in runs:
                    sl = [[t[a:b].view(-1)] for t in (theta, gbuf, m1, m2)]
                    torch._fused_adam_(sl[0], sl[1], sl[2], sl[3], [], [step_table[c + s]], lr=config.lr,
                                       beta1=b1, beta2=b2, weight_decay=config.weight_decay, eps=config.eps,
                                       amsgrad=False, maximize=False)
            remaining[alive] -= s_m
            n_steps[alive] += s_m
        epochs_run[alive] += (s_m > 0)
        with torch.no_grad():
            val = _early_stop_loss(_shared(net, theta, prep.Xv1), prep.yv, prep).double().cpu().numpy()
        take, done = early_stop_update(val, alive, best_val, best_epoch, bad, remaining, epoch, config.keep, patience)
        if take.any():
            best = torch.where(torch.from_numpy(take).to(dev).unsqueeze(-1), theta, best)
        if done.any():
            d_idx = torch.from_numpy(np.flatnonzero(done)).to(dev)
            final.index_copy_(0, torch.from_numpy(alive[done]).to(dev), best.index_select(0, d_idx))
            keep = torch.from_numpy(np.flatnonzero(~done)).to(dev)
            theta, m1, m2, best = (t.index_select(0, keep) for t in (theta, m1, m2, best))
            gbuf = torch.empty_like(theta)
            alive = alive[~done]
        epoch += 1
    with torch.no_grad():
        evals = _evaluate_batched(prep, net, final, specs)
    seconds = (time.perf_counter() - t0) / n_real
    out = []
    for m, s in enumerate(specs[:n_real]):
        f, val_losses, test, rows = evals[m]
        out.append(SubsetResult(subset=s.subset, f=f, val_losses=val_losses, test=test, seconds=seconds,
                                device=str(dev), seed=s.seed, epochs=int(epochs_run[m]),
                                best_epoch=int(best_epoch[m]), n_train=len(s.rows), rows=rows))
    return out


def _native_kernel(prep: _Prepared, net: BatchedMTL, dev: torch.device):
    """The C epoch kernel (:mod:`planner_models.native`) where it applies: CPU, one hidden layer, float32;
    else ``None`` (the PyTorch path below)."""
    if dev.type != "cpu" or len(net.hidden) != 1 or prep.X1.dtype != torch.float32:
        return None
    from .native import epoch_kernel

    return epoch_kernel(net.in_dim + 1, net.width[0], net.C)


def _adam_runs(active: np.ndarray, n_steps: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, end, steps)``: maximal runs of consecutive active models with equal step counts."""
    js = np.flatnonzero(active)
    if not len(js):
        return []
    cut = np.flatnonzero((np.diff(js) != 1) | (np.diff(n_steps[js]) != 0)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(js)]])
    return [(int(js[a]), int(js[e - 1]) + 1, int(n_steps[js[a]])) for a, e in zip(starts, ends)]


def _shared(net: BatchedMTL, theta: torch.Tensor, X1: torch.Tensor) -> torch.Tensor:
    """Target-head outputs ``(M, n, C)`` of every model on rows ``X1`` (padded to 16 rows inside)."""
    n = X1.shape[0]
    pad = -n % 16
    if pad:
        X1 = torch.cat([X1, X1.new_zeros(pad, X1.shape[1])])
    return net.forward_shared(theta, X1, 0)[:, :n]


def _evaluate_batched(prep: _Prepared, net: BatchedMTL, theta: torch.Tensor, specs: list[_Spec]):
    dev = prep.device
    loss = prep.loss
    # target: validation (f) and test metrics on rows shared by all models
    out_v = _shared(net, theta, prep.Xv1)
    tv = _metric_dict(out_v, prep.yv, prep, loss)["loss"].double().cpu().numpy()
    out_t, yt = None, None
    if len(prep.test_rows):
        tr = torch.as_tensor(prep.test_rows, device=dev)
        out_t, yt = _shared(net, theta, prep.X1[tr]), prep.y[tr]
        td = {k: v.double().cpu().numpy() for k, v in _metric_dict(out_t, yt, prep, loss).items()}
    else:
        td = {}
    rows = target_rows(out_v, out_t, prep, loss, yt)
    # every source member's validation loss: per model, the validation rows of its own source tasks (the
    # target's, member 0, are already in tv), each through its member's head (with a shared head
    # forward_rows ignores the slot). CPU: pieces of about 32k rows (a piece's activations stay in the
    # caches); GPU: large pieces; never a piece of one model (other kernel paths; see _train_group).
    member = member_val_losses(
        prep, specs, lambda a, b, idx, slot: net.forward_rows(
            theta[a:b], prep.X1.index_select(0, idx.view(-1)).view(idx.shape[0], idx.shape[1], -1), slot),
        piece_rows=1 << (21 if dev.type == "cuda" else 15), round_to=16, min_piece=2)
    res = []
    for m, s in enumerate(specs):
        val_losses = {t: float(member[m, k]) for k, t in enumerate(s.subset)}
        val_losses[prep.target] = float(tv[m])
        res.append((float(tv[m]), val_losses, {k: float(v[m]) for k, v in td.items()}, rows[m]))
    return res


# ---------------------------------------------------------------------------- plain loop
def train_subsets_plain(data: TaskData, target: int | str, subsets: Sequence[Sequence[int]], config: TrainConfig,
                        seeds: Sequence[int], progress: Callable[[int], None] | None = None) -> list[SubsetResult]:
    """The same models as :func:`train_subsets`, one after another: one ``MTLNet`` and one
    ``torch.optim.Adam`` per subset. The reference for correctness tests and the benchmark."""
    prep = _prepare(data, target, config)
    specs = _specs(prep, subsets, seeds, config)
    out = []
    for spec in specs:
        out.append(_train_one_plain(prep, spec, config))
        if progress is not None:
            progress(1)
    return out


def train_one_module(data: TaskData, target: int | str, subset: Sequence[int], config: TrainConfig,
                     seed: int) -> tuple[SubsetResult, MTLNet]:
    """One subset model by the plain loop, returned with its trained network (slot 0 the target, then
    the sources in increasing order): the model :func:`train_subsets` trains for this seed, up to float
    rounding, for saving or inspecting."""
    prep = _prepare(data, target, config)
    (spec,) = _specs(prep, [subset], [seed], config)
    return _train_one_plain(prep, spec, config, keep_net=True)


def _train_one_plain(prep: _Prepared, spec: _Spec, config: TrainConfig, keep_net: bool = False):
    t0 = time.perf_counter()
    dev = prep.device
    p, C, B = prep.data.n_features, prep.out_dim, config.batch_size
    net = MTLNet.from_params(init_params(spec.seed, p, config.hidden, spec.n_heads, C), p, config.hidden).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
                           weight_decay=config.weight_decay)
    slot_of_task = spec.slot_of
    rng = np.random.default_rng(spec.seed)
    remaining = spec.budget
    best_val, bad, best_epoch, epochs_run = math.inf, 0, 0, 0
    best_state = [t.detach().clone() for t in net.parameters()]
    patience = config.patience or 0
    slot_all = torch.from_numpy(slot_of_task[prep.data.task]).to(dev)
    epoch = 0
    while True:
        steps = min(spec.steps_per_epoch, remaining)
        if steps > 0:
            perm = torch.from_numpy(rng.permutation(spec.rows)[:steps * B]).to(dev)
            for s in range(steps):
                b = perm[s * B:(s + 1) * B]
                out = net(prep.X[b], slot_all[b])
                if prep.data.n_classes:
                    loss = F.cross_entropy(out, prep.y[b])
                else:
                    loss = F.mse_loss(out.squeeze(-1), prep.y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            remaining -= steps
            epochs_run += 1
        with torch.no_grad():
            val = float(_early_stop_loss(net(prep.Xv, 0).unsqueeze(0), prep.yv, prep)[0])
        if val < best_val:
            best_val, bad, best_epoch = val, 0, epoch + 1
            best_state = [t.detach().clone() for t in net.parameters()]
        else:
            bad += 1
            if config.keep == "last":
                best_epoch = epoch + 1
                best_state = [t.detach().clone() for t in net.parameters()]
        epoch += 1
        if remaining == 0 or (patience and bad >= patience):
            break
    with torch.no_grad():
        for t, b in zip(net.parameters(), best_state):
            t.copy_(b)
        loss_name = prep.loss
        out_v = net(prep.Xv, 0).unsqueeze(0)
        f = float(_metric_dict(out_v, prep.yv, prep, loss_name)["loss"][0])
        val_losses = {}
        for k, t in enumerate(spec.subset):
            vr = torch.as_tensor(prep.val_rows[t], device=dev)
            if len(vr) == 0:
                val_losses[t] = float("nan")
                continue
            head = int(spec.slot_of[t])
            val_losses[t] = float(_per_row(net(prep.X[vr], head), prep.y[vr], prep, loss_name).double().mean())
        val_losses[prep.target] = f
        tr = torch.as_tensor(prep.test_rows, device=dev)
        out_t = net(prep.X[tr], 0).unsqueeze(0) if len(tr) else None
        test = ({k: float(v[0]) for k, v in _metric_dict(out_t, prep.y[tr], prep, loss_name).items()}
                if len(tr) else {})
        rows = target_rows(out_v, out_t, prep, loss_name, prep.y[tr])[0]
    result = SubsetResult(subset=spec.subset, f=f, val_losses=val_losses, test=test,
                          seconds=time.perf_counter() - t0, device=str(dev), seed=spec.seed, epochs=epochs_run,
                          best_epoch=best_epoch, n_train=len(spec.rows), rows=rows)
    return (result, net) if keep_net else result


# ---------------------------------------------------------------------------- baselines
def train_single_task(data: TaskData, target: int | str, config: TrainConfig, seed: int = 0,
                      builder: Any = None) -> SubsetResult:
    """Single-task learning: the target alone (same engine, same schedule)."""
    return train_subsets(data, target, [[]], config, [seed], builder=builder)[0]


def train_pooled(data: TaskData, target: int | str, config: TrainConfig, seed: int = 0,
                 builder: Any = None) -> SubsetResult:
    """Pooling: the target with every source task."""
    t = data.task_index(target)
    return train_subsets(data, t, [[i for i in range(data.n_tasks) if i != t]], config, [seed], builder=builder)[0]
