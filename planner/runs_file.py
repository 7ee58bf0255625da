"""Runs from elsewhere: ``RUNS.jsonl``, one training run of a subset model per line.

The contract ("Runs from elsewhere", for ``planner estimate --runs RUNS.jsonl --target T``): each
line is a JSON object

    {"subset": [source ids], "loss": <the target's validation loss>, "seed": <int>}

with an optional ``"losses": {task: loss}`` for the subset's members; ``"subset": []`` is the target
alone. Blank lines are skipped. Every line is checked; the first problem is an
:class:`planner.status.InstanceError` (exit 2) naming the file, the line and why: bad JSON, a key
missing or unknown, a non-finite or non-numeric loss, a seed that is not an integer, a task listed
twice, a task outside the given task list, the target inside a subset, the same subset and seed on
two lines (a duplicate, or a contradiction when the losses differ).

:func:`read_runs` returns :class:`Run` tuples (subset as sorted ids, seed, loss, losses), not tied to
a target unless one is given; :func:`run_arrays` turns them into what a surrogate fit needs: masks over
the sources, ``f``, and replicate groups by subset.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from planner.status import InstanceError

REQUIRED = ("subset", "loss", "seed")
OPTIONAL = ("losses",)


class Run(NamedTuple):
    """One line: ``subset`` (source ids, sorted), ``seed``, ``loss`` (the target's validation loss),
    ``losses`` (``{task: loss}`` or ``None``) and the ``line`` it came from (1-based)."""

    subset: tuple[str, ...]
    seed: int
    loss: float
    losses: dict[str, float] | None
    line: int = 0


def _type(v) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)


def _task_id(value, fail) -> str:
    """Task ids as in instance files: non-empty strings; whole numbers read as their decimal text."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        fail(f"task ids must be strings, got {_type(value)}")
    if isinstance(value, int):
        return str(value)
    if not value.strip():
        fail("a task id is empty")
    if len(value) > 200:
        fail("a task id is longer than 200 characters")
    return value


def _number(value, what: str, fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"{what} must be a number, got {_type(value)}")
    x = float(value)
    if not math.isfinite(x):
        fail(f"{what} must be finite, got {value}")
    return x


def parse_run(obj, *, target: str | None = None, known: set[str] | None = None, fail) -> Run:
    """One decoded line; ``fail(why)`` raises (it never returns)."""
    if not isinstance(obj, dict):
        fail(f"expected a JSON object, got {_type(obj)}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        fail(f"missing key {missing[0]!r} (a line holds subset, loss, seed and optionally losses)")
    extra = sorted(str(k) for k in obj if k not in REQUIRED + OPTIONAL)
    if extra:
        fail(f"unknown key {extra[0]!r} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    raw = obj["subset"]
    if not isinstance(raw, list):
        fail(f"'subset' must be a list of source ids, got {_type(raw)}")
    subset: list[str] = []
    for v in raw:
        t = _task_id(v, fail)
        if t in subset:
            fail(f"task {t!r} appears twice in 'subset'")
        if target is not None and t == target:
            fail(f"the target {target!r} is in 'subset' (list the sources only; [] is the target alone)")
        if known is not None and t not in known:
            fail(f"unknown task {t!r} in 'subset' (not among the {len(known)} tasks given)")
        subset.append(t)
    loss = _number(obj["loss"], "'loss'", fail)
    seed = obj["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        fail(f"'seed' must be an integer, got {_type(seed)}")
    losses = None
    if "losses" in obj:
        raw_l = obj["losses"]
        if not isinstance(raw_l, dict):
            fail(f"'losses' must be an object {{task: loss}}, got {_type(raw_l)}")
        losses = {}
        outside = []
        for k, v in raw_l.items():
            t = _task_id(k, fail)
            losses[t] = _number(v, f"'losses' of {t!r}", fail)
            if t not in subset:
                outside.append(t)
        if target is not None:
            stray = [t for t in outside if t != target]
            if stray:
                fail(f"'losses' names {stray[0]!r}, which is neither the target nor in 'subset'")
            if target in losses and not math.isclose(losses[target], loss, rel_tol=1e-9, abs_tol=1e-12):
                fail(f"'losses' gives the target {target!r} {losses[target]!r} but 'loss' is {loss!r}")
        elif len(outside) > 1:
            fail(f"'losses' names {outside[0]!r} and {outside[1]!r}, which are not in 'subset' "
                 "(only the target may be)")
        if known is not None:
            for t in losses:
                if t not in known and t != target:
                    fail(f"unknown task {t!r} in 'losses' (not among the {len(known)} tasks given)")
    return Run(tuple(sorted(subset)), int(seed), loss, losses)


def read_runs(path: str | os.PathLike, *, target: str | None = None,
              tasks: Iterable[str] | None = None) -> list[Run]:
    """Every run in ``path``, checked (see the module docstring), in file order.

    ``target``: the target's id (then it may not appear in a subset, and ``losses`` may name only it
    and the members); ``tasks``: every known task id (then any other id is an error).
    """
    source = os.fspath(path)
    known = None if tasks is None else {str(t) for t in tasks}
    if target is not None:
        target = str(target)
        if known is not None and target not in known:
            raise InstanceError(source, "", f"the target {target!r} is not among the {len(known)} tasks given")
    try:
        with open(source, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise InstanceError(source, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InstanceError(source, "", f"cannot read it ({type(exc).__name__}: {exc})") from None
    runs: list[Run] = []
    seen: dict[tuple[tuple[str, ...], int], Run] = {}
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        field = f"line {n}"

        def fail(why: str, field=field):
            raise InstanceError(source, field, why)

        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(f"not valid JSON ({exc.msg} at column {exc.colno})")
        except RecursionError:
            fail("not valid JSON (nested too deeply)")
        run = parse_run(obj, target=target, known=known, fail=fail)._replace(line=n)
        key = (run.subset, run.seed)
        if key in seen:
            first = seen[key]
            if first.loss == run.loss and first.losses == run.losses:
                fail(f"duplicate of line {first.line} (same subset and seed)")
            fail(f"contradicts line {first.line}: same subset and seed, loss {first.loss!r} there, {run.loss!r} here")
        seen[key] = run
        runs.append(run)
    if not runs:
        raise InstanceError(source, "", "no runs in the file (one JSON object per line)")
    return runs


# ---------------------------------------------------------------------------- arrays for a fit
@dataclass
class RunArrays:
    """Runs as arrays over ``sources`` (column ``i`` of ``masks`` is ``sources[i]``).

    ``masks (n, k)`` 0/1 subset indicators, ``f (n,)`` losses, ``seeds (n,)``, ``subsets`` (source
    indices per run, sorted), ``group (n,)`` the index of each run's subset in ``unique`` (replicates
    of a subset share it), ``unique`` the distinct subsets in order of first appearance.
    """

    sources: list[str]
    masks: np.ndarray
    f: np.ndarray
    seeds: np.ndarray
    subsets: list[tuple[int, ...]]
    group: np.ndarray
    unique: list[tuple[int, ...]]

    @property
    def single_task(self) -> np.ndarray:
        """Boolean mask of the runs of the target alone (empty subset)."""
        return self.masks.sum(axis=1) == 0

    def replicate_groups(self) -> dict[tuple[int, ...], list[float]]:
        """``{subset: [f of each run]}``: the replicate groups (for the noise floor and reliability)."""
        out: dict[tuple[int, ...], list[float]] = {s: [] for s in self.unique}
        for g, v in zip(self.group, self.f):
            out[self.unique[g]].append(float(v))
        return out

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One row per distinct subset: ``(masks, mean f, number of runs)``."""
        counts = np.bincount(self.group, minlength=len(self.unique))
        sums = np.bincount(self.group, weights=self.f, minlength=len(self.unique))
        return self.masks[_first_rows(self.group, len(self.unique))], sums / counts, counts

    def never_sampled(self) -> list[str]:
        """Sources in no run's subset."""
        return [t for t, c in zip(self.sources, self.masks.sum(axis=0)) if c == 0]


def _masks(subsets: Sequence[tuple[int, ...]], k: int) -> np.ndarray:
    """0/1 indicator rows (the layout of ``planner.selection.surrogate.masks_from_subsets``)."""
    out = np.zeros((len(subsets), k))
    for r, s in enumerate(subsets):
        out[r, list(s)] = 1.0
    return out


def _first_rows(group: np.ndarray, n: int) -> np.ndarray:
    first = np.full(n, -1, dtype=np.int64)
    for r in range(len(group) - 1, -1, -1):
        first[group[r]] = r
    return first


def sources_of(runs: Sequence[Run], target: str | None = None, tasks: Iterable[str] | None = None) -> list[str]:
    """The source ids: ``tasks`` without the target when given (in their order), else every id in a
    subset, sorted."""
    if tasks is not None:
        return [str(t) for t in tasks if str(t) != target]
    return sorted({t for r in runs for t in r.subset} - ({target} if target is not None else set()))


def run_arrays(runs: Sequence[Run], sources: Sequence[str] | None = None) -> RunArrays:
    """:class:`RunArrays` of ``runs`` over ``sources`` (default: :func:`sources_of`). A run naming a
    task outside ``sources`` is a ``ValueError`` (read the file with the task list to get an
    :class:`InstanceError` instead)."""
    sources = list(sources) if sources is not None else sources_of(runs)
    pos = {t: i for i, t in enumerate(sources)}
    if len(pos) != len(sources):
        raise ValueError("sources: a task is listed twice")
    subsets: list[tuple[int, ...]] = []
    for r in runs:
        try:
            subsets.append(tuple(sorted(pos[t] for t in r.subset)))
        except KeyError as exc:
            raise ValueError(f"run on line {r.line} names {exc.args[0]!r}, which is not a source") from None
    index: dict[tuple[int, ...], int] = {}
    group = np.array([index.setdefault(s, len(index)) for s in subsets], dtype=np.int64)
    return RunArrays(
        sources=sources,
        masks=_masks(subsets, len(sources)),
        f=np.array([r.loss for r in runs], dtype=float),
        seeds=np.array([r.seed for r in runs], dtype=np.int64),
        subsets=subsets,
        group=group,
        unique=list(index),
    )
