"""Ctrl-C during a solve or a training run: one process-wide "stop requested" flag.

While :func:`catching` is active (in the main thread), the first SIGINT does not raise: it sets the
flag, and every stop function registered with :func:`on_request` is called at once (CP-SAT's
``stop_search``, HiGHS's interrupt callback). The solvers' own loops poll :func:`requested`; the C
pricing tree polls the same flag through :func:`flag_address`. A second Ctrl-C raises
``KeyboardInterrupt`` as usual (the command then exits with 130 at once).

:func:`run` runs a function in a worker thread while the main thread waits, so that the handler runs
at once even while the worker is inside C code (HiGHS, CP-SAT, the pricing tree), which does not
return to Python until it is told to stop.

Outside the main thread (process pools, other threads) nothing is installed; the flag can still be
set by :func:`request` from the code that owns the process.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

_flag = ctypes.c_int(0)  # read by C code (a ``volatile int *``)
_event = threading.Event()
_stoppers: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_depth = 0
_next_key = 0


def requested() -> bool:
    """True once a stop was requested (Ctrl-C, or :func:`request`) since the outermost
    :func:`catching` began."""
    return _event.is_set()


def flag_address() -> int:
    """Address of a C ``int`` that is 1 once a stop was requested (for native loops to poll)."""
    return ctypes.addressof(_flag)


def request() -> None:
    """Ask every running solve or training loop to stop soon and keep what it has."""
    _flag.value = 1
    _event.set()
    with _lock:
        stoppers = list(_stoppers.values())
    for stop in stoppers:
        try:
            stop()
        except Exception:  # noqa: BLE001 - a stopper that fails must not hide the others
            pass


def clear() -> None:
    _flag.value = 0
    _event.clear()


@contextlib.contextmanager
def on_request(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop()`` when a stop is requested while the block runs (not for a request made before)."""
    global _next_key
    with _lock:
        key = _next_key
        _next_key += 1
        _stoppers[key] = stop
    try:
        yield
    finally:
        with _lock:
            _stoppers.pop(key, None)


def _handler(signum, frame) -> None:
    if _event.is_set():  # the second Ctrl-C: stop now
        raise KeyboardInterrupt
    request()


def _can_install() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        return False
    return current is not signal.SIG_IGN  # a process told to ignore Ctrl-C keeps ignoring it


@contextlib.contextmanager
def catching() -> Iterator[bool]:
    """While the block runs, the first Ctrl-C requests a stop instead of raising; the old handler is
    restored afterwards. The flag is cleared when the outermost block begins and stays set after it
    ends, so the caller can tell that the run was interrupted. Yields whether the handler is active."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield True
        finally:
            _depth -= 1
        return
    if not _can_install():
        yield False
        return
    old = signal.getsignal(signal.SIGINT)
    clear()
    signal.signal(signal.SIGINT, _handler)
    _depth = 1
    try:
        yield True
    finally:
        _depth = 0
        signal.signal(signal.SIGINT, old)


def run(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` under :func:`catching`, in a worker thread while the main thread waits
    (see the module docstring); called directly where no handler can be installed."""
    with catching() as active:
        if not active or threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)
        box: dict = {}

        def work() -> None:
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="planner-solve", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
        if "error" in box:
            raise box["error"]
        return box["value"]


@contextlib.contextmanager
def highs_interruptible(h) -> Iterator[None]:
    """Let a stop request interrupt ``h`` (a ``highspy.Highs``, or a function returning the one running
    now, or None, e.g. inside a Pyomo solver) while the block runs: the request adds an interrupt
    callback, removed again when the block ends, so runs outside the block are untouched."""
    added: list = []

    def cb(event) -> None:
        event.interrupt()

    def stop() -> None:
        target = h() if callable(h) and not hasattr(h, "run") else h
        if target is None or added:
            return
        for name in ("cbMipInterrupt", "cbSimplexInterrupt", "cbIpmInterrupt"):
            try:
                getattr(target, name).subscribe(cb)
                added.append((target, name))
            except Exception:  # noqa: BLE001 - an older highspy without callbacks: the time limit stands
                pass

    with on_request(stop):
        try:
            yield
        finally:
            for target, name in added:
                try:
                    getattr(target, name).unsubscribe(cb)
                except Exception:  # noqa: BLE001
                    pass


def shortened(time_limit: float | None, grace: float = 1.0) -> float | None:
    """The time limit for a solver started after a stop was requested: at most ``grace`` seconds (a
    last short search for a solution), else ``time_limit`` unchanged."""
    if not requested():
        return time_limit
    return grace if time_limit is None else min(time_limit, grace)


def cpsat_solve(solver, model):
    """``solver.Solve(model)`` for OR-Tools CP-SAT where a stop request calls ``solver.stop_search()``
    (CP-SAT then returns its best solution as FEASIBLE). CP-SAT's own SIGINT handler is turned off, so
    Ctrl-C reaches this module; a search started after a request gets at most a second."""
    try:
        solver.parameters.catch_sigint_signal = False
    except (AttributeError, ValueError):  # pragma: no cover - older OR-Tools
        pass
    if requested():
        limit = float(solver.parameters.max_time_in_seconds)
        solver.parameters.max_time_in_seconds = shortened(limit if math.isfinite(limit) else None)
    stop = getattr(solver, "stop_search", None) or getattr(solver, "StopSearch")
    with on_request(stop):
        return solver.Solve(model)
