"""Hard parameter sharing: a shared MLP encoder and one linear head per task.

Two forms of the same network:

* :class:`MTLNet`: one model as an ordinary ``nn.Module`` (used by the plain one-model-at-a-time
  loop, by tests and by anyone who wants a model object);
* :class:`BatchedMTL`: ``M`` such models stacked, each with its own encoder and heads, their
  parameters rows of one ``(M, P)`` tensor; forward and backward are written out with batched matrix
  products (``torch.baddbmm`` / ``torch.bmm``), so a whole population of subset models takes one
  step with a few dozen tensor operations.

Network (the surrogate paper's tabular setting: one hidden layer of 32 ReLU units):

    a_0 = x,   a_l = relu(a_{l-1} W_l + b_l)  (l = 1..L),   out = a_L H_k + c_k  for a row of task slot k

With ``heads="shared"`` (:func:`head_slots`) the network has a single head that every task's rows
go through: the data of the members is pooled into one classifier on the shared encoder.

Parameters are initialised like ``nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``), from a CPU
``torch.Generator`` seeded per model, so a model's initial weights depend only on its seed, its
layer sizes and its number of heads.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

HEADS = ("task", "shared")


def head_slots(heads: str, n_tasks: int, members: Sequence[int]) -> tuple[int, np.ndarray]:
    """The heads of a model on ``members`` (the target first): ``(number of heads, slot of every task
    index 0..n_tasks-1)``. ``heads="task"``: one head per member, member ``k`` in slot ``k``;
    ``heads="shared"``: one head that every member's rows go through (slot 0), so a source's labels
    train the target's classifier directly (the end model of weak supervision)."""
    if heads not in HEADS:
        raise ValueError(f"heads must be one of {', '.join(HEADS)}, got {heads!r}")
    slot = np.zeros(n_tasks, dtype=np.int64)
    if heads == "shared":
        return 1, slot
    slot[list(members)] = np.arange(len(members))
    return len(members), slot


def init_params(seed: int, in_dim: int, hidden: Sequence[int], n_heads: int, out_dim: int) -> list[torch.Tensor]:
    """Initial parameters of one model, float32 on the CPU, in this order:

    ``W_1 (in_dim, h_1), b_1 (h_1,), ..., W_L, b_L, H (n_heads, h_L, out_dim), c (n_heads, out_dim)``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    out: list[torch.Tensor] = []

    def uniform(shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return (torch.rand(shape, generator=gen, dtype=torch.float32) * 2.0 - 1.0) * bound

    prev = in_dim
    for h in hidden:
        out.append(uniform((prev, h), prev))
        out.append(uniform((h,), prev))
        prev = h
    out.append(uniform((n_heads, prev, out_dim), prev))
    out.append(uniform((n_heads, out_dim), prev))
    return out


def init_params_many(seeds: Sequence[int], in_dim: int, hidden: Sequence[int], n_heads: int,
                     out_dim: int) -> list[torch.Tensor]:
    """:func:`init_params` of many models with equal shapes at once, stacked: tensor ``i`` of the
    result has shape ``(len(seeds), *shape_i)`` and row ``m`` equal (bitwise) to tensor ``i`` of
    ``init_params(seeds[m], ...)``.

    The uniform draws of one model's tensors, made one after another from its generator, are the
    consecutive pieces of one draw of their total size, so each model takes a single ``torch.rand``
    call; the scaling is element-wise (same float32 operations, one call per tensor for all models).
    """
    shapes: list[tuple[int, ...]] = []
    fans: list[int] = []
    prev = in_dim
    for h in hidden:
        shapes += [(prev, h), (h,)]
        fans += [prev, prev]
        prev = h
    shapes += [(n_heads, prev, out_dim), (n_heads, out_dim)]
    fans += [prev, prev]
    sizes = [math.prod(sh) for sh in shapes]
    M = len(seeds)
    raw = torch.empty(M, sum(sizes), dtype=torch.float32)
    gen = torch.Generator()
    for m, seed in enumerate(seeds):
        gen.manual_seed(int(seed))
        torch.rand(raw.shape[1], generator=gen, dtype=torch.float32, out=raw[m])
    out: list[torch.Tensor] = []
    a = 0
    for sh, n, fan in zip(shapes, sizes, fans):
        bound = 1.0 / math.sqrt(fan) if fan > 0 else 0.0
        out.append(((raw[:, a:a + n] * 2.0 - 1.0) * bound).view(M, *sh))
        a += n
    return out


class MTLNet(nn.Module):
    """One hard-parameter-sharing network: shared ReLU MLP encoder, ``n_heads`` linear heads.

    ``forward(x, slot)`` returns the outputs of each row's own head: ``(n, out_dim)``.
    The heads are stacked in one parameter ``head_w (n_heads, h_L, out_dim)`` so that every head is
    part of every step's graph (a head with no row in a batch gets a zero gradient, as in the
    batched trainer).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], n_heads: int, out_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        self.encoder = nn.Sequential(*layers)
        self.head_w = nn.Parameter(torch.zeros(n_heads, prev, out_dim))
        self.head_b = nn.Parameter(torch.zeros(n_heads, out_dim))
        self.n_heads, self.out_dim = n_heads, out_dim

    @classmethod
    def from_params(cls, params: Sequence[torch.Tensor], in_dim: int, hidden: Sequence[int]) -> "MTLNet":
        n_heads, _, out_dim = params[-2].shape
        net = cls(in_dim, hidden, n_heads, out_dim)
        net.load_params(params)
        return net

    @torch.no_grad()
    def load_params(self, params: Sequence[torch.Tensor]) -> None:
        """Copy parameters in :func:`init_params` layout (weights as ``(in, out)``)."""
        linears = [m for m in self.encoder if isinstance(m, nn.Linear)]
        for i, lin in enumerate(linears):
            lin.weight.copy_(params[2 * i].T)
            lin.bias.copy_(params[2 * i + 1])
        self.head_w.copy_(params[-2])
        self.head_b.copy_(params[-1])

    def params_list(self) -> list[torch.Tensor]:
        """Parameters in :func:`init_params` layout (detached copies)."""
        out = []
        for lin in (m for m in self.encoder if isinstance(m, nn.Linear)):
            out += [lin.weight.detach().T.clone(), lin.bias.detach().clone()]
        return out + [self.head_w.detach().clone(), self.head_b.detach().clone()]

    def forward(self, x: torch.Tensor, slot: torch.Tensor | int) -> torch.Tensor:
        h = self.encoder(x)
        if isinstance(slot, int):
            return h @ self.head_w[slot] + self.head_b[slot]
        k, hd, c = self.head_w.shape
        all_heads = h @ self.head_w.permute(1, 0, 2).reshape(hd, k * c) + self.head_b.reshape(k * c)
        return all_heads.view(-1, k, c).gather(1, slot.view(-1, 1, 1).expand(-1, 1, c)).squeeze(1)


ALIGN = 16  # floats (64 bytes)


def _round_up(n: int, k: int = ALIGN) -> int:
    return -(-n // k) * k


class BatchedMTL:
    """Layout and math of ``M`` stacked networks with ``K`` head slots each.

    Parameters of model ``m`` are row ``theta[m]`` of an ``(M, P)`` tensor, cut into blocks:

    * layer 1: ``A_1`` of shape ``(in + 1, h_1')``: rows ``W_1`` then the bias ``b_1`` (inputs carry
      a constant 1 in their last column, so ``z_1 = x1 A_1``);
    * layer ``l >= 2``: ``W_l (h_{l-1}', h_l')`` and ``b_l (h_l')``;
    * heads: ``G (K * C, h_L')`` (row ``k * C + c``: head ``k``'s weights for output ``c``) and
      ``c (K * C)``.

    Hidden widths ``h'`` are the configured ones rounded up to a multiple of 16; the extra units have
    zero weights, stay at zero and never get a gradient, so they change nothing but the memory
    layout. With batches of a multiple of 16 rows every matrix in every batched product then starts
    at a 64-byte boundary, and matrix kernels (whose rounding can depend on alignment) treat every
    model alike: a model's results do not depend on its batch-mates. ``P`` is a multiple of 16 too.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], n_slots: int, out_dim: int):
        self.in_dim, self.hidden, self.K, self.C = in_dim, tuple(hidden), n_slots, out_dim
        self.width = tuple(_round_up(h) for h in self.hidden)
        shapes: list[tuple[int, ...]] = [(in_dim + 1, self.width[0])]
        for i in range(1, len(self.width)):
            shapes += [(self.width[i - 1], self.width[i]), (self.width[i],)]
        shapes += [(n_slots * out_dim, self.width[-1]), (n_slots * out_dim,)]
        self.shapes = shapes
        self.offsets = [0]
        for s in shapes:
            self.offsets.append(self.offsets[-1] + math.prod(s))
        self.P = _round_up(self.offsets[-1])

    # ---------------------------------------------------------------- layout
    def views(self, theta: torch.Tensor) -> list[torch.Tensor]:
        M = theta.shape[0]
        return [theta[:, a:b].view(M, *shape) for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    def pack(self, models: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        """``(M, P)`` CPU tensor from per-model parameters in :func:`init_params` layout."""
        theta = torch.zeros(len(models), self.P, dtype=torch.float32)
        L = len(self.hidden)
        for m, params in enumerate(models):
            v = [t[0] for t in self.views(theta[m:m + 1])]
            W, b = params[0], params[1]
            v[0][:self.in_dim, :W.shape[1]] = W
            v[0][self.in_dim, :W.shape[1]] = b
            for i in range(1, L):
                W, b = params[2 * i], params[2 * i + 1]
                v[2 * i - 1][:W.shape[0], :W.shape[1]] = W
                v[2 * i][:W.shape[1]] = b
            hw, hb = params[-2], params[-1]
            n_heads, hd, C = hw.shape
            v[-2][:n_heads * C, :hd] = hw.permute(0, 2, 1).reshape(n_heads * C, hd)
            v[-1][:n_heads * C] = hb.reshape(-1)
        return theta

    def pack_many(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        """:meth:`pack` of models given as stacked tensors (:func:`init_params_many` layout:
        ``(M, *shape)`` per tensor, all models with the same number of heads); the same ``theta``."""
        M = params[0].shape[0]
        theta = torch.zeros(M, self.P, dtype=torch.float32)
        v = self.views(theta)
        L = len(self.hidden)
        W, b = params[0], params[1]
        v[0][:, :self.in_dim, :W.shape[2]] = W
        v[0][:, self.in_dim, :W.shape[2]] = b
        for i in range(1, L):
            W, b = params[2 * i], params[2 * i + 1]
            v[2 * i - 1][:, :W.shape[1], :W.shape[2]] = W
            v[2 * i][:, :W.shape[2]] = b
        hw, hb = params[-2], params[-1]
        _, n_heads, hd, C = hw.shape
        v[-2][:, :n_heads * C, :hd] = hw.permute(0, 1, 3, 2).reshape(M, n_heads * C, hd)
        v[-1][:, :n_heads * C] = hb.reshape(M, -1)
        return theta

    def unpack(self, row: torch.Tensor, n_heads: int) -> list[torch.Tensor]:
        """Parameters of one model (a row of ``theta``) in :func:`init_params` layout, on the CPU."""
        v = [t[0].detach().cpu() for t in self.views(row.reshape(1, -1))]
        h = self.hidden
        out = [v[0][:self.in_dim, :h[0]].clone(), v[0][self.in_dim, :h[0]].clone()]
        for i in range(1, len(h)):
            out += [v[2 * i - 1][:h[i - 1], :h[i]].clone(), v[2 * i][:h[i]].clone()]
        G = v[-2][:n_heads * self.C, :h[-1]].reshape(n_heads, self.C, h[-1])
        return out + [G.permute(0, 2, 1).clone(), v[-1][:n_heads * self.C].reshape(n_heads, self.C).clone()]

    # ---------------------------------------------------------------- math
    def _sign(self, like: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]``: gradients of the two logits of a binary head from that of their difference."""
        s = getattr(self, "_sign_t", None)
        if s is None or s.device != like.device:
            s = self._sign_t = torch.tensor([-1.0, 1.0], device=like.device)
        return s
    def encode(self, theta: torch.Tensor, x1: torch.Tensor) -> list[torch.Tensor]:
        """Activations ``[x1, a_1, ..., a_L]`` for inputs ``x1 (M, B, in + 1)`` (last column 1);
        ``x1`` may be an expanded ``(n, in + 1)`` tensor shared by all models."""
        v = self.views(theta)
        a = torch.bmm(x1, v[0]).relu_()
        acts = [x1, a]
        for i in range(1, len(self.hidden)):
            a = torch.bmm(a, v[2 * i - 1]).add_(v[2 * i].unsqueeze(1)).relu_()
            acts.append(a)
        return acts

    def forward_rows(self, theta: torch.Tensor, x1: torch.Tensor, slot: torch.Tensor | None) -> torch.Tensor:
        """Outputs ``(M, R, C)`` for per-model rows ``x1 (M, R, in + 1)``, each through head ``slot (M, R)``."""
        v = self.views(theta)
        a = self.encode(theta, x1)[-1]
        out_all = torch.bmm(v[-2], a.transpose(1, 2)).add_(v[-1].unsqueeze(2))   # (M, K * C, R)
        M, _, R = out_all.shape
        if self.K == 1 or slot is None:
            out = out_all[:, :self.C]
        else:
            idx = slot.view(M, 1, 1, R).expand(M, 1, self.C, R)
            out = out_all.view(M, self.K, self.C, R).gather(1, idx).squeeze(1)
        return out.transpose(1, 2).contiguous()

    def forward_shared(self, theta: torch.Tensor, X1: torch.Tensor, slot: int) -> torch.Tensor:
        """Outputs ``(M, n, C)`` of head ``slot`` of every model on the same rows ``X1 (n, in + 1)``
        (``n`` a multiple of 16 for position-independent results)."""
        v = self.views(theta)
        a = self.encode(theta, X1.expand(theta.shape[0], *X1.shape))[-1]
        G = v[-2][:, slot * self.C:(slot + 1) * self.C, :]
        out = torch.bmm(G, a.transpose(1, 2)).add_(v[-1][:, slot * self.C:(slot + 1) * self.C].unsqueeze(2))
        return out.transpose(1, 2).contiguous()

    def grads(self, theta: torch.Tensor, x1: torch.Tensor, slot: torch.Tensor, target: torch.Tensor,
              weight: torch.Tensor, kind: str) -> list[torch.Tensor]:
        """Gradient blocks (one per entry of :meth:`views`) of the weighted training loss

            sum_m sum_b weight[m, b] * loss(out[m, b], target[m, b])

        with ``kind`` ``"binary"`` (two-class softmax cross-entropy; ``target`` float 0/1),
        ``"multiclass"`` (softmax cross-entropy; ``target`` int64) or ``"regression"`` (squared error).
        ``x1 (M, B, in + 1)``; ``slot``, ``target``, ``weight``: ``(M, B)``. For results independent of
        a model's position in the batch, ``B`` should be a multiple of 16 (the trainer pads batches).
        """
        v = self.views(theta)
        G, c = v[-2], v[-1]
        M, B = slot.shape
        K, C = self.K, self.C
        acts = self.encode(theta, x1)
        a = acts[-1]
        aT = a.transpose(1, 2)
        # head products in the transposed layout (M, heads, B): a (K*C, h') x (h', B) product per
        # model is several times faster than (B, h') x (h', K*C) when K*C is small
        if kind == "binary":
            # two logits per head; only their difference matters: p_1 = sigmoid(o_1 - o_0)
            Gd = G[:, 1::2, :] - G[:, 0::2, :]                                   # (M, K, h')
            diff = torch.bmm(Gd, aT).add_((c[:, 1::2] - c[:, 0::2]).unsqueeze(2))  # (M, K, B)
            if K > 1:
                diff = diff.gather(1, slot.unsqueeze(1))
            g = torch.sigmoid(diff.view(M, B)).sub_(target).mul_(weight)       # dL/d(o_1) = -dL/d(o_0)
            g_all = g.unsqueeze(1) if K == 1 else g.new_zeros(M, K, B).scatter_(1, slot.unsqueeze(1), g.unsqueeze(1))
            sign = self._sign(a)
            gG = (torch.bmm(g_all, a).unsqueeze(2) * sign.view(1, 1, 2, 1)).view(M, K * 2, -1)
            gc = (g_all.sum(2).unsqueeze(2) * sign).view(M, K * 2)
            da = torch.bmm(g_all.transpose(1, 2), Gd)
        else:
            out_all = torch.bmm(G, aT).add_(c.unsqueeze(2))                     # (M, K * C, B)
            if K > 1:
                idx = slot.view(M, 1, 1, B).expand(M, 1, C, B)
                out = out_all.view(M, K, C, B).gather(1, idx).squeeze(1)        # (M, C, B)
            else:
                out = out_all
            if kind == "multiclass":
                dout = torch.softmax(out, dim=1)
                dout.scatter_add_(1, target.unsqueeze(1), torch.full((M, 1, B), -1.0, device=out.device))
                dout.mul_(weight.unsqueeze(1))
            else:
                dout = (out.squeeze(1) - target).mul_(weight * 2.0).unsqueeze(1)
            if K > 1:
                d_all = out.new_zeros(M, K, C, B).scatter_(1, idx, dout.unsqueeze(1)).view(M, K * C, B)
            else:
                d_all = dout
            gG = torch.bmm(d_all, a)
            gc = d_all.sum(2)
            da = torch.bmm(d_all.transpose(1, 2), G)
        L = len(self.hidden)
        out_grads: list[torch.Tensor] = [None] * len(v)  # type: ignore[list-item]
        out_grads[-2], out_grads[-1] = gG, gc
        for i in range(L - 1, -1, -1):
            dz = torch.ops.aten.threshold_backward.grad_input(da, acts[i + 1], 0.0, grad_input=da)
            if i == 0:
                out_grads[0] = torch.bmm(acts[0].transpose(1, 2), dz)
            else:
                out_grads[2 * i - 1] = torch.bmm(acts[i].transpose(1, 2), dz)
                out_grads[2 * i] = dz.sum(1)
                da = torch.bmm(dz, v[2 * i - 1].transpose(1, 2))
        return out_grads
