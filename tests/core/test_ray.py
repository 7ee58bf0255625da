"""The Ray executor on a local 2-CPU cluster gives the same store as the in-process one, splits the
work so every CPU has tasks, and reports a failing worker as one line naming its chunk."""
from __future__ import annotations

import json

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


def test_large_batches_are_split_across_cpus(local_cluster):
    """A study smaller than one batch is not one Ray task: 2 CPUs get ceil(n / 4) models per task, every
    finished chunk is one store transaction, and the records equal the local executor's."""
    from planner.jobs import Job, JobRunner, SubsetRuns
    from planner.store import Store
    from planner_models.data import synthetic_classification
    from planner_models.train import TrainConfig

    data = synthetic_classification(k=6, p=3, n_per_task=50, seed=4)
    kind = SubsetRuns(0, TrainConfig(hidden=(4,), epochs=2, batch_size=32, device="cpu"))
    jobs = [Job(tuple(s), r, 100 * r + len(s) + sum(s)) for s in ([], [1], [2], [3], [1, 2], [2, 4], [3, 5], [1, 5], [4])
            for r in range(2)]
    out = {}
    for executor in ("local", "ray"):
        with Store(":memory:") as store:
            batches = []
            add = store.add_batch
            store.add_batch = lambda study, recs, add=add, batches=batches: (batches.append(len(recs)), add(study, recs))[1]
            runner = JobRunner(store, executor=executor, batch_size=128)
            out[executor] = ({k: (v.f, v.val_losses, v.test) for k, v in runner.run(data, kind, jobs, seed=0).items()},
                             batches)
    assert out["local"][1] == [18]
    assert sorted(out["ray"][1]) == [3, 5, 5, 5]  # ceil(18 / 4) = 5 models per task
    assert out["ray"][0] == out["local"][0]


BAD_MODEL = """
import torch

def make(in_dim, n_tasks, out_dim):
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(in_dim, out_dim)

        def forward(self, x, task):
            raise RuntimeError("the model broke on purpose")
    return Bad()
"""


def test_worker_error_is_one_planner_error_naming_the_chunk(local_cluster, tmp_path):
    from planner.jobs import Job, JobRunner, SubsetRuns
    from planner.status import PlannerError
    from planner.store import Store
    from planner_models.data import synthetic_classification
    from planner_models.train import TrainConfig

    (tmp_path / "bad_model.py").write_text(BAD_MODEL)
    data = synthetic_classification(k=4, p=3, n_per_task=40, seed=1)
    kind = SubsetRuns(0, TrainConfig(hidden=(4,), epochs=1, device="cpu", model=f"{tmp_path / 'bad_model.py'}:make"))
    with Store(":memory:") as store:
        with pytest.raises(PlannerError) as err:
            JobRunner(store, executor="ray").run(data, kind, [Job((1,), r, r) for r in range(6)], seed=0)
    msg = str(err.value)
    assert "Ray task for chunk" in msg and "of 3" in msg and "broke on purpose" in msg, msg
    assert "\n" not in msg and "Traceback" not in msg


def test_cli_ray_executor_equals_local(local_cluster, tmp_path):
    from click.testing import CliRunner

    from planner.cli import main
    from planner_models.data import synthetic_classification

    d = synthetic_classification(k=4, p=3, n_per_task=60, seed=5)
    path = tmp_path / "tasks.csv"
    lines = ["task," + ",".join(d.feature_names) + ",y"]
    lines += [d.task_names[t] + "," + ",".join(f"{v:.5f}" for v in x) + f",{y}" for x, t, y in zip(d.X, d.task, d.y)]
    path.write_text("\n".join(lines) + "\n")
    reports = {}
    for executor in ("local", "ray"):
        res = CliRunner().invoke(main, ["group", "--data", str(path), "--task-column", "task", "--label-column", "y",
                                        "--method", "hoa", "--max-groups", "2", "--executor", executor, "--json",
                                        "--store", str(tmp_path / f"{executor}.sqlite"),
                                        "--epochs", "2", "--hidden", "4", "--device", "cpu"])
        assert res.exit_code == 0, res.output
        reports[executor] = json.loads(res.stdout)
    assert reports["ray"]["groups"] == reports["local"]["groups"]
    assert reports["ray"]["test"] == reports["local"]["test"]
