"""Seeded random instances for tests, benchmarks and the shipped examples."""
from __future__ import annotations

import numpy as np


def random_selection_dict(
    k: int,
    density: float,
    *,
    pair_scale: float = 0.1,
    seed: int = 0,
    intercept: float = 1.0,
    constraints: dict | None = None,
    name: str | None = None,
) -> dict:
    """A selection instance: theta_i ~ N(0, 1), each pair present with probability ``density``
    with theta_ij ~ N(0, pair_scale^2) (pairwise corrections smaller than the main effects)."""
    rng = np.random.default_rng(seed)
    sources = [f"s{i:03d}" for i in range(k)]
    linear = {t: round(float(rng.normal()), 6) for t in sources}
    pairwise = []
    for i in range(k):
        for j in range(i + 1, k):
            if rng.random() < density:
                pairwise.append([sources[i], sources[j], round(float(rng.normal() * pair_scale), 6)])
    data = {
        "schema": 1,
        "kind": "selection",
        "name": name or f"random_k{k}_d{density:g}_s{seed}",
        "target": "target",
        "tasks": ["target", *sources],
        "surrogate": {"intercept": intercept, "linear": linear, "pairwise": pairwise},
    }
    if constraints:
        data["constraints"] = constraints
    return data
