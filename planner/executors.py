"""Where models are trained: in this process (the batched engine; default), or on Ray.

An executor takes a run kind (:class:`planner.jobs.SubsetRuns`, :class:`planner.jobs.GroupRuns`),
the data and a list of jobs, trains them in batches, and calls ``on_batch(records)`` once per
finished batch; the caller writes each batch to the store in one transaction. Each model's result
depends only on its own seed, so every executor, batch size and resume point gives the same store.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
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


def ray_chunk_size(n_jobs: int, batch_size: int, cpus: float) -> int:
    """Models per Ray task: at most ``batch_size``, and small enough that the jobs make at least twice
    as many tasks as the cluster has CPUs (so every CPU gets work and a slow task does not hold up the
    rest): ``ceil(n / (2 * cpus))``."""
    cpus = max(1, int(cpus))
    return max(1, min(batch_size, math.ceil(n_jobs / (2 * cpus))))


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the worker's own exception
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if type(exc).__name__ == "UnserializableException":  # the worker's error could not be sent: its text can
        return last[:400]
    return f"{type(exc).__name__}: {last}"[:400]


_RAY_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("ray_address", default=None)


@contextlib.contextmanager
def ray_address(address: str | None):
    """Within this block, a :class:`planner.jobs.JobRunner` given no address connects Ray to ``address``
    (the command line's ``--ray-address`` is passed on this way)."""
    token = _RAY_ADDRESS.set(address)
    try:
        yield
    finally:
        _RAY_ADDRESS.reset(token)


def default_ray_address() -> str | None:
    """The address set by :func:`ray_address`, else ``RAY_ADDRESS`` from the environment, else None
    (Ray then starts a local runtime)."""
    return _RAY_ADDRESS.get() or os.environ.get("RAY_ADDRESS") or None


def train_jobs_ray(kind, data, jobs: Sequence, batch_size: int, on_batch: Callable[[list], None],
                   progress: Callable[[int], None] | None = None, address: str | None = None) -> None:
    """Send chunks of jobs to Ray workers, one CPU (and one GPU where the cluster has GPUs) per task,
    enough chunks to keep every CPU busy (:func:`ray_chunk_size`); the driver writes each finished
    chunk to the store in one transaction. A failing task stops the run with one PlannerError naming
    its chunk; the chunks finished before it stay stored."""
    ray = _ray()
    if not ray.is_initialized():
        address = address or default_ray_address()
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError by Ray version
            where = f" at {address}" if address else ""
            raise PlannerError(f"cannot start or reach Ray{where}: {_first_line(exc)}") from None
    resources = ray.cluster_resources()
    gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_train_chunk_remote)
    size = ray_chunk_size(len(jobs), batch_size, resources.get("CPU", 1))
    chunks = [list(jobs[start:start + size]) for start in range(0, len(jobs), size)]
    data_ref = ray.put(data)
    finished = 0
    pending = {remote.remote(kind, data_ref, chunk): i for i, chunk in enumerate(chunks)}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            i = pending.pop(ref)
            try:
                records = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - any worker failure: one line, no traceback
                for other in pending:
                    ray.cancel(other, force=True)
                chunk = chunks[i]
                raise PlannerError(
                    f"Ray task for chunk {i + 1} of {len(chunks)} ({len(chunk)} models, tasks {list(chunk[0].tasks)} "
                    f"to {list(chunk[-1].tasks)}) failed: {_first_line(exc)}; the {len(chunks) - len(pending) - 1} "
                    "chunks finished before it are stored, a rerun with the same --store trains the rest") from None
            on_batch(records)
            finished += len(chunks[i])
            if progress is not None:
                progress(len(chunks[i]))
        if interrupt.requested() and pending:
            for ref in pending:
                ray.cancel(ref)
            _stop_if_requested(finished, len(jobs))


EXECUTORS = {"local": train_jobs_local, "ray": train_jobs_ray}
