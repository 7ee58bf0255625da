"""A model "written by someone else": LayerNorm + residual encoder, one linear head per task.

Kept deliberately plain (an ``nn.ModuleList`` of heads, a loop over them in ``forward``), as a user
would write it. Each call of ``make_model`` is counted in ``BUILD_CALLS`` and, when the environment
variable ``MTL_EXAMPLE_MARKER`` names a file, appended to it as one line, so a test can see that the
planner really builds its modules from this function.
"""
import os

import torch
from torch import nn

BUILD_CALLS = 0


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)

    def forward(self, h):
        return h + torch.relu(self.fc(self.norm(h)))


class LayerNormResidualNet(nn.Module):
    def __init__(self, in_dim, n_tasks, out_dim, width=24, blocks=2):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.heads = nn.ModuleList([nn.Linear(width, out_dim) for _ in range(n_tasks)])

    def forward(self, x, task):
        h = self.norm(self.blocks(self.inp(x)))
        outs = torch.stack([head(h) for head in self.heads], dim=1)        # (n, n_tasks, out_dim)
        return outs[torch.arange(x.shape[0], device=x.device), task]


def make_model(in_dim, n_tasks, out_dim):
    global BUILD_CALLS
    BUILD_CALLS += 1
    marker = os.environ.get("MTL_EXAMPLE_MARKER")
    if marker:
        with open(marker, "a") as fh:
            fh.write(f"{in_dim} {n_tasks} {out_dim}\n")
    return LayerNormResidualNet(in_dim, n_tasks, out_dim)
