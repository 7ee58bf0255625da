"""The native CPU kernel (models/native): equal to the PyTorch path to float rounding on every loss
kind and shape it takes, built once and cached, and a clean fallback where it cannot be built."""
import os
import platform

import numpy as np
import pytest

import planner_models.native as native
from planner_models.data import synthetic_classification, synthetic_linear
from planner_models.train import TrainConfig, train_subsets, train_subsets_plain

HAVE_CC = native._compiler() is not None


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty kernel cache and no loaded kernels (restored afterwards)."""
    monkeypatch.setenv("MTL_PLANNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(native, "_failed", set())
    return tmp_path / "cache"


def _torch_path(monkeypatch, fn):
    monkeypatch.setenv("MTL_PLANNER_NATIVE", "0")
    try:
        return fn()
    finally:
        monkeypatch.delenv("MTL_PLANNER_NATIVE")


def _assert_close(a, b, tol):
    for x, y in zip(a, b):
        assert x.subset == y.subset and x.epochs == y.epochs and x.best_epoch == y.best_epoch
        assert x.f == pytest.approx(y.f, abs=tol)
        for k in x.val_losses:
            assert x.val_losses[k] == pytest.approx(y.val_losses[k], abs=tol)
        for k in x.test:
            assert x.test[k] == pytest.approx(y.test[k], abs=tol)


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler: the trainer uses its PyTorch path")
def test_kernel_builds_and_is_cached(fresh):
    fn = native.epoch_kernel(5, 32, 2)
    assert fn is not None
    built = sorted(fresh.glob("train_step_5_32_*.so"))
    assert len(built) == 1 and not list(fresh.glob("*.tmp*"))
    mtime = built[0].stat().st_mtime_ns
    native._loaded.clear()
    assert native.epoch_kernel(5, 32, 2) is not None  # loaded from the cache, not rebuilt
    assert built[0].stat().st_mtime_ns == mtime
    assert native.epoch_kernel(5, 32, native.MAX_CLASSES + 1) is None  # too many classes: PyTorch path


CASES = [
    # (data, config, subsets): binary with padded hidden units, odd batch sizes, weight decay,
    # early stopping and fractions; multiclass; regression
    ("binary", dict(batch_size=50, epochs=4, patience=2, hidden=(20,), weight_decay=1e-3), [[1, 2], [3], [], [1, 2, 3, 4]]),
    ("binary", dict(batch_size=37, epochs=5, patience=1, train_fraction=0.5, epoch_fraction=0.4, loss="zero_one"),
     [[4], [2, 3], [1, 2, 3, 4]]),
    ("multiclass", dict(batch_size=24, epochs=3, patience=2, hidden=(16,)), [[1], [2, 3], []]),
    ("regression", dict(batch_size=30, epochs=3, patience=None, hidden=(48,)), [[1], [2, 3], [1, 2, 3]]),
]


X86 = platform.machine() in ("x86_64", "AMD64")
# the kernel's vector width follows the instruction set (16 floats with AVX-512, 8 with AVX2, 4
# otherwise): on x86 every width is built and checked, whatever this CPU has
MARCHES = [""] + (["x86-64-v3", "x86-64"] if X86 else [])


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler: the trainer uses its PyTorch path")
@pytest.mark.parametrize("march", MARCHES, ids=lambda m: m or "native")
@pytest.mark.parametrize("kind,kw,subsets", CASES)
def test_native_equals_torch_path_and_plain_loop(monkeypatch, kind, kw, subsets, march):
    if march:
        monkeypatch.setenv("MTL_PLANNER_MARCH", march)
    data = {"binary": lambda: synthetic_classification(k=4, p=5, n_per_task=[100, 80, 120, 60, 90], seed=7),
            "multiclass": lambda: synthetic_classification(k=3, p=4, n_per_task=80, n_classes=4, seed=4),
            "regression": lambda: synthetic_linear(k=3, p=6, n_per_task=90, seed=5)}[kind]()
    cfg = TrainConfig(lr=1e-2, **kw)
    assert native.epoch_kernel(data.n_features + 1, -(-cfg.hidden[0] // 16) * 16, data.n_classes) is not None
    seeds = list(range(len(subsets)))
    fast = train_subsets(data, 0, subsets, cfg, seeds)
    ref = _torch_path(monkeypatch, lambda: train_subsets(data, 0, subsets, cfg, seeds))
    plain = train_subsets_plain(data, 0, subsets, cfg, seeds)
    tol = 1e-4 if kind == "regression" else 2e-5
    _assert_close(fast, ref, tol)
    _assert_close(fast, plain, tol)
    # the same models in other groupings: bitwise the same (each model is stepped on its own)
    other = train_subsets(data, 0, subsets[::-1], TrainConfig(lr=1e-2, chunk_size=1, **kw), seeds[::-1])
    assert [(r.f, r.val_losses, r.test) for r in other[::-1]] == [(r.f, r.val_losses, r.test) for r in fast]


def test_fallback_without_compiler(monkeypatch, fresh):
    data = synthetic_classification(k=2, p=3, n_per_task=60, seed=1)
    cfg = TrainConfig(batch_size=32, epochs=2)
    ref = _torch_path(monkeypatch, lambda: train_subsets(data, 0, [[1], [2]], cfg, [0, 1]))
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    assert native.epoch_kernel(4, 32, 2) is None
    out = train_subsets(data, 0, [[1], [2]], cfg, [0, 1])
    assert [(r.f, r.test) for r in out] == [(r.f, r.test) for r in ref]
    assert not fresh.exists() or not list(fresh.iterdir())


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_failed_build_falls_back_and_leaves_nothing(monkeypatch, fresh, tmp_path):
    bad = tmp_path / "bad.c"
    bad.write_text("this is not C\n")
    monkeypatch.setattr(native, "SOURCE", bad)
    assert native.epoch_kernel(4, 32, 2) is None
    assert not list(fresh.iterdir())  # no half-written library left behind


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_unwritable_cache_falls_back(monkeypatch, fresh, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MTL_PLANNER_CACHE", str(blocker / "cache"))  # a path under a file
    assert native.epoch_kernel(4, 32, 2) is None


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_run_epoch_checks_its_arrays():
    fn = native.epoch_kernel(3, 16, 2)
    theta = np.zeros((1, 96), np.float32)
    args = dict(X1=np.zeros((4, 3), np.float32), y_float=np.zeros(4, np.float32), y_int=None,
                task=np.zeros(4, np.int64), slot_table=np.zeros((1, 1), np.int64), flat=np.zeros((1, 4), np.int64),
                n_j=np.array([4]), s_m=np.array([1]), step0=np.array([0]), theta=theta, m1=theta.copy(),
                m2=theta.copy(), batch=4, K=1, C=2, kind="binary", lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=0.0, p1=3, hw=16)
    native.run_epoch(fn, **args)
    with pytest.raises(ValueError):
        native.run_epoch(fn, **(args | {"X1": np.zeros((4, 3), np.float64)}))
    with pytest.raises(ValueError):
        native.run_epoch(fn, **(args | {"flat": np.zeros((1, 4), np.int32)}))
    with pytest.raises(ValueError):
        native.run_epoch(fn, **(args | {"X1": np.zeros((4, 5), np.float32)}))


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_threads_do_not_change_results(kind):
    rng = np.random.default_rng(5)
    n, p1, hw, K, A, bc = 600, 7, 32, 3, 9, 20
    C = {"binary": 2, "multiclass": 3, "regression": 1}[kind]
    P = -(-(p1 * hw + K * C * hw + K * C) // 16) * 16
    X1 = rng.normal(size=(n, p1)).astype(np.float32)
    y = rng.integers(0, max(C, 2), n)
    task = rng.integers(0, 4, n).astype(np.int64)
    slot_table = np.array([rng.permutation([0, 1, 2, 2]) for _ in range(A)], dtype=np.int64)
    flat = np.stack([rng.choice(n, 5 * bc) for _ in range(A)]).astype(np.int64)
    theta = np.zeros((A, P), np.float32)
    theta[:, :p1 * hw + K * C * hw + K * C] = rng.normal(scale=0.3, size=(A, p1 * hw + K * C * hw + K * C))
    outs = []
    for threads in (1, 2, 4):
        th, m1, m2 = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
        native.run_epoch(native.epoch_kernel(p1, hw, C), X1=X1, y_float=None if kind == "multiclass" else y.astype(np.float32),
                         y_int=y.astype(np.int64) if kind == "multiclass" else None, task=task, slot_table=slot_table,
                         flat=flat, n_j=np.full(A, 5 * bc - 7, dtype=np.int64), s_m=np.full(A, 5, dtype=np.int64),
                         step0=np.arange(A, dtype=np.int64), theta=th, m1=m1, m2=m2, batch=bc, K=K, C=C, kind=kind,
                         lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4, p1=p1, hw=hw, threads=threads)
        outs.append((th, m1, m2))
    assert np.isfinite(outs[0][0]).all() and not np.array_equal(outs[0][0], theta)
    for o in outs[1:]:
        for a, b in zip(o, outs[0]):
            assert np.array_equal(a, b)


def test_cache_dir_without_a_home_folder(monkeypatch):
    monkeypatch.delenv("MTL_PLANNER_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(native.Path, "home", staticmethod(no_home))
    d = native.cache_dir()
    assert d.name.startswith("mtl-planner") and d.is_absolute()


@pytest.mark.skipif(not HAVE_CC or not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs a C compiler and root (to give a folder to another user)")
def test_never_loads_from_a_folder_of_another_user(fresh):
    fresh.mkdir(parents=True)
    os.chown(fresh, 12345, 12345)
    assert native.epoch_kernel(4, 32, 2) is None
    assert not list(fresh.iterdir())
