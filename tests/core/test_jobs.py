"""The one job runner: every training command takes --store and --executor, and a rerun with the same
store trains nothing and gives the same answer."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner_models.data import synthetic_classification
from planner_models.train import TrainConfig

TRAIN = ["--epochs", "4", "--batch-size", "32", "--hidden", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    d = synthetic_classification(k=5, p=4, n_per_task=120, seed=3)
    path = tmp_path_factory.mktemp("jobs") / "tasks.csv"
    lines = ["task," + ",".join(d.feature_names) + ",y"]
    for x, t, y in zip(d.X, d.task, d.y):
        lines.append(d.task_names[t] + "," + ",".join(f"{v:.5f}" for v in x) + f",{y}")
    path.write_text("\n".join(lines) + "\n")
    return path, d.task_names


def _twice(args):
    outs = []
    for _ in range(2):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        outs.append(json.loads(res.stdout))
    return outs


def test_plan_rerun_with_store_trains_nothing(csv_path, tmp_path):
    path, names = csv_path
    store = tmp_path / "runs.sqlite"
    first, again = _twice(["plan", "--data", str(path), "--task-column", "task", "--label-column", "y",
                           "--target", names[0], "--subsets", "10", "--alpha", "2", "--bootstrap", "0",
                           "--final-seeds", "1", "--store", str(store), "--executor", "local",
                           "--models-per-batch", "7", "--json", *TRAIN])
    assert first["models_trained"] > 10 and again["models_trained"] == 0
    assert again["selected"] == first["selected"] and again["test"] == first["test"]


def test_group_rerun_with_store_trains_nothing(csv_path, tmp_path):
    path, _ = csv_path
    store = tmp_path / "runs.sqlite"
    first, again = _twice(["group", "--data", str(path), "--task-column", "task", "--label-column", "y",
                           "--method", "hoa", "--max-groups", "2", "--store", str(store), "--executor", "local",
                           "--json", *TRAIN])
    assert first["models_trained"] > 0 and again["models_trained"] == 0
    assert again["groups"] == first["groups"]


def test_budget_rerun_with_store_trains_nothing(csv_path, tmp_path):
    path, _ = csv_path
    store = tmp_path / "runs.sqlite"
    first, again = _twice(["budget", "--data", str(path), "--task-column", "task", "--label-column", "y",
                           "--costs", "*=1", "--budget", "30", "--initial", "20", "--points", "2", "--repeats", "1",
                           "--store", str(store), "--executor", "local", "--json", *TRAIN])
    assert first["estimate"]["trained"] > 0 and again["estimate"]["trained"] == 0
    assert again["solution"] == first["solution"]


def test_every_training_command_has_store_and_executor():
    for name in ("estimate", "plan", "group", "budget", "demo"):
        params = {p.name for p in main.commands[name].params}
        assert {"store", "executor", "models_per_batch"} <= params, name


def test_runner_dedups_and_keys_by_sorted_tasks():
    from planner.jobs import Job, JobRunner, SubsetRuns
    from planner.store import Store

    d = synthetic_classification(k=4, p=3, n_per_task=60, seed=1)
    kind = SubsetRuns(0, TrainConfig(hidden=(4,), epochs=2, batch_size=32, device="cpu"))
    with Store(":memory:") as store:
        runner = JobRunner(store, batch_size=2)
        jobs = [Job((2, 1), 0, 11), Job((1, 2), 0, 11), Job((), 0, 5), Job((3,), 1, 7)]
        out = runner.run(d, kind, jobs, seed=0)
        assert runner.trained == 3 and set(out) == {((1, 2), 0), ((), 0), ((3,), 1)}
        again = runner.run(d, kind, jobs, seed=0)
        assert runner.trained == 3 and {k: v.f for k, v in again.items()} == {k: v.f for k, v in out.items()}


def test_ray_chunk_size_keeps_every_cpu_busy():
    from planner.executors import ray_chunk_size

    assert ray_chunk_size(59, 128, 8) == 4  # 15 tasks for 8 CPUs, not one task of 59
    assert ray_chunk_size(59, 3, 8) == 3  # never more than a batch
    assert ray_chunk_size(1, 128, 64) == 1 and ray_chunk_size(1000, 128, 0) == 128


def test_ray_address_option_and_environment_reach_the_executor(csv_path, tmp_path, monkeypatch):
    """--ray-address (else RAY_ADDRESS) is what the ray executor is given; here a stand-in executor
    records it and trains in this process."""
    from planner import executors

    seen = []

    def fake_ray(kind, data, jobs, batch_size, on_batch, progress=None, address=None):
        seen.append(address)
        executors.train_jobs_local(kind, data, jobs, batch_size, on_batch, progress)

    monkeypatch.setitem(executors.EXECUTORS, "ray", fake_ray)
    path, names = csv_path
    args = ["estimate", "--data", str(path), "--task-column", "task", "--label-column", "y", "--target", names[0],
            "--subsets", "10", "--alpha", "2", "--bootstrap", "0", "--executor", "ray", *TRAIN]
    res = CliRunner().invoke(main, [*args, "--ray-address", "ray://head:10001", "-o", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    res = CliRunner(env={"RAY_ADDRESS": "auto"}).invoke(main, [*args, "-o", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    assert seen and set(seen[:1]) == {"ray://head:10001"} and seen[-1] == "auto"


def test_ray_address_without_ray_executor_is_a_usage_error(csv_path, tmp_path):
    path, names = csv_path
    res = CliRunner().invoke(main, ["estimate", "--data", str(path), "--task-column", "task", "--label-column", "y",
                                    "--target", names[0], "--ray-address", "auto", "-o", str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "--ray-address needs --executor ray" in res.output
    for name in ("estimate", "plan", "group", "budget", "demo"):
        assert "ray_address" in {p.name for p in main.commands[name].params}, name


@pytest.mark.parametrize("heads", ["task", "shared"])
def test_plan_saves_its_final_models(csv_path, tmp_path, heads):
    """--save-models: one state dict per final seed plus index.json, loadable into the built-in network
    with the number of heads the index names."""
    import torch

    from planner_models.mtl import MTLNet

    path, names = csv_path
    out = tmp_path / "models"
    res = CliRunner().invoke(main, ["plan", "--data", str(path), "--task-column", "task", "--label-column", "y",
                                    "--target", names[0], "--subsets", "10", "--alpha", "2", "--bootstrap", "0",
                                    "--final-seeds", "2", "--save-models", str(out), "--json", "--heads", heads,
                                    *TRAIN])
    assert res.exit_code == 0, res.output
    index = json.loads((out / "index.json").read_text())
    assert index["heads"] == heads and index["n_heads"] == (1 if heads == "shared" else len(index["tasks"]))
    assert [m["file"] for m in index["models"]] == ["plan_seed0.pt", "plan_seed1.pt"]
    assert index["tasks"][0] == names[0] and len(index["tasks"]) == 1 + len(json.loads(res.stdout)["selected"])
    state = torch.load(out / "plan_seed0.pt")
    net = MTLNet(len(index["features"]), index["hidden"], index["n_heads"], 2)
    net.load_state_dict(state)
    assert all(torch.isfinite(v).all() for v in state.values())
