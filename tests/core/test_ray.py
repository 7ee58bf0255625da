"""The Ray executor on a local 2-CPU cluster gives the same store as the in-process one."""
from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the optional extra mtl-planner[ray] is not installed")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_ray_executor_matches_local(local_cluster, tmp_path):
    from planner_models.data import synthetic_classification
    from planner_models.train import TrainConfig
    from planner.selection.estimate import EstimateSettings, estimate

    data = synthetic_classification(k=5, p=4, n_per_task=80, seed=0)
    config = TrainConfig(epochs=3, hidden=(8,), patience=None)
    local = estimate(data, "target", EstimateSettings(alpha=2, n_subsets=10, n_boot=0, repeats=2, batch_size=3),
                     config, str(tmp_path / "local.sqlite"))
    remote = estimate(data, "target", EstimateSettings(alpha=2, n_subsets=10, n_boot=0, repeats=2, batch_size=3,
                                                       executor="ray"), config, str(tmp_path / "ray.sqlite"))
    assert remote.trained == local.trained
    assert np.array_equal(local.f, remote.f)
    assert local.scores == remote.scores
