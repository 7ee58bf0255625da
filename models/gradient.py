"""Gradient-based estimates of f(S): one trained network, a linearised fine-tune per subset.

After the form of Li et al., "Scalable Multitask Learning Using Gradient-based Estimation of Task
Affinity" (KDD 2024), written for this project's networks:

1. **One model on all tasks.** A hard-sharing network (:class:`planner_models.mtl.MTLNet`: shared encoder,
   one head per task, or one shared head with ``heads="shared"``) is trained on the training rows of the target and every source, with Adam and
   early stopping on the target's validation loss (``GradientConfig.base``, a
   :class:`planner_models.train.TrainConfig`; keeps the best state). Its parameters are ``theta_0``.
2. **Gradient features.** For every training row of every task, and for the target's validation
   rows, ``g(x) = d out_t(x; theta) / d theta`` at ``theta_0``, where ``out_t`` is the *target's*
   head output (binary: the logit difference ``z_1 - z_0``; regression: the prediction) and
   ``theta`` the shared encoder plus the target's head. Optionally projected to ``dim`` dimensions
   with a seeded Gaussian matrix (``N(0, 1/dim)`` entries, so inner products are kept in
   expectation).
3. **A linearised fine-tune per subset.** For a subset ``S`` the model is ``out(x) = g(x)^T w``
   (no base-output offset: ``w`` is fitted from scratch), fitted on the training rows of
   ``{t} ∪ S``: binary classification by ridge-penalised logistic regression, regression by ridge
   regression on the standardised labels::

       w_S = argmin_w  (1 / n_S) sum_{r in S} l(g_r^T w, y_r) + (lambda / 2) ||w||^2,
       lambda = ridge * mean_r ||g_r||^2 / dim.

   Regression is solved exactly from per-task blocks ``A_t = G_t^T G_t``, ``b_t = G_t^T y_t``.
   Logistic regression uses per-task Hessian blocks ``H_t = G_t^T diag(p(1 - p)) G_t`` taken at the
   pooled fit ``w_bar`` (all tasks): every subset's Newton matrix is ``sum_{t in S} H_t / n_S +
   lambda I`` (one Cholesky factor per subset), used to precondition nonlinear conjugate gradients
   (Polak-Ribiere+) with the subset's exact gradient and a Newton step along each direction
   (all subsets at once: two ``(rows, dim) x (dim, subsets)`` products per iteration), with step
   halving where the objective would rise, until the gradient norm is below ``tol``. The fixed
   point is the exact ridge-logistic optimum; :meth:`GradientEstimator.f_plain` computes it subset
   by subset with full Newton steps for checking.
4. **f(S)** is the target's validation loss of ``w_S`` in the trainer's units
   (:class:`planner_models.train.TrainConfig.loss`: ``margin`` = largest other-class probability minus the
   correct-class probability, ``ce``, ``zero_one``; regression ``mse`` in label units).

Multi-class labels (more than two classes) are not supported yet.

Everything is deterministic for a seed (initial weights, batches and the projection are drawn from
it); the fitting runs in float64 on ``device`` (CPU or CUDA).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import TRAIN, VAL, DataError, TaskData
from .losses import resolve_loss
from .mtl import MTLNet, head_slots, init_params
from .train import TrainConfig, resolve_device, scaled_labels, training_rows


@dataclass(frozen=True)
class GradientConfig:
    """Settings of the gradient estimator.

    ``base``: how the one network on all tasks is trained (``None``: ``TrainConfig()``; its
    ``loss`` also names the loss reported as f). ``dim``: random projection width (``None`` or at
    least the number of parameters: no projection). ``ridge``: relative ridge penalty (see the
    module docstring). ``max_iter`` / ``tol``: logistic iterations and the stopping gradient norm
    (relative to ``lambda``-free scale). ``chunk``: subsets fitted at once. ``device``: ``auto``,
    ``cpu`` or ``cuda``.
    """

    base: TrainConfig | None = None
    dim: int | None = 128
    ridge: float = 1.0
    max_iter: int = 100
    tol: float = 1e-7
    chunk: int = 256
    device: str = "auto"

    def train_config(self) -> TrainConfig:
        return self.base if self.base is not None else TrainConfig()


def _as_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class GradientEstimator:
    """The per-task blocks of the gradient estimator for one target; :meth:`f` for any subsets.

    ``sources``: the tasks that subsets may contain (default: every task but the target); the base
    network is trained on the target and all of them. ``seconds``: time of the set-up (training,
    features, blocks).
    """

    def __init__(self, data: TaskData, target: int | str, config: GradientConfig | None = None, seed: int = 0,
                 sources: Sequence[int] | None = None):
        t0 = time.perf_counter()
        self.config = config = config or GradientConfig()
        self.data = data
        self.target = data.task_index(target)
        self.seed = int(seed)
        if data.n_classes > 2:
            raise DataError(f"the gradient estimator handles binary labels and regression; the data has "
                            f"{data.n_classes} classes")
        self.regression = data.n_classes == 0
        base = config.train_config()
        self.loss = resolve_loss(base.loss, data.n_classes)
        self.device = resolve_device(config.device)
        srcs = [i for i in range(data.n_tasks) if i != self.target] if sources is None else \
            sorted({data.task_index(int(s)) for s in sources} - {self.target})
        self.tasks = [self.target] + srcs                       # universe; position = block index
        self.pos = {t: i for i, t in enumerate(self.tasks)}
        y_np, self.y_scale = scaled_labels(data)
        self._y = y_np
        # 1. one network on every task
        self.net = self._train_base(base)
        # 2. gradient features of the target head, for training rows of every task and target validation rows
        rows = training_rows(data, base)
        self.train_rows = [rows[t] for t in self.tasks]
        self.val_rows = data.rows(self.target, VAL)
        if len(self.val_rows) == 0:
            raise DataError(f"target task {data.task_names[self.target]!r} has no validation rows")
        all_rows = np.concatenate(self.train_rows + [self.val_rows])
        G = self._features(all_rows)
        n_tr = sum(len(r) for r in self.train_rows)
        dev, dt = self.device, torch.float64
        self.G = G[:n_tr].to(dev, dt)                                      # (N, d) training rows, task by task
        self.Gv = G[n_tr:].to(dev, dt)                                     # (n_v, d)
        self.row_block = torch.as_tensor(np.repeat(np.arange(len(self.tasks)), [len(r) for r in self.train_rows]),
                                         device=dev)
        yt = torch.as_tensor(y_np[all_rows[:n_tr]], device=dev).to(dt)
        yv = torch.as_tensor(y_np[self.val_rows], device=dev).to(dt)
        self.dim = self.G.shape[1]
        self.n_block = torch.as_tensor([len(r) for r in self.train_rows], device=dev, dtype=dt)
        self.lam = config.ridge * float((self.G ** 2).sum(1).mean()) / self.dim
        if self.regression:
            self.yt, self.yv = yt, yv
        else:
            self.yt, self.yv = 2.0 * yt - 1.0, 2.0 * yv - 1.0           # labels as signs
        # 3. per-task blocks
        T = len(self.tasks)
        self.blocks = torch.zeros(T, self.dim, self.dim, device=dev, dtype=dt)
        self.rhs = torch.zeros(T, self.dim, device=dev, dtype=dt)
        if self.regression:
            for b in range(T):
                Gb = self.G[self.row_block == b]
                self.blocks[b] = Gb.T @ Gb
                self.rhs[b] = Gb.T @ self.yt[self.row_block == b]
            self.w_ref = None
        else:
            # reference point: the pooled fit on every task
            self.w_ref = self._newton(self.G, self.yt)
            z = self.G @ self.w_ref
            pw = torch.sigmoid(z) * torch.sigmoid(-z)
            for b in range(T):
                sel = self.row_block == b
                Gb = self.G[sel]
                self.blocks[b] = Gb.T @ (Gb * pw[sel, None])
        self.seconds = time.perf_counter() - t0
        self.iterations = 0
        self.trace: list[float] = []

    # ------------------------------------------------------------------ set-up
    def _train_base(self, cfg: TrainConfig) -> MTLNet:
        """One hard-sharing network on the target and every source (plain Adam loop, best state)."""
        data, dev = self.data, self.device
        p = data.n_features
        C = data.n_classes if data.n_classes else 1
        K, slot_of = head_slots(cfg.heads, data.n_tasks, self.tasks)
        gen_seed = self.seed
        net = MTLNet.from_params(init_params(gen_seed, p, cfg.hidden, K, C), p, cfg.hidden).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                               weight_decay=cfg.weight_decay)
        rows_all = training_rows(data, cfg)
        rows = np.concatenate([rows_all[t] for t in self.tasks])
        X = torch.from_numpy(data.X).to(dev)
        y = torch.from_numpy(self._y).to(dev)
        slot = torch.from_numpy(slot_of[data.task]).to(dev)
        vr = torch.as_tensor(data.rows(self.target, VAL), device=dev)
        rng = np.random.default_rng(self.seed)
        B = cfg.batch_size
        spe = math.ceil(len(rows) / B)
        budget = math.ceil(cfg.epoch_fraction * cfg.epochs * spe)
        best_val, bad = math.inf, 0
        best = [t.detach().clone() for t in net.parameters()]
        patience = cfg.patience or 0
        while budget > 0:
            steps = min(spe, budget)
            perm = torch.from_numpy(rng.permutation(rows)[:steps * B]).to(dev)
            for s in range(steps):
                b = perm[s * B:(s + 1) * B]
                out = net(X[b], slot[b])
                loss = F.cross_entropy(out, y[b]) if data.n_classes else F.mse_loss(out.squeeze(-1), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            budget -= steps
            with torch.no_grad():
                out = net(X[vr], 0)
                val = float(F.cross_entropy(out, y[vr]) if data.n_classes else F.mse_loss(out.squeeze(-1), y[vr]))
            if val < best_val:
                best_val, bad = val, 0
                best = [t.detach().clone() for t in net.parameters()]
            else:
                bad += 1
                if patience and bad >= patience:
                    break
        with torch.no_grad():
            for t, b in zip(net.parameters(), best):
                t.copy_(b)
        self.base_val_loss = best_val
        return net

    def _features(self, rows: np.ndarray) -> torch.Tensor:
        """Projected gradients of the target head's output, one row per data row (float32, CPU)."""
        from torch.func import functional_call, grad, vmap

        net = self.net
        lin = [m for m in net.encoder if isinstance(m, torch.nn.Linear)]
        params = {}
        for i, m in enumerate(lin):
            params[f"w{i}"] = m.weight.detach()
            params[f"b{i}"] = m.bias.detach()
        params["H"] = net.head_w.detach()[0]          # target head: slot 0
        params["c"] = net.head_b.detach()[0]
        n_lin = len(lin)
        regression = self.regression

        def out(prm, x):
            h = x
            for i in range(n_lin):
                h = torch.relu(F.linear(h, prm[f"w{i}"], prm[f"b{i}"]))
            o = h @ prm["H"] + prm["c"]
            return o[0] if regression else o[1] - o[0]

        per_row = vmap(grad(out), in_dims=(None, 0))
        X = torch.from_numpy(self.data.X[rows]).to(self.device)
        names = list(params)
        D = sum(params[k].numel() for k in names)
        d = self.config.dim
        proj = None
        if d is not None and d < D:
            gen = torch.Generator().manual_seed(self.seed + 104729)
            proj = (torch.randn(D, d, generator=gen, dtype=torch.float32) / math.sqrt(d)).to(self.device)
        pieces = []
        for a in range(0, len(rows), 4096):
            g = per_row(params, X[a:a + 4096])
            flat = torch.cat([g[k].reshape(g[k].shape[0], -1) for k in names], dim=1)
            pieces.append((flat @ proj if proj is not None else flat).cpu())
        return torch.cat(pieces) if pieces else torch.zeros(0, d or D)

    def _newton(self, G: torch.Tensor, s: torch.Tensor, iters: int = 50) -> torch.Tensor:
        """Full Newton for one ridge-logistic problem (rows ``G``, sign labels ``s``): the exact optimum."""
        n, d = G.shape
        w = torch.zeros(d, device=G.device, dtype=G.dtype)
        eye = torch.eye(d, device=G.device, dtype=G.dtype)

        def obj(v):
            return float(F.softplus(-s * (G @ v)).mean() + 0.5 * self.lam * (v @ v))

        cur = obj(w)
        for _ in range(iters):
            z = G @ w
            g = G.T @ (-s * torch.sigmoid(-s * z)) / n + self.lam * w
            if float(g.norm()) < self.config.tol:
                break
            pw = torch.sigmoid(z) * torch.sigmoid(-z)
            H = G.T @ (G * pw[:, None]) / n + self.lam * eye
            step = torch.linalg.solve(H, g)
            t = 1.0
            while True:
                new = obj(w - t * step)
                if new <= cur or t < 1e-6:
                    break
                t *= 0.5
            w, cur = w - t * step, new
        return w

    # ------------------------------------------------------------------ subsets
    def _membership(self, subsets: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(T, M)`` 0/1: block ``b`` (the target always) belongs to subset ``m``."""
        M = len(subsets)
        mem = np.zeros((len(self.tasks), M))
        mem[0] = 1.0
        for m, sub in enumerate(subsets):
            for s in sub:
                s = int(s)
                if s == self.target:
                    continue
                if s not in self.pos:
                    raise ValueError(f"subset {m}: task {s} is not among the estimator's sources")
                mem[self.pos[s], m] = 1.0
        return torch.as_tensor(mem, device=self.device, dtype=torch.float64)

    def weights(self, subsets: Sequence[Sequence[int]]) -> torch.Tensor:
        """Fitted linearised weights ``(M, dim)`` of each subset (see the module docstring)."""
        out = []
        for a in range(0, len(subsets), self.config.chunk):
            out.append(self._weights_chunk(subsets[a:a + self.config.chunk]))
        return torch.cat(out) if out else torch.zeros(0, self.dim, dtype=torch.float64, device=self.device)

    def _weights_chunk(self, subsets) -> torch.Tensor:
        mem = self._membership(subsets)                                    # (T, M)
        n = mem.T @ self.n_block                                           # (M,)
        eye = torch.eye(self.dim, device=self.device, dtype=torch.float64)
        A = torch.einsum("tm,tij->mij", mem, self.blocks) / n[:, None, None] + self.lam * eye
        L = torch.linalg.cholesky(A)
        if self.regression:
            b = (mem.T @ self.rhs) / n[:, None]
            return torch.cholesky_solve(b.unsqueeze(-1), L).squeeze(-1)
        mask = mem[self.row_block]                                         # (N, M)
        G, s = self.G, self.yt[:, None]

        def objective(W):
            Z = G @ W.T
            return (mask * F.softplus(-s * Z)).sum(0) / n + 0.5 * self.lam * (W * W).sum(1)

        W = self.w_ref.unsqueeze(0).repeat(len(subsets), 1)
        M = len(subsets)
        D = torch.zeros_like(W)                     # previous search directions
        gy_prev = torch.ones(M, device=self.device, dtype=torch.float64)
        y_prev = torch.zeros_like(W)
        active = torch.arange(M, device=self.device)
        for it in range(self.config.max_iter):
            Wa, ma, na = W[active], mask[:, active], n[active]
            Z = G @ Wa.T
            sig = torch.sigmoid(-s * Z)
            grad = (G.T @ (ma * (-s * sig))).T / na[:, None] + self.lam * Wa      # (A, d)
            going = grad.norm(dim=1) >= self.config.tol
            if not bool(going.any()):
                break
            if not bool(going.all()):
                active, Wa, ma, na, grad, Z, sig = (active[going], Wa[going], ma[:, going], na[going], grad[going],
                                                    Z[:, going], sig[:, going])
            # preconditioned nonlinear conjugate gradients (Polak-Ribiere+), the chord matrix as preconditioner
            y = torch.cholesky_solve(grad.unsqueeze(-1), L[active]).squeeze(-1)
            gy = (grad * y).sum(1)
            beta = ((grad * (y - y_prev[active])).sum(1) / gy_prev[active]).clamp(min=0.0) if it else torch.zeros_like(gy)
            d = -y + beta[:, None] * D[active]
            slope = (grad * d).sum(1)
            bad = slope >= 0                       # not a descent direction: restart along -y
            if bool(bad.any()):
                d = torch.where(bad[:, None], -y, d)
                slope = torch.where(bad, -gy, slope)
            # step: one Newton step along d, with the subset's exact curvature
            Gd = G @ d.T
            curv = (ma * sig * (1.0 - sig) * Gd * Gd).sum(0) / na + self.lam * (d * d).sum(1)
            t = (-slope / curv)[:, None]
            cur = (ma * F.softplus(-s * Z)).sum(0) / na + 0.5 * self.lam * (Wa * Wa).sum(1)
            slack = 1e-13 * cur.abs() + 1e-15
            for _ in range(30):
                Wn = Wa + t * d
                new = (ma * F.softplus(-s * (Z + t.T * Gd))).sum(0) / na + 0.5 * self.lam * (Wn * Wn).sum(1)
                worse = new > cur + slack
                if not bool(worse.any()):
                    break
                t = torch.where(worse[:, None], 0.5 * t, t)
            W[active] = Wn
            D[active], y_prev[active], gy_prev[active] = d, y, gy
            self.iterations = max(self.iterations, it + 1)
            self.trace.append(float(grad.norm(dim=1).max()))
        return W

    def _val_loss(self, W: torch.Tensor) -> np.ndarray:
        Z = self.Gv @ W.T                                                  # (n_v, M)
        if self.regression:
            return _as_np(((Z - self.yv[:, None]) ** 2).mean(0) * self.y_scale ** 2)
        sz = self.yv[:, None] * Z
        if self.loss == "margin":
            per = 1.0 - 2.0 * torch.sigmoid(sz)
        elif self.loss == "ce":
            per = F.softplus(-sz)
        else:  # zero_one; a tie picks class 0 as the trainer's argmax does
            per = ((Z > 0).to(Z.dtype) != (self.yv[:, None] > 0).to(Z.dtype)).to(Z.dtype)
        return _as_np(per.mean(0))

    def f(self, subsets: Sequence[Sequence[int]]) -> np.ndarray:
        """Estimated f of each subset (task indices of ``data``; the target is implied)."""
        if len(subsets) == 0:
            return np.zeros(0)
        return self._val_loss(self.weights(subsets))

    def f_plain(self, subsets: Sequence[Sequence[int]]) -> np.ndarray:
        """The same estimate subset by subset, from the rows directly (exact Newton / least squares):
        the reference for checking :meth:`f`."""
        ws = []
        for sub in subsets:
            mem = _as_np(self._membership([sub])[:, 0]) > 0
            sel = torch.as_tensor(mem, device=self.device)[self.row_block]
            G, y = self.G[sel], self.yt[sel]
            if self.regression:
                A = G.T @ G / len(y) + self.lam * torch.eye(self.dim, device=self.device, dtype=torch.float64)
                ws.append(torch.linalg.solve(A, G.T @ y / len(y)))
            else:
                ws.append(self._newton(G, y, iters=100))
        return self._val_loss(torch.stack(ws))


def applies_to(data: TaskData, config: TrainConfig | None = None) -> tuple[bool, str]:
    """Whether the gradient estimate covers ``data`` trained with ``config``: binary labels or regression,
    with the built-in network. Returns ``(applies, why not)``."""
    if config is not None and getattr(config, "model", None):
        return False, "a user's own model is trained by retraining only"
    if data.n_classes and data.n_classes > 2:
        return False, f"{data.n_classes} classes (it handles binary labels and regression)"
    return True, ""


def gradient_f(data: TaskData, target_idx: int | str, subsets: Sequence[Sequence[int]],
               config: GradientConfig | None = None, seed: int = 0, sources: Sequence[int] | None = None) -> np.ndarray:
    """Gradient-based estimate of f(S) for every subset (task indices of ``data``): an array of
    length ``len(subsets)`` in the units of the trainer's f. See :class:`GradientEstimator`."""
    return GradientEstimator(data, target_idx, config, seed, sources).f(subsets)
