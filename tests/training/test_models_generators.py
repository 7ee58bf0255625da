"""The synthetic generators have the properties their docstrings state."""
import numpy as np
import pytest

from planner_models.data import TRAIN, DataError, synthetic_classification, synthetic_fair_noisy, synthetic_linear


def test_linear_theorem_3_1_setting():
    d = synthetic_linear(k=8, p=5, n_per_task=2000, a=0.2, b=1.0, n_good=3, sigma=0.5, seed=0)
    info = d.info
    assert info["good"] == [1, 2, 3] and info["bad"] == [4, 5, 6, 7, 8] and info["target"] == 0
    beta = np.array(info["beta"])
    dist = np.linalg.norm(beta - beta[0], axis=1)
    assert np.all(dist[info["good"]] <= 0.2 + 1e-12) and np.all(dist[info["bad"]] >= 1.0 - 1e-12)
    assert d.n_classes == 0 and d.n_tasks == 9 and d.X.shape == (9 * 2000, 5)
    # inputs isotropic Gaussian; least squares on each task recovers its beta
    assert np.allclose(d.X.mean(0), 0, atol=0.05) and np.allclose(np.cov(d.X.T), np.eye(5), atol=0.05)
    for t in (0, 1, 5):
        rows = d.task == t
        est, *_ = np.linalg.lstsq(d.X[rows], d.y[rows], rcond=None)
        assert np.linalg.norm(est - beta[t]) < 0.05
        resid = d.y[rows] - d.X[rows] @ beta[t]
        assert abs(resid.std() - 0.5) < 0.03


def test_classification_twin():
    d = synthetic_classification(k=6, p=4, n_per_task=3000, n_classes=3, a=0.3, b=2.0, sigma=0.1, seed=1)
    B = np.array(d.info["B"])
    dist = np.linalg.norm((B - B[0]).reshape(7, -1), axis=1)
    assert np.all(dist[d.info["good"]] <= 0.3 + 1e-12) and np.all(dist[d.info["bad"]] >= 2.0 - 1e-12)
    assert d.n_classes == 3 and set(np.unique(d.y)) == {0, 1, 2}
    # labels follow argmax(x B_i) up to the small noise
    for t in range(7):
        rows = d.task == t
        agree = (np.argmax(d.X[rows] @ B[t], 1) == d.y[rows]).mean()
        assert agree > 0.85


def test_fair_sources_share_the_bayes_classifier_noisy_ones_do_not():
    d = synthetic_fair_noisy(k=6, p=5, n_per_task=6000, n_fair=3, target_noise=0.1, flip=0.8, region=0.5, seed=2)
    info = d.info
    assert info["fair"] == info["good"] == [1, 2, 3] and info["noisy"] == info["bad"] == [4, 5, 6]
    w, u, mu, q = np.array(info["w"]), np.array(info["u"]), np.array(info["mu"]), info["q"]
    bayes = (d.X @ w > 0).astype(int)
    for t in range(7):
        rows = d.task == t
        agree = bayes[rows] == d.y[rows]
        in_region = (d.X[rows] - mu[t]) @ u[t] > q
        if t == 0:
            assert abs(agree.mean() - 0.9) < 0.02
        elif t in info["fair"]:
            # agreement above 1/2 everywhere (inside any region too): h* is the Bayes classifier
            assert agree.mean() > 0.65 and agree[in_region].mean() > 0.6 and agree[~in_region].mean() > 0.6
        else:
            # inside its region labels mostly disagree with h*: another Bayes classifier there
            assert abs(in_region.mean() - 0.5) < 0.03
            assert agree[in_region].mean() < 0.25 and agree[~in_region].mean() > 0.6


def test_generators_are_deterministic_and_validate():
    a = synthetic_fair_noisy(k=3, p=3, n_per_task=50, seed=5)
    b = synthetic_fair_noisy(k=3, p=3, n_per_task=50, seed=5)
    assert a.fingerprint() == b.fingerprint()
    assert synthetic_linear(k=3, p=3, n_per_task=50, seed=6).fingerprint() != synthetic_linear(k=3, p=3, n_per_task=50, seed=7).fingerprint()
    c = synthetic_classification(k=2, p=3, n_per_task=[30, 60, 90])
    assert list(np.bincount(c.task)) == [30, 60, 90] and (c.split == TRAIN).sum() == 18 + 36 + 54
    with pytest.raises(DataError):
        synthetic_linear(a=2.0, b=1.0)
    with pytest.raises(DataError):
        synthetic_fair_noisy(flip=0.4)
