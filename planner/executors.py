"""Where subset models are trained: in this process (the batched engine; default), or on Ray.

An executor takes jobs ``(subset, replicate, seed)`` (subset = source-task indices of the data)
and calls ``on_batch(records)`` once per finished batch; the caller writes each batch to the store in
one transaction. Each model's result depends only on its own seed, so every executor, batch size and
resume point gives the same store.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from planner.status import PlannerError


@dataclass(frozen=True)
class Job:
    subset: tuple[int, ...]  # source-task indices (the target is added by the trainer)
    replicate: int
    seed: int


def _records(data, target: int, jobs: Sequence[Job], results) -> list:
    from planner.store import RunRecord

    names = data.task_names
    out = []
    for job, res in zip(jobs, results):
        out.append(RunRecord(
            subset=tuple(names[i] for i in job.subset),
            replicate=job.replicate,
            seed=job.seed,
            f=float(res.f),
            val_losses={names[t]: float(v) for t, v in res.val_losses.items()},
            test={k: float(v) for k, v in res.test.items()},
            seconds=float(res.seconds),
            device=str(res.device),
        ))
    return out


def train_jobs_local(data, target: int, jobs: Sequence[Job], config, batch_size: int,
                     on_batch: Callable[[list], None], progress: Callable[[int], None] | None = None) -> None:
    from planner_models.train import train_subsets

    for start in range(0, len(jobs), batch_size):
        chunk = list(jobs[start:start + batch_size])
        results = train_subsets(data, target, [j.subset for j in chunk], config, [j.seed for j in chunk])
        on_batch(_records(data, target, chunk, results))
        if progress is not None:
            progress(len(chunk))


def _ray():
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PlannerError("the ray executor needs the optional extra: pip install 'mtl-planner[ray]'") from None
    return sys.modules["ray"]


def _train_chunk_remote(data, target, subsets, config, seeds):
    from planner_models.train import train_subsets

    return train_subsets(data, target, subsets, config, seeds)


def train_jobs_ray(data, target: int, jobs: Sequence[Job], config, batch_size: int,
                   on_batch: Callable[[list], None], progress: Callable[[int], None] | None = None,
                   address: str | None = None) -> None:
    """Send batches of subsets to Ray workers (one GPU each where there are GPUs); the driver writes."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    remote = ray.remote(num_gpus=gpus)(_train_chunk_remote)
    data_ref = ray.put(data)
    pending = {}
    for start in range(0, len(jobs), batch_size):
        chunk = list(jobs[start:start + batch_size])
        ref = remote.remote(data_ref, target, [j.subset for j in chunk], config, [j.seed for j in chunk])
        pending[ref] = chunk
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            chunk = pending.pop(ref)
            on_batch(_records(data, target, chunk, ray.get(ref)))
            if progress is not None:
                progress(len(chunk))


EXECUTORS = {"local": train_jobs_local, "ray": train_jobs_ray}
