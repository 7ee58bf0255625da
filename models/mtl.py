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


class BatchedMTL:
    """Layout and math of ``M`` stacked networks with ``K`` head slots each.

    Parameters of model ``m`` are row ``theta[m]`` of an ``(M, P)`` tensor, cut into blocks
    ``W_1 (in, h_1), b_1 (h_1), ..., W_L, b_L, H (h_L, K * C), c (K * C)``; head slot ``k`` owns
    columns ``k*C .. k*C + C - 1`` of ``H`` and ``c``. A model with fewer than ``K`` tasks leaves its
    spare slots at zero; no row ever uses them, so their gradient stays zero.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], n_slots: int, out_dim: int):
        self.in_dim, self.hidden, self.K, self.C = in_dim, tuple(hidden), n_slots, out_dim
        shapes: list[tuple[int, ...]] = []
        prev = in_dim
        for h in self.hidden:
            shapes += [(prev, h), (h,)]
            prev = h
        shapes += [(prev, n_slots * out_dim), (n_slots * out_dim,)]
        self.shapes = shapes
        self.sizes = [math.prod(s) for s in shapes]
        self.offsets = [0]
        for s in self.sizes:
            self.offsets.append(self.offsets[-1] + s)
        self.P = self.offsets[-1]

    # ---------------------------------------------------------------- layout
    def views(self, theta: torch.Tensor) -> list[torch.Tensor]:
        M = theta.shape[0]
        return [theta[:, a:b].view(M, *shape) if len(shape) == 2 else theta[:, a:b]
                for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    def pack(self, models: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        """``(M, P)`` CPU tensor from per-model parameters in :func:`init_params` layout."""
        theta = torch.zeros(len(models), self.P, dtype=torch.float32)
        L = len(self.hidden)
        for m, params in enumerate(models):
            for i in range(2 * L):
                theta[m, self.offsets[i]:self.offsets[i + 1]] = params[i].reshape(-1)
            hw, hb = params[-2], params[-1]
            n_heads, hd, c = hw.shape
            H = theta[m, self.offsets[2 * L]:self.offsets[2 * L + 1]].view(hd, self.K * c)
            H[:, :n_heads * c] = hw.permute(1, 0, 2).reshape(hd, n_heads * c)
            theta[m, self.offsets[2 * L + 1]:self.offsets[2 * L + 1] + n_heads * c] = hb.reshape(-1)
        return theta

    def unpack(self, row: torch.Tensor, n_heads: int) -> list[torch.Tensor]:
        """Parameters of one model (a row of ``theta``) in :func:`init_params` layout, on the CPU."""
        v = [t.detach().cpu() for t in self.views(row.unsqueeze(0))]
        L = len(self.hidden)
        out = []
        for i in range(2 * L):
            out.append(v[i][0].clone())
        hd = v[2 * L].shape[1]
        H = v[2 * L][0].view(hd, self.K, self.C)[:, :n_heads].permute(1, 0, 2).clone()
        c = v[2 * L + 1][0].view(self.K, self.C)[:n_heads].clone()
        return out + [H, c]

    # ---------------------------------------------------------------- math
    def forward_train(self, theta: torch.Tensor, x: torch.Tensor, slot_index: torch.Tensor | None):
        """Outputs ``(M, B, C)`` of each row's own head and the activations for :meth:`backward`.

        ``x`` is ``(M, B, in)``; ``slot_index`` is ``(M, B, 1, C)`` int64 (each row's slot repeated
        ``C`` times), or ``None`` when ``K == 1``.
        """
        v = self.views(theta)
        acts = [x]
        a = x
        for i in range(len(self.hidden)):
            a = torch.baddbmm(v[2 * i + 1].unsqueeze(1), a, v[2 * i]).relu_()
            acts.append(a)
        out_all = torch.baddbmm(v[-1].unsqueeze(1), a, v[-2])
        if slot_index is None:
            return out_all, acts
        M, B = x.shape[0], x.shape[1]
        out = out_all.view(M, B, self.K, self.C).gather(2, slot_index).squeeze(2)
        return out, acts

    def backward(self, theta: torch.Tensor, acts: list[torch.Tensor], dout: torch.Tensor,
                 slot_index: torch.Tensor | None) -> torch.Tensor:
        """Gradient ``(M, P)`` of ``sum(dout * out)`` with respect to ``theta`` (``dout`` is ``(M, B, C)``)."""
        v = self.views(theta)
        M, B = dout.shape[0], dout.shape[1]
        if slot_index is None:
            d_all = dout
        else:
            d_all = dout.new_zeros(M, B, self.K, self.C).scatter_(2, slot_index, dout.unsqueeze(2))
            d_all = d_all.view(M, B, self.K * self.C)
        L = len(self.hidden)
        grads: list[torch.Tensor] = [None] * (2 * L + 2)  # type: ignore[list-item]
        grads[-2] = torch.bmm(acts[L].transpose(1, 2), d_all)
        grads[-1] = d_all.sum(1)
        da = torch.bmm(d_all, v[-2].transpose(1, 2))
        for i in range(L - 1, -1, -1):
            dz = da.masked_fill_(acts[i + 1] <= 0, 0.0)
            grads[2 * i] = torch.bmm(acts[i].transpose(1, 2), dz)
            grads[2 * i + 1] = dz.sum(1)
            if i > 0:
                da = torch.bmm(dz, v[2 * i].transpose(1, 2))
        return torch.cat([g.reshape(M, -1) for g in grads], dim=1)

    def forward_shared(self, theta: torch.Tensor, X: torch.Tensor, slot: int) -> torch.Tensor:
        """Outputs ``(M, n, C)`` of head ``slot`` of every model on the same rows ``X (n, in)``."""
        v = self.views(theta)
        a = X
        for i in range(len(self.hidden)):
            a = torch.relu(torch.matmul(a, v[2 * i]) + v[2 * i + 1].unsqueeze(1))
        H = v[-2][:, :, slot * self.C:(slot + 1) * self.C]
        c = v[-1][:, slot * self.C:(slot + 1) * self.C]
        return torch.matmul(a, H) + c.unsqueeze(1)

    def forward_rows(self, theta: torch.Tensor, x: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """Outputs ``(M, R, C)`` for per-model rows ``x (M, R, in)`` with per-row slots ``slot (M, R)``."""
        idx = None if self.K == 1 else slot.view(*slot.shape, 1, 1).expand(*slot.shape, 1, self.C)
        out, _ = self.forward_train(theta, x, idx)
        return out
