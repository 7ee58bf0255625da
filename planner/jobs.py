"""The one job runner behind every training run: subset models for selection (the estimate, the
threshold validation, the final models), group models for grouping, curve points and probes for
label budgets.

A *run* is a pure function of (data fingerprint, run kind and its settings, tasks, replicate, seed):
:class:`SubsetRuns` trains a target with a set of sources (f = the target's validation loss),
:class:`GroupRuns` one network serving a group of tasks. :class:`JobRunner` looks each run up in the
store (one study per data and run kind), trains only what is missing through the chosen executor,
writes every finished batch in one transaction, and returns the records. A rerun with the same
store trains nothing; an interrupted run keeps every finished batch.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from planner import interrupt
from planner.executors import EXECUTORS, default_ray_address
from planner.status import Interrupted, PlannerError, UsageError
from planner.store import RunRecord, Store, subset_key


@dataclass(frozen=True)
class Job:
    tasks: tuple[int, ...]  # data task indices: the sources of a subset model, or the members of a group
    replicate: int
    seed: int


@dataclass(frozen=True)
class SubsetRuns:
    """Target ``target`` (a data task index) trained with ``job.tasks`` as sources; batched engine."""

    target: int
    config: Any  # planner_models.train.TrainConfig
    # keep the target's loss on each validation and test row (the plan's final models: paired comparisons
    # that count the rows' own noise); not a setting, so a store's study key does not depend on it
    rows: bool = False

    def label(self, data) -> str:
        return data.task_names[self.target]

    def settings(self) -> dict[str, Any]:
        return self.config.to_dict()

    def train(self, data, jobs: Sequence[Job]) -> list[RunRecord]:
        from planner_models.train import train_subsets

        names = data.task_names
        results = train_subsets(data, self.target, [j.tasks for j in jobs], self.config, [j.seed for j in jobs])
        return [RunRecord(subset=tuple(names[i] for i in j.tasks), replicate=j.replicate, seed=j.seed, f=float(r.f),
                          val_losses={names[t]: float(v) for t, v in r.val_losses.items()},
                          test={k: float(v) for k, v in r.test.items()}, seconds=float(r.seconds),
                          device=str(r.device),
                          rows=({k: [float(x) for x in v] for k, v in r.rows.items()}
                                if self.rows and r.rows is not None else None))
                for j, r in zip(jobs, results)]


@dataclass(frozen=True)
class GroupRuns:
    """One network serving every task of ``job.tasks``; test metrics keyed ``task|metric``."""

    config: Any

    def label(self, data) -> str:
        return "group:" + _hash({"kind": "group_models", "train": self.config.to_dict()})

    def settings(self) -> dict[str, Any]:
        return {"kind": "group_models", "train": self.config.to_dict()}

    def train(self, data, jobs: Sequence[Job]) -> list[RunRecord]:
        from planner_models.grouping import train_groups

        names = data.task_names
        results = train_groups(data, [j.tasks for j in jobs], self.config, [j.seed for j in jobs])
        out = []
        for j, res in zip(jobs, results):
            test = {f"{names[t]}|{k}": float(v) for t, m in res.test.items() for k, v in m.items()}
            out.append(RunRecord(subset=tuple(names[i] for i in j.tasks), replicate=j.replicate, seed=j.seed,
                                 f=float(res.f), val_losses={names[t]: float(v) for t, v in res.val_losses.items()},
                                 test=test, seconds=float(res.seconds), device=str(res.device)))
        return out


def _hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def fault_pause() -> float:
    """Seconds to wait after each stored batch: ``PLANNER_PAUSE_AFTER_BATCH``, a fault-injection hook
    so kill tests can stop a run between two transactions deterministically (0 when unset)."""
    try:
        return max(0.0, float(os.environ.get("PLANNER_PAUSE_AFTER_BATCH", "0") or 0))
    except ValueError:
        return 0.0


class JobRunner:
    """Trains what the store lacks, through one executor, in batches; see the module docstring.

    ``store`` is an open :class:`planner.store.Store`; ``seed`` names the study (the seed every job's
    own seed was derived from). ``progress(k)`` is told of every k runs, trained or found.
    ``ray_address``: the Ray cluster of the ``ray`` executor (default: the one set by
    :func:`planner.executors.ray_address`, else ``RAY_ADDRESS``, else a local Ray runtime).
    """

    def __init__(self, store: Store, executor: str = "local", batch_size: int = 128,
                 progress: Callable[[int], None] | None = None, ray_address: str | None = None):
        if executor not in EXECUTORS:
            raise UsageError(f"unknown executor {executor!r} (choose {', '.join(EXECUTORS)})")
        if batch_size < 1:
            raise UsageError(f"models per batch must be at least 1, got {batch_size}")
        self.store, self.executor, self.batch_size, self.progress = store, executor, batch_size, progress
        self.trained = 0
        self.ray_address = ray_address

    def _interrupted_message(self, done: str) -> str:
        path = getattr(self.store, "path", ":memory:")
        if path in (":memory:", ""):
            kept = "without --store nothing is kept"
        else:
            kept = f"every finished model is kept in {path}: rerun with the same --store to train only the rest"
        return f"interrupted: stopped after the batch in progress ({done} of this stage trained); {kept}"

    def study(self, data, kind, seed: int) -> str:
        return self.store.open_study(data.fingerprint(), kind.label(data), seed, kind.settings())

    def run(self, data, kind, jobs: Iterable[Job], seed: int) -> dict[tuple[tuple[int, ...], int], RunRecord]:
        """Records for every job, keyed by (sorted task indices, replicate); trains only what is missing."""
        jobs = list(jobs)
        study = self.study(data, kind, seed)
        names = data.task_names
        done = self.store.done(study)
        seen: set[tuple[str, int]] = set()
        todo = []
        for j in jobs:
            key = (subset_key(names[i] for i in j.tasks), j.replicate)
            if key not in done and key not in seen:
                todo.append(j)
            seen.add(key)
        if self.progress is not None and len(jobs) > len(todo):
            self.progress(len(jobs) - len(todo))
        if todo:
            pause = fault_pause()

            def write(records) -> None:
                self.store.add_batch(study, records)
                if pause:
                    time.sleep(pause)

            # Ctrl-C: the executor stops after the batch in progress (every finished batch is stored)
            extra = {"address": self.ray_address or default_ray_address()} if self.executor == "ray" else {}
            try:
                with interrupt.catching():
                    EXECUTORS[self.executor](kind, data, todo, self.batch_size, write, self.progress, **extra)
            except Interrupted as exc:
                raise Interrupted(self._interrupted_message(str(exc))) from None
            self.trained += len(todo)
        index = {n: i for i, n in enumerate(names)}
        stored = {}
        for rec in self.store.runs(study, known=names):
            stored[(tuple(sorted(index[t] for t in rec.subset)), rec.replicate)] = rec
        keys = [(tuple(sorted(j.tasks)), j.replicate) for j in jobs]
        missing = [key for key in keys if key not in stored]
        if missing:
            raise PlannerError(f"{len(missing)} runs are missing from the store after training")
        return {key: stored[key] for key in keys}
