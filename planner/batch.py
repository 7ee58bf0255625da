"""Batch runs: solve every instance file under a folder, one result file each, plus summaries.

The unit of work is a pure function of one file (:func:`solve_file`): read the bytes, hash them,
parse, validate, solve, and return the result object; every failure becomes a result with status
``error`` and a one-line ``error`` message, so one broken instance never stops the others.

* Results land in ``OUTDIR/<relative path without suffix>.result.json``, written atomically as soon
  as each instance finishes, so a batch killed at any moment keeps every finished result whole.
* Each result carries ``batch: {source, sha256, options}``. A later run over the same OUTDIR skips an
  instance whose result holds the same input hash and solver options (and did not end in ``error``).
* ``summary.csv`` and ``summary.json`` are rewritten atomically at the end from the result files.

Executors: ``local`` (this process, one at a time), ``process`` (a spawn-safe process pool) and
``ray`` (optional, imported lazily). Solving in a pool changes nothing but the wall time.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from planner import __version__
from planner.status import PlannerError

SUFFIXES = (".json", ".yaml", ".yml")
RESULT_SUFFIX = ".result.json"
SUMMARY_FIELDS = ("instance", "kind", "status", "objective", "bound", "seconds", "error")
SOLVED = ("optimal", "feasible")
EXECUTORS = ("local", "process", "ray")


class BatchError(PlannerError):
    """The batch as a whole cannot go on (output folder unusable, disk full)."""

    exit_code = 1


@dataclass(frozen=True)
class Item:
    """One instance file: its path, its path relative to the batch folder, and where its result goes."""

    path: Path
    rel: str
    result: Path


@dataclass
class BatchReport:
    total: int
    solved: int
    failed: int
    skipped: int
    counts: dict[str, int]
    rows: list[dict[str, Any]]
    outdir: Path
    seconds: float

    @property
    def exit_code(self) -> int:
        return 0 if self.failed == 0 else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "outdir": str(self.outdir),
            "total": self.total,
            "solved": self.solved,
            "failed": self.failed,
            "skipped": self.skipped,
            "counts": self.counts,
            "seconds": round(self.seconds, 6),
            "results": self.rows,
        }


# -- finding instances ------------------------------------------------------------------------

def _hidden(rel_parts: Iterable[str]) -> bool:
    return any(part.startswith(".") for part in rel_parts)


def find_instances(root: str | os.PathLike, outdir: str | os.PathLike) -> list[Item]:
    """Every ``*.json``/``*.yaml``/``*.yml`` under ``root`` (nested folders too, sorted), skipping hidden
    files, result files, the summaries and anything inside ``outdir`` when it lies under ``root``."""
    root = Path(root)
    outdir = Path(outdir)
    root_r = root.resolve()
    out_r = outdir.resolve()
    out_inside = out_r != root_r and _is_under(out_r, root_r)
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root_r, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (out_inside and (here / d).resolve() == out_r))
        for name in files:
            path = here / name
            lower = name.lower()
            if name.startswith(".") or not lower.endswith(SUFFIXES) or lower.endswith(RESULT_SUFFIX):
                continue
            if lower == "summary.json" and is_batch_summary(path):
                continue  # this batch's summary, or another batch's: never an instance
            rel = path.relative_to(root_r).as_posix()
            found.append((rel, root / rel))
    found.sort()
    names = result_names([rel for rel, _ in found])
    return [Item(path=path, rel=rel, result=outdir / names[rel]) for rel, path in found]


def result_names(rels: list[str]) -> dict[str, str]:
    """A distinct result file name for every instance: ``<path without suffix>.result.json`` when no
    other instance claims that name, else ``<path with suffix>.result.json`` (``a.json`` and
    ``a.yaml`` give ``a.json.result.json`` and ``a.yaml.result.json``; ``a.json.yaml`` then keeps its
    suffix too). Distinct inputs get distinct names, and each result records its ``source``."""
    long = set()
    while True:
        names = {rel: (rel if rel in long else _strip_suffix(rel)) + RESULT_SUFFIX for rel in rels}
        owners: dict[str, list[str]] = {}
        for rel, name in names.items():
            owners.setdefault(name, []).append(rel)
        clash = {rel for group in owners.values() if len(group) > 1 for rel in group if rel not in long}
        if not clash:
            return names
        long |= clash


def is_batch_summary(path: Path) -> bool:
    """Whether ``path`` holds a batch's summary.json (what this module writes), not an instance."""
    from planner.io import read_regular_bytes

    try:
        data = json.loads(read_regular_bytes(path, limit=64 * 1024 * 1024))
    except (PlannerError, ValueError):
        return False
    return (isinstance(data, dict) and "kind" not in data and isinstance(data.get("results"), list)
            and "outdir" in data and "total" in data)


def display_name(rel: str) -> str:
    """A file name as text that can be written anywhere: bytes that are not UTF-8 (kept by Python as
    lone surrogates) shown as ``\\xNN`` escapes."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_under(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _strip_suffix(rel: str) -> str:
    lower = rel.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix):
            return rel[: -len(suffix)]
    return rel


# -- solving one file (runs in a worker) ------------------------------------------------------

def options_key(solver: str, time_limit: float | None) -> dict[str, Any]:
    return {"solver": solver, "time_limit": time_limit, "version": __version__}


def file_digest(path: str | os.PathLike) -> str | None:
    from planner.io import read_regular_bytes

    try:
        return hashlib.sha256(read_regular_bytes(path)).hexdigest()
    except (OSError, PlannerError):
        return None


def _load(path: Path, raw: bytes):
    """Parse and validate bytes already read from ``path`` (the same checks as ``load_instance``)."""
    from planner.instance import parse_instance
    from planner.io import parse_bytes

    source = str(path)
    data = parse_bytes(raw, source)
    return parse_instance(data, source=source, default_name=Path(_strip_suffix(path.name)).name)


def error_result(rel: str, message: str, exit_code: int, seconds: float, kind: str | None = None,
                 name: str | None = None) -> dict[str, Any]:
    return {
        "schema": 1, "instance": name or display_name(Path(_strip_suffix(rel)).name), "kind": kind, "status": "error",
        "objective": None, "bound": None, "solution": None, "solver": "", "seconds": round(seconds, 6),
        "gap": None, "error": message, "exit_code": exit_code,
    }


def solve_file(path: str, rel: str, solver: str = "auto", time_limit: float | None = None) -> dict[str, Any]:
    """Solve one instance file; never raises (except KeyboardInterrupt): failures become error results."""
    from planner.io import read_regular_bytes
    from planner.solve import remaining, solve

    t0 = time.perf_counter()
    digest = None
    kind = name = None
    try:
        raw = read_regular_bytes(path)  # FIFOs and devices are errors
        digest = hashlib.sha256(raw).hexdigest()
        problem = _load(Path(path), raw)
        kind, name = problem.kind, problem.name
        result = solve(problem, solver=solver, time_limit=remaining(time_limit, t0))  # the limit covers reading
        payload = result.to_dict(problem.name, problem.kind)
        json.dumps(payload, allow_nan=False)  # a result that cannot be written is an error, not a crash later
        payload["exit_code"] = result.status.exit_code
    except PlannerError as exc:
        payload = error_result(rel, str(exc), exc.exit_code, time.perf_counter() - t0, kind, name)
    except MemoryError:
        payload = error_result(rel, "out of memory", 1, time.perf_counter() - t0, kind, name)
    except RecursionError:
        payload = error_result(rel, "nesting too deep", 2, time.perf_counter() - t0, kind, name)
    except Exception as exc:  # noqa: BLE001 - one broken instance must not stop the batch
        payload = error_result(rel, f"internal error ({type(exc).__name__}): {exc}", 1,
                               time.perf_counter() - t0, kind, name)
    payload["batch"] = {"source": display_name(rel), "sha256": digest, "options": options_key(solver, time_limit)}
    return payload


# -- the batch --------------------------------------------------------------------------------

def _finished(item: Item, opts: dict[str, Any]) -> dict[str, Any] | None:
    """The stored result when it is complete and was made from the current bytes with these options."""
    stored = _read_result(item)
    if not isinstance(stored, dict) or stored.get("status") in (None, "error"):
        return None
    meta = stored.get("batch")
    if not isinstance(meta, dict) or meta.get("options") != opts or meta.get("source") != display_name(item.rel):
        return None
    digest = file_digest(item.path)
    if digest is None or meta.get("sha256") != digest:
        return None
    return stored


def check_outdir(outdir: Path) -> None:
    """Create OUTDIR and prove it takes a file, so a read-only or full folder fails before any solving."""
    if outdir.exists() and not outdir.is_dir():
        raise BatchError(f"{outdir}: output folder is a file")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=outdir)
        try:
            os.write(fd, b"ok\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise BatchError(f"{exc.filename or outdir}: cannot write to the output folder: {exc.strerror or exc}") from None


class _NameTooLong(Exception):
    pass


def _write_result(item: Item, payload: dict[str, Any]) -> None:
    from planner.io import write_json

    try:
        item.result.parent.mkdir(parents=True, exist_ok=True)
        write_json(item.result, payload)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise _NameTooLong() from None
        raise BatchError(f"{display_name(str(item.result))}: cannot write result: {exc.strerror or exc}") from None


def _run_local(todo: list[Item], solver: str, time_limit: float | None, done: Callable[[Item, dict], None]) -> None:
    from planner import interrupt

    for item in todo:
        if interrupt.requested():  # Ctrl-C: the file being solved got its result; the rest wait for a rerun
            break
        done(item, solve_file(str(item.path), item.rel, solver, time_limit))


def _exit_with_parent(parent: int) -> None:
    """Pool worker start-up: leave as soon as the batch process is gone (SIGKILLed), instead of
    lingering as an orphan that holds the terminal's pipes open."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_process(todo: list[Item], solver: str, time_limit: float | None, jobs: int,
                 done: Callable[[Item, dict], None]) -> None:
    """A spawn-context process pool. If a worker dies (a solver crash), the pool is rebuilt and what
    was in flight is retried one at a time, so the instance that kills its worker is the one recorded."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    pending = list(todo)
    suspects: list[Item] = []
    while pending or suspects:
        # Suspects run alone, so a crash is pinned on the right instance.
        if suspects:
            batch, width = [suspects.pop(0)], 1
        else:
            batch, pending, width = pending, [], jobs
        crashed: list[Item] = []
        with ProcessPoolExecutor(max_workers=min(width, len(batch)), mp_context=ctx,
                                 initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(solve_file, str(it.path), it.rel, solver, time_limit): it for it in batch}
            waiting = set(futures)
            while waiting:
                finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = futures[fut]
                    try:
                        payload = fut.result()
                    except BrokenProcessPool:
                        crashed.append(item)
                        continue
                    done(item, payload)
        if crashed and width == 1:
            item = crashed[0]
            done(item, error_result(item.rel, "the solver process died while solving this instance", 1, 0.0) | {
                "batch": {"source": display_name(item.rel), "sha256": file_digest(item.path),
                          "options": options_key(solver, time_limit)}})
        else:
            suspects.extend(sorted(crashed, key=lambda it: it.rel))


def _run_ray(todo: list[Item], solver: str, time_limit: float | None, jobs: int,
             done: Callable[[Item, dict], None]) -> None:
    try:
        import ray
    except ImportError:
        raise BatchError("the ray executor needs the optional extra: pip install 'mtl-planner[ray]'") from None
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    remote = ray.remote(num_cpus=1)(solve_file)
    refs = {remote.remote(str(it.path), it.rel, solver, time_limit): it for it in todo}
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            item = refs.pop(ref)
            try:
                payload = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a lost worker is this instance's error
                payload = error_result(item.rel, f"ray worker failed ({type(exc).__name__})", 1, 0.0)
                payload["batch"] = {"source": display_name(item.rel), "sha256": file_digest(item.path),
                                    "options": options_key(solver, time_limit)}
            done(item, payload)


def summary_row(rel: str, result: dict[str, Any] | None) -> dict[str, Any]:
    rel = display_name(rel)
    if result is None:
        return {"instance": rel, "kind": None, "status": "error", "objective": None, "bound": None,
                "seconds": None, "error": "no result file"}
    return {
        "instance": rel,
        "kind": result.get("kind"),
        "status": result.get("status"),
        "objective": result.get("objective"),
        "bound": result.get("bound"),
        "seconds": result.get("seconds"),
        "error": _text(result.get("error") or (None if result.get("status") in SOLVED else result.get("message"))),
    }


def _text(value: Any) -> Any:
    return display_name(value) if isinstance(value, str) else value


def write_summaries(outdir: Path, rows: list[dict[str, Any]], report: dict[str, Any]) -> None:
    from planner.io import atomic_write_text, write_json

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_FIELDS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in SUMMARY_FIELDS})
    try:
        atomic_write_text(outdir / "summary.csv", buf.getvalue())
        write_json(outdir / "summary.json", report)
    except OSError as exc:
        raise BatchError(f"{outdir}: cannot write the summaries: {exc.strerror or exc}") from None


def run_batch(root: str | os.PathLike, outdir: str | os.PathLike | None = None, *, jobs: int = 1,
              executor: str | None = None, solver: str = "auto", time_limit: float | None = None,
              force: bool = False, on_total: Callable[[int], None] | None = None,
              progress: Callable[[int], None] | None = None) -> BatchReport:
    """Solve every instance under ``root``; see the module docstring."""
    t0 = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise BatchError(f"{root}: not a folder")
    outdir = Path(outdir) if outdir is not None else root
    if jobs < 1:
        raise BatchError(f"--jobs must be at least 1, got {jobs}")
    from planner.solve import check_time_limit

    check_time_limit(time_limit)
    executor = executor or ("local" if jobs == 1 else "process")
    if executor not in EXECUTORS:
        raise BatchError(f"unknown executor {executor!r} (choose {', '.join(EXECUTORS)})")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise BatchError("the ray executor needs the optional extra: pip install 'mtl-planner[ray]'") from None
    check_outdir(outdir)
    sweep_outdir(outdir)
    items = find_instances(root, outdir)
    _check_summary_place(outdir)
    if on_total is not None:
        on_total(len(items))
    opts = options_key(solver, time_limit)
    results: dict[str, dict[str, Any]] = {}
    unwritable: set[str] = set()
    todo: list[Item] = []
    for item in items:
        stored = None if force else _finished(item, opts)
        if stored is not None:
            results[item.rel] = stored
        else:
            todo.append(item)
    skipped = len(items) - len(todo)
    if progress is not None and skipped:
        progress(skipped)

    def done(item: Item, payload: dict[str, Any]) -> None:
        try:
            _write_result(item, payload)
        except _NameTooLong:  # this instance's error, not the batch's
            payload = error_result(item.rel, f"{display_name(item.result.name)}: result file name is longer than the "
                                   "file system allows (255 bytes); rename the instance", 2, 0.0) | {
                "batch": payload.get("batch")}
            unwritable.add(item.rel)
        results[item.rel] = payload
        if progress is not None:
            progress(1)

    if todo:
        if executor == "local":
            _run_local(todo, solver, time_limit, done)
        elif executor == "process":
            _run_process(todo, solver, time_limit, jobs, done)
        else:
            _run_ray(todo, solver, time_limit, jobs, done)

    rows = [summary_row(item.rel, results.get(item.rel) if item.rel in unwritable else
                        (_read_result(item) or results.get(item.rel))) for item in items]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    solved = sum(1 for row in rows if row["status"] in SOLVED)
    report = BatchReport(total=len(rows), solved=solved, failed=len(rows) - solved, skipped=skipped,
                         counts=counts, rows=rows, outdir=outdir, seconds=time.perf_counter() - t0)
    write_summaries(outdir, rows, report.to_dict())
    return report


def sweep_outdir(outdir: Path) -> int:
    """Remove, in every folder under OUTDIR, the temporary files of atomic writes whose process was
    killed (a SIGKILLed batch), so none stays for ever once its instance's result is complete."""
    from planner.io import sweep_stale_temporaries

    removed = 0
    for folder, dirs, _files in os.walk(outdir, followlinks=False):
        removed += sweep_stale_temporaries(folder)
    return removed


def _check_summary_place(outdir: Path) -> None:
    """The summaries are written as OUTDIR/summary.json and summary.csv: a file of another kind there
    (an instance named summary.json, a FIFO) would be replaced, so the batch stops before solving."""
    from planner.io import special_kind
    from planner.status import UsageError

    for name in ("summary.json", "summary.csv"):
        path = outdir / name
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        kind = special_kind(mode)
        if kind:
            raise UsageError(f"{path}: is {kind}; the batch summary cannot be written there (use -o OUTDIR)")
        if name == "summary.json" and not is_batch_summary(path):
            raise UsageError(f"{path}: is not a batch summary (an instance?) and would be overwritten by the "
                             "summary; move it or use -o OUTDIR")


def _read_result(item: Item) -> dict[str, Any] | None:
    from planner.io import read_regular_bytes

    try:
        data = json.loads(read_regular_bytes(item.result))
    except (PlannerError, ValueError):
        return None
    return data if isinstance(data, dict) else None
