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

Parameters are initialised like ``nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``), from a CPU
``torch.Generator`` seeded per model, so a model's initial weights depend only on its seed, its
layer sizes and its number of heads.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


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


def aligned_empty(M: int, r: int, c: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``(M, r, c)`` tensor whose per-matrix stride is a multiple of 16 floats.

    Matrix kernels may round differently depending on where a matrix starts in memory; with every
    matrix equally aligned, a model's results do not depend on its position in the batch.
    """
    st = -(-(r * c) // ALIGN) * ALIGN
    return like.new_empty(M * st).as_strided((M, r, c), (st, c, 1))


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm`` into an :func:`aligned_empty` output."""
    return torch.bmm(a, b, out=aligned_empty(a.shape[0], a.shape[1], b.shape[2], a))


class BatchedMTL:
    """Layout and math of ``M`` stacked networks with ``K`` head slots each.

    Parameters of model ``m`` are row ``theta[m]`` of an ``(M, P)`` tensor. Biases are folded into
    the weight matrices (inputs carry a constant 1 in their last column):

    * layer ``l``: ``A_l`` of shape ``(d_{l-1} + 1, d_l + 1)``: ``A_l[:d_{l-1}, :d_l] = W_l``,
      ``A_l[d_{l-1}, :d_l] = b_l``, and a fixed last column ``e`` (1 in the bias row, else 0) that
      carries the constant 1 on to the next layer (``relu(1) = 1``);
    * heads: ``G`` of shape ``(K * C, d_L + 1)``: row ``k * C + c`` is head ``k``'s weights for output
      ``c`` followed by its bias.

    So a layer is one batched product ``a_l = relu(a_{l-1} A_l)`` and the bias gradients come out of
    the weight-gradient products; the fixed columns get zero gradient (see :meth:`grads`).
    A model with fewer than ``K`` tasks would leave spare slots at zero (the trainer groups models of
    equal size, so there are none).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], n_slots: int, out_dim: int):
        self.in_dim, self.hidden, self.K, self.C = in_dim, tuple(hidden), n_slots, out_dim
        dims = [in_dim] + list(self.hidden)
        self.shapes = [(dims[i] + 1, dims[i + 1] + 1) for i in range(len(self.hidden))]
        self.shapes.append((n_slots * out_dim, dims[-1] + 1))
        self.offsets = [0]
        for s in self.shapes:
            self.offsets.append(self.offsets[-1] + s[0] * s[1])
        # rows padded to a multiple of 16 floats (64 bytes): every model's row then has the same
        # alignment whatever its position, so vectorised kernels treat all rows alike
        self.P = -(-self.offsets[-1] // 16) * 16
        mask = torch.ones(self.P)
        mask[self.offsets[-1]:] = 0.0
        for i, (r, c) in enumerate(self.shapes[:-1]):
            mask[self.offsets[i]:self.offsets[i + 1]].view(r, c)[:, c - 1] = 0.0
        self.trainable = mask  # 1.0 for parameters, 0.0 for the fixed constant-carrying columns

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
            for i in range(L):
                W, b = params[2 * i], params[2 * i + 1]
                r, c = W.shape
                v[i][:r, :c] = W
                v[i][r, :c] = b
                v[i][r, c] = 1.0
            hw, hb = params[-2], params[-1]
            n_heads, hd, C = hw.shape
            v[L][:n_heads * C, :hd] = hw.permute(0, 2, 1).reshape(n_heads * C, hd)
            v[L][:n_heads * C, hd] = hb.reshape(-1)
        return theta

    def unpack(self, row: torch.Tensor, n_heads: int) -> list[torch.Tensor]:
        """Parameters of one model (a row of ``theta``) in :func:`init_params` layout, on the CPU."""
        v = [t[0].detach().cpu() for t in self.views(row.reshape(1, -1))]
        out = []
        for i in range(len(self.hidden)):
            r, c = v[i].shape
            out += [v[i][:r - 1, :c - 1].clone(), v[i][r - 1, :c - 1].clone()]
        G = v[-1][:n_heads * self.C].view(n_heads, self.C, -1)
        return out + [G[:, :, :-1].permute(0, 2, 1).clone(), G[:, :, -1].clone()]

    # ---------------------------------------------------------------- math
    def encode(self, theta: torch.Tensor, x1: torch.Tensor) -> list[torch.Tensor]:
        """Activations ``[x1, a_1, ..., a_L]`` for inputs ``x1 (M, B, in + 1)`` (last column 1)."""
        acts = [x1]
        a = x1
        for A in self.views(theta)[:-1]:
            a = bmm(a, A).relu_()
            acts.append(a)
        return acts

    def forward_rows(self, theta: torch.Tensor, x1: torch.Tensor, slot: torch.Tensor | None) -> torch.Tensor:
        """Outputs ``(M, R, C)`` for per-model rows ``x1 (M, R, in + 1)``, each through head ``slot (M, R)``."""
        a = self.encode(theta, x1)[-1]
        out_all = bmm(a, self.views(theta)[-1].transpose(1, 2))
        if self.K == 1 or slot is None:
            return out_all[..., :self.C]
        M, R = slot.shape
        idx = slot.view(M, R, 1, 1).expand(M, R, 1, self.C)
        return out_all.view(M, R, self.K, self.C).gather(2, idx).squeeze(2)

    def forward_shared(self, theta: torch.Tensor, X1: torch.Tensor, slot: int) -> torch.Tensor:
        """Outputs ``(M, n, C)`` of head ``slot`` of every model on the same rows ``X1 (n, in + 1)``."""
        v = self.views(theta)
        a = X1.expand(theta.shape[0], *X1.shape)
        for A in v[:-1]:
            a = bmm(a, A).relu_()
        G = v[-1][:, slot * self.C:(slot + 1) * self.C, :]
        return bmm(a, G.transpose(1, 2))

    def grads(self, theta: torch.Tensor, x1: torch.Tensor, slot: torch.Tensor, target: torch.Tensor,
              weight: torch.Tensor, kind: str) -> list[torch.Tensor]:
        """Gradient blocks (one per entry of :meth:`views`) of the weighted training loss

            sum_m sum_b weight[m, b] * loss(out[m, b], target[m, b])

        with ``kind`` ``"binary"`` (two-class softmax cross-entropy; ``target`` float 0/1),
        ``"multiclass"`` (softmax cross-entropy; ``target`` int64) or ``"regression"`` (squared error).
        ``x1 (M, B, in + 1)``, ``slot``, ``target``, ``weight``: ``(M, B)``. For results independent of
        a model's position in the batch, ``B`` should be a multiple of 16 (the trainer pads batches).
        """
        v = self.views(theta)
        G = v[-1]
        M, B = slot.shape
        K, C = self.K, self.C
        acts = self.encode(theta, x1)
        a = acts[-1]
        if kind == "binary":
            # two logits per head; only their difference matters: p_1 = sigmoid(o_1 - o_0)
            Gd = torch.sub(G[:, 1::2, :], G[:, 0::2, :], out=aligned_empty(M, K, G.shape[2], G))
            diff = bmm(a, Gd.transpose(1, 2))                                    # (M, B, K)
            if K > 1:
                diff = diff.gather(2, slot.unsqueeze(-1))
            g = torch.sigmoid(diff.view(M, B)).sub_(target).mul_(weight)       # dL/d(o_1) = -dL/d(o_0)
            g_all = g.unsqueeze(-1) if K == 1 else g.new_zeros(M, B, K).scatter_(2, slot.unsqueeze(-1), g.unsqueeze(-1))
            gGd = bmm(g_all.transpose(1, 2), a)                                  # (M, K, d + 1)
            gG = torch.stack((-gGd, gGd), dim=2).view(M, K * 2, -1)
            da = bmm(g_all, Gd)
        else:
            out_all = bmm(a, G.transpose(1, 2))                                  # (M, B, K * C)
            if K > 1:
                idx = slot.view(M, B, 1, 1).expand(M, B, 1, C)
                out = out_all.view(M, B, K, C).gather(2, idx).squeeze(2)
            else:
                out = out_all
            if kind == "multiclass":
                dout = torch.softmax(out, dim=-1)
                dout.scatter_add_(-1, target.unsqueeze(-1), torch.full((M, B, 1), -1.0, device=out.device))
                dout.mul_(weight.unsqueeze(-1))
            else:
                dout = (out.squeeze(-1) - target).mul_(weight * 2.0).unsqueeze(-1)
            if K > 1:
                d_all = out.new_zeros(M, B, K, C).scatter_(2, idx, dout.unsqueeze(2)).view(M, B, K * C)
            else:
                d_all = dout
            gG = bmm(d_all.transpose(1, 2), a)
            da = bmm(d_all, G)
        out_grads: list[torch.Tensor] = [None] * len(v)  # type: ignore[list-item]
        out_grads[-1] = gG
        for i in range(len(self.hidden) - 1, -1, -1):
            dz = torch.ops.aten.threshold_backward.grad_input(da, acts[i + 1], 0.0, grad_input=torch.empty_like(da))
            dz.select(2, -1).zero_()          # the constant unit: fixed, no gradient
            out_grads[i] = bmm(acts[i].transpose(1, 2), dz)
            if i > 0:
                da = bmm(dz, v[i].transpose(1, 2))
        return out_grads
