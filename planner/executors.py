"""Where models are trained: in this process (the batched engine; default), or on Ray.

An executor takes a run kind (:class:`planner.jobs.SubsetRuns`, :class:`planner.jobs.GroupRuns`),
the data and a list of jobs, trains them in batches, and calls ``on_batch(records)`` once per
finished batch; the caller writes each batch to the store in one transaction. Each model's result
depends only on its own seed, so every executor, batch size and resume point gives the same store.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from planner import interrupt
from planner.status import Interrupted, PlannerError


def _stop_if_requested(done: int, total: int) -> None:
    """After a finished (and stored) batch: end the run when a stop was requested (Ctrl-C)."""
    if interrupt.requested() and done < total:
        raise Interrupted(f"{done} of {total} models")


def train_jobs_local(kind, data, jobs: Sequence, batch_size: int, on_batch: Callable[[list], None],
                     progress: Callable[[int], None] | None = None) -> None:
    for start in range(0, len(jobs), batch_size):
        chunk = list(jobs[start:start + batch_size])
        on_batch(kind.train(data, chunk))
        if progress is not None:
            progress(len(chunk))
        _stop_if_requested(start + len(chunk), len(jobs))


def _ray():
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PlannerError("the ray executor needs the optional extra: pip install 'mtl-planner[ray]'") from None
    return sys.modules["ray"]


def _train_chunk_remote(kind, data, chunk):
    return kind.train(data, chunk)


def train_jobs_ray(kind, data, jobs: Sequence, batch_size: int, on_batch: Callable[[list], None],
                   progress: Callable[[int], None] | None = None, address: str | None = None) -> None:
    """Send batches of jobs to Ray workers (one GPU each where there are GPUs); the driver writes."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    remote = ray.remote(num_gpus=gpus)(_train_chunk_remote)
    data_ref = ray.put(data)
    pending = {}
    for start in range(0, len(jobs), batch_size):
        chunk = list(jobs[start:start + batch_size])
        pending[remote.remote(kind, data_ref, chunk)] = chunk
    finished = 0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            chunk = pending.pop(ref)
            on_batch(ray.get(ref))
            finished += len(chunk)
            if progress is not None:
                progress(len(chunk))
        if interrupt.requested() and pending:
            for ref in pending:
                ray.cancel(ref)
            _stop_if_requested(finished, len(jobs))


EXECUTORS = {"local": train_jobs_local, "ray": train_jobs_ray}
