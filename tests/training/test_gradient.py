"""The gradient-based estimate of f(S) (models/gradient.py): shapes, determinism, the batched fit
against a plain per-subset fit, and a planted pure-noise source ranked worst. CPU only, small data."""
import itertools

import numpy as np
import pytest

from planner_models.data import DataError, synthetic_classification, synthetic_linear
from planner_models.gradient import GradientConfig, GradientEstimator, gradient_f
from planner_models.noise import label_noise_case
from planner_models.train import TrainConfig

BASE = TrainConfig(epochs=8, patience=3, device="cpu")
CFG = GradientConfig(base=BASE, dim=64, device="cpu")


@pytest.fixture(scope="module")
def planted():
    # five clean real states and one whose labels are pure noise (flip rate 0.5)
    case = label_noise_case("tv16", 6, rates=[0.0, 0.0, 0.0, 0.5, 0.0, 0.0], max_rows_per_task=200, seed=1)
    return case, GradientEstimator(case.data, case.target, CFG, seed=0)


def test_shape_and_units(planted):
    case, est = planted
    subs = [(1, 2), (3,), (), (4, 5, 6)]
    f = est.f(subs)
    assert f.shape == (4,) and np.all(np.isfinite(f))
    assert np.all((f >= -1.0) & (f <= 1.0))          # negative margin lies in [-1, 1]
    assert est.f([]).shape == (0,)
    with pytest.raises(ValueError):
        est.f([(99,)])


def test_deterministic_for_a_seed(planted):
    case, est = planted
    subs = [(1, 2), (3, 5), (2, 4, 6)]
    again = gradient_f(case.data, case.target, subs, CFG, seed=0)
    assert np.array_equal(est.f(subs), again)
    other = gradient_f(case.data, case.target, subs, CFG, seed=1)
    assert not np.array_equal(est.f(subs), other)


def test_batched_equals_plain_fit(planted):
    case, est = planted
    subs = [(1, 2), (3,), (), (4, 5, 6), (1, 3, 5)]
    assert np.allclose(est.f(subs), est.f_plain(subs), atol=1e-6)
    # the same subsets in another order and company give the same values
    assert np.allclose(est.f(subs[::-1])[::-1], est.f(subs), atol=1e-9)


def test_pure_noise_source_ranked_worst(planted):
    case, est = planted
    subs = list(itertools.combinations(case.sources, 2))
    f = est.f(subs)
    mean_with = [np.mean([fv for s, fv in zip(subs, f) if src in s]) for src in case.sources]
    assert case.sources[int(np.argmax(mean_with))] == 4     # task index of the noisy source (rate 0.5)


def test_other_losses(planted):
    case, est = planted
    for loss in ("ce", "zero_one"):
        e = GradientEstimator(case.data, case.target, GradientConfig(base=TrainConfig(epochs=2, loss=loss, device="cpu"),
                                                                      dim=32, device="cpu"))
        f = e.f([(1,), (2, 3)])
        assert f.shape == (2,) and np.all(f >= 0)


def test_regression_blocks_equal_plain_fit():
    data = synthetic_linear(k=4, p=5, n_per_task=120, seed=3)
    est = GradientEstimator(data, 0, GradientConfig(base=TrainConfig(epochs=5, device="cpu"), dim=None, device="cpu"))
    subs = [(1,), (2, 3), (), (1, 2, 3, 4)]
    f = est.f(subs)
    assert np.all(f > 0)
    assert np.allclose(f, est.f_plain(subs), rtol=1e-8)


def test_multiclass_is_refused():
    data = synthetic_classification(k=3, p=4, n_per_task=60, n_classes=3, seed=0)
    with pytest.raises(DataError):
        GradientEstimator(data, 0, CFG)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu(planted):
    case, est = planted
    subs = [(1, 2), (3,), (), (4, 5, 6)]
    gpu = GradientEstimator(case.data, case.target, GradientConfig(base=TrainConfig(epochs=8, patience=3, device="cpu"),
                                                                    dim=64, device="cuda"), seed=0)
    # the base network is trained on the GPU too: same schedule, float rounding apart
    assert np.allclose(gpu.f(subs), est.f(subs), atol=5e-3)
    assert np.allclose(gpu.f(subs), gpu.f_plain(subs), atol=1e-6)
