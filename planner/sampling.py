"""Subset designs for surrogate estimation (Li, Nguyen, Zhang 2023, Section 2).

The main design draws ``n`` distinct subsets of fixed size ``alpha`` uniformly from the k sources.
Optional first-order designs: every singleton, every pair. Subsets are tuples of sorted source
indices (0..k-1). Everything is a pure function of the seed.
"""
from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np


def default_n_subsets(k: int, alpha: int) -> int:
    """n <= 8k sufficed in the paper (Section 4.3); capped by the number of distinct subsets."""
    return min(8 * k, math.comb(k, alpha)) if k else 0


def default_alpha(k: int) -> int:
    """The paper's alpha = 5 (kept below k/2, as Theorem 2.1 asks)."""
    if k <= 1:
        return k
    return max(1, min(5, k // 2))


def sample_fixed_size(k: int, alpha: int, n: int, seed: int) -> list[tuple[int, ...]]:
    """``n`` distinct subsets of size ``alpha`` drawn uniformly without repeats, in draw order."""
    if not 0 <= alpha <= k:
        raise ValueError(f"alpha must lie in 0..{k}, got {alpha}")
    total = math.comb(k, alpha)
    if n > total:
        raise ValueError(f"only {total} distinct subsets of size {alpha} exist among {k} sources, asked for {n}")
    rng = np.random.default_rng(seed)
    if total <= 200_000:  # a prefix of one permutation: a larger n extends a smaller one
        everything = list(itertools.combinations(range(k), alpha))
        order = rng.permutation(total)[:n]
        return [everything[i] for i in order]
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    while len(out) < n:
        s = tuple(sorted(int(i) for i in rng.choice(k, size=alpha, replace=False)))
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def singletons(k: int) -> list[tuple[int, ...]]:
    return [(i,) for i in range(k)]


def pairs(k: int) -> list[tuple[int, ...]]:
    return [tuple(p) for p in itertools.combinations(range(k), 2)]


def design(k: int, alpha: int, n: int, seed: int, extra: str = "none") -> list[tuple[int, ...]]:
    """The sampled design plus optional ``singletons``/``pairs`` (duplicates dropped, order kept)."""
    subsets = sample_fixed_size(k, alpha, n, seed)
    if extra in ("singletons", "pairs", "both"):
        subsets = subsets + singletons(k)
    if extra in ("pairs", "both"):
        subsets = subsets + pairs(k)
    seen: set[tuple[int, ...]] = set()
    unique = []
    for s in subsets:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def subset_seed(study_seed: int, subset: tuple[int, ...], replicate: int = 0) -> int:
    """The training seed of one subset model: a hash of (study seed, subset, replicate).

    It does not depend on the order or the company in which subsets are trained, so a resumed
    run trains exactly the models an uninterrupted run would have.
    """
    text = f"{study_seed}|{','.join(map(str, subset))}|{replicate}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little") & 0x7FFFFFFF
