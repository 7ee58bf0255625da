"""Every trainer returns the target's loss on each of its validation and test rows (``SubsetResult.rows``),
and those rows average to the figures it reports: f, the test loss and (classification) the accuracy.
The plan pairs final models on these rows to count the rows' own noise."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from planner_models.data import synthetic_classification, synthetic_linear
from planner_models.train import TrainConfig, train_subsets, train_subsets_plain
from planner_models.user_model import load_user_model, train_subsets_user

ROOT = Path(__file__).resolve().parents[2]
RESIDUAL = str(ROOT / "examples" / "user_model" / "layernorm_residual.py") + ":make_model"
SUBSETS = [[1, 2], [3], [], [2, 3, 4]]
SEEDS = [1, 2, 3, 4]

pytestmark = pytest.mark.usefixtures("one_thread")


def _check(results, data, target, classification):
    n_val = len(data.rows(target, 1))
    n_test = len(data.rows(target, 2))
    for r in results:
        assert r.rows is not None and len(r.rows["val"]) == n_val and len(r.rows["test"]) == n_test
        assert float(np.mean(r.rows["val"])) == pytest.approx(r.f, abs=1e-5)
        assert float(np.mean(r.rows["test"])) == pytest.approx(r.test["loss"], abs=1e-5)
        if classification:
            assert set(np.unique(r.rows["test_error"])) <= {0.0, 1.0}
            assert 1.0 - float(np.mean(r.rows["test_error"])) == pytest.approx(r.test["accuracy"], abs=1e-6)
        else:
            assert "test_error" not in r.rows
            assert float(np.mean(r.rows["test"])) == pytest.approx(r.test["mse"], rel=1e-5)
        assert "rows" not in r.to_dict()
    # the rows differ between models (they are each model's own, not a copy)
    assert not np.allclose(results[0].rows["test"], results[1].rows["test"])


@pytest.mark.parametrize("hidden", [(16,), (8, 8)])   # the C kernel, and the PyTorch path
@pytest.mark.parametrize("heads", ["task", "shared"])
def test_batched_and_plain_rows(hidden, heads):
    data = synthetic_classification(k=4, p=4, n_per_task=[120, 90, 150, 60, 120], seed=5)
    cfg = TrainConfig(hidden=hidden, heads=heads, epochs=3, batch_size=32, patience=2)
    fast = train_subsets(data, 0, SUBSETS, cfg, SEEDS)
    _check(fast, data, 0, True)
    slow = train_subsets_plain(data, 0, SUBSETS, cfg, SEEDS)
    _check(slow, data, 0, True)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.rows["test"], b.rows["test"], atol=5e-5)


def test_regression_rows():
    data = synthetic_linear(k=3, p=4, n_per_task=[80, 60, 100, 50], seed=5)
    _check(train_subsets(data, 1, [[0, 2], [3], []], TrainConfig(epochs=3), [1, 2, 3]), data, 1, False)


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_user_model_rows(mode):
    data = synthetic_classification(k=4, p=4, n_per_task=[120, 90, 150, 60, 120], seed=5)
    cfg = TrainConfig(lr=1e-2, epochs=3, batch_size=32, patience=2)
    res = train_subsets_user(data, 0, SUBSETS, cfg, SEEDS, load_user_model(RESIDUAL), mode=mode)
    _check(res, data, 0, True)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("heads", ["task", "shared"])
def test_cuda_rows_match_the_cpu(heads):
    """On a GPU the batched PyTorch path gives the same per-row losses as on the CPU (float32 sums in
    another order: a small tolerance)."""
    data = synthetic_classification(k=4, p=4, n_per_task=[120, 90, 150, 60, 120], seed=5)
    cfg = TrainConfig(hidden=(8, 8), heads=heads, epochs=3, batch_size=32, patience=2)
    cpu = train_subsets(data, 0, SUBSETS, cfg, SEEDS)
    gpu = train_subsets(data, 0, SUBSETS, dataclasses.replace(cfg, device="cuda"), SEEDS)
    _check(gpu, data, 0, True)
    for a, b in zip(cpu, gpu):
        assert b.device.startswith("cuda")
        np.testing.assert_allclose(a.rows["val"], b.rows["val"], atol=2e-3)
        np.testing.assert_allclose(a.rows["test"], b.rows["test"], atol=2e-3)
