"""The native CPU training kernel: ``train_step.c``, built on first use with the system C compiler.

:func:`epoch_kernel` returns a callable that runs one epoch of Adam steps for many one-hidden-layer
models (see ``train_step.c``), or ``None`` when the kernel cannot be used; the trainer then uses its
PyTorch path (the results agree to float rounding, see docs/training.md). The shared library is
compiled once per (input width, hidden width) with ``cc -O3 -march=native`` into a cache folder
(``$MTL_PLANNER_CACHE``, else ``$XDG_CACHE_HOME/mtl-planner``, else ``~/.cache/mtl-planner``), under a
name that hashes the source, the compiler command and the CPU's flags, and moved into place
atomically, so concurrent processes and interrupted builds are safe; a folder owned by another user
is never used. :func:`build_library` serves other C code too (the grouping pricing tree).

``MTL_PLANNER_NATIVE=0`` turns the kernel off (the PyTorch path is used everywhere);
``MTL_PLANNER_MARCH`` replaces ``native`` in ``-march`` (e.g. ``x86-64-v3`` for AVX2 only).
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("train_step.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", "-pthread"]
KINDS = {"binary": 0, "multiclass": 1, "regression": 2}
MAX_CLASSES = 64

_loaded: dict[tuple[int, int, str], object] = {}
_failed: set[tuple[int, int, str]] = set()


def _flags() -> list[str]:
    """:data:`FLAGS`, with ``-march`` from ``$MTL_PLANNER_MARCH`` when set (tests build the kernel for
    older instruction sets with it: AVX2 or plain x86-64 instead of this CPU's own)."""
    march = os.environ.get("MTL_PLANNER_MARCH", "").strip()
    return [f"-march={march}" if f == "-march=native" and march else f for f in FLAGS]


def enabled() -> bool:
    return os.environ.get("MTL_PLANNER_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    env = os.environ.get("MTL_PLANNER_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "mtl-planner"
    try:
        return Path.home() / ".cache" / "mtl-planner"
    except (RuntimeError, KeyError):  # no home folder (some containers and service accounts)
        return Path(tempfile.gettempdir()) / f"mtl-planner-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def build_library(source: Path, defines: list[str], stem: str) -> Path | None:
    """Compile ``source`` (C, with ``-D`` ``defines``) into a shared library in :func:`cache_dir`, once:
    the name hashes the source, the command and the CPU; written to a temporary file and renamed.
    ``None`` (and a log line) when there is no compiler or the build fails."""
    cc = _compiler()
    if cc is None:
        log.info("native code: no C compiler found; using the Python path")
        return None
    src = Path(source).read_bytes()
    cmd = [cc, *_flags(), *[f"-D{x}" for x in defines]]
    key = hashlib.sha256(src + repr(cmd).encode() + _cpu_flags().encode() + platform.machine().encode()).hexdigest()[:16]
    out = cache_dir() / f"{stem}_{key}.so"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(os, "getuid") and out.parent.stat().st_uid != os.getuid():
            # a library is code: never load one from a folder someone else owns (shared temp dirs)
            log.warning("native code: %s belongs to another user; using the Python path", out.parent)
            return None
        if out.exists():
            return out
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:
            r = subprocess.run([*cmd, "-o", tmp, str(source), "-lm"], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                log.warning("native code: %s failed (%s); using the Python path", cc, r.stderr.strip()[:300])
                return None
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("native code: build failed (%s); using the Python path", exc)
        return None
    return out


def _build(p1: int, hw: int) -> Path | None:
    return build_library(SOURCE, [f"P1={p1}", f"HW={hw}"], f"train_step_{p1}_{hw}")


_P = ctypes.c_void_p
_I = ctypes.c_int
_F = ctypes.c_float


def _load(p1: int, hw: int):
    path = _build(p1, hw)
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        log.warning("native kernel: cannot load %s (%s); using the PyTorch path", path, exc)
        return None
    fn = lib.train_epoch
    fn.restype = _I
    fn.argtypes = [_I, _I, _I, _I, _P, _P, _P, _P, _P, _I, _P, _P, _P, _P, _P, _P, _P, _I, _I, _I,
                   _F, _F, _F, _F, _F, _I]
    if lib.kernel_sizes() != p1 * 1000 + hw:  # pragma: no cover - a stale or foreign library
        return None
    return fn


def epoch_kernel(p1: int, hw: int, n_classes: int):
    """The epoch function for inputs of width ``p1`` (with the constant column) and hidden width
    ``hw`` (a multiple of 16), or ``None`` (disabled, no compiler, too many classes)."""
    if not enabled() or n_classes > MAX_CLASSES:
        return None
    key = (int(p1), int(hw), os.environ.get("MTL_PLANNER_MARCH", ""))
    if key in _failed:
        return None
    fn = _loaded.get(key)
    if fn is None:
        fn = _load(key[0], key[1])
        if fn is None:
            _failed.add(key)
            return None
        _loaded[key] = fn
    return fn


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def run_epoch(fn, *, X1: np.ndarray, y_float: np.ndarray | None, y_int: np.ndarray | None, task: np.ndarray,
              slot_table: np.ndarray, flat: np.ndarray, n_j: np.ndarray, s_m: np.ndarray, step0: np.ndarray,
              theta: np.ndarray, m1: np.ndarray, m2: np.ndarray, batch: int, K: int, C: int, kind: str,
              lr: float, betas: tuple[float, float], eps: float, weight_decay: float, p1: int, hw: int,
              threads: int = 1) -> None:
    """One epoch for ``A = len(theta)`` models, updating ``theta``, ``m1`` and ``m2`` in place, spread
    over ``threads`` threads (each model on one thread: the result does not depend on the count).

    Every array must be C-contiguous with the dtype the kernel reads (float32 / int64); checked here,
    since the kernel trusts them."""
    A, P = theta.shape
    f32 = [X1, theta, m1, m2] + ([y_float] if y_float is not None else [])
    i64 = [task, slot_table, flat, n_j, s_m, step0] + ([y_int] if y_int is not None else [])
    for a in f32:
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            raise ValueError("native kernel: float32 C-contiguous arrays expected")
    for a in i64:
        if a.dtype != np.int64 or not a.flags.c_contiguous:
            raise ValueError("native kernel: int64 C-contiguous arrays expected")
    if X1.shape[1] != p1 or m1.shape != theta.shape or m2.shape != theta.shape or flat.shape[0] != A:
        raise ValueError("native kernel: shapes do not match")
    yf = _ptr(y_float) if y_float is not None else None
    yi = _ptr(y_int) if y_int is not None else None
    rc = fn(A, P, batch, flat.shape[1], _ptr(X1), yf, yi, _ptr(task), _ptr(slot_table), slot_table.shape[1],
            _ptr(flat), _ptr(n_j), _ptr(s_m), _ptr(step0), _ptr(theta), _ptr(m1), _ptr(m2), K, C, KINDS[kind],
            lr, betas[0], betas[1], eps, weight_decay, max(1, int(threads)))
    if rc != 0:
        raise MemoryError("native kernel: cannot allocate its scratch memory")
