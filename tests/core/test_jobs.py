"""The one job runner: every training command takes --store and --executor, and a rerun with the same
store trains nothing and gives the same answer."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner_models.data import synthetic_classification
from planner_models.train import TrainConfig
from helpers import write_tasks_csv

TRAIN = ["--epochs", "4", "--batch-size", "32", "--hidden", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    d = synthetic_classification(k=5, p=4, n_per_task=120, seed=3)
    return write_tasks_csv(d, tmp_path_factory.mktemp("jobs") / "tasks.csv"), d.task_names


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
    report = json.loads(res.stdout)
    assert index["tasks"][0] == names[0] and len(index["tasks"]) == 1 + len(report["selected"])
    # the verdict's noise counts the test rows: paired standard errors against pooling and the target alone
    noise = report["test_noise"]
    assert noise["basis"] == "seeds and test rows" and noise["rows"] > 0
    assert set(noise["metric"]) == set(noise["loss"]) == {"pooled", "stl"}
    assert all(v >= 0 for v in [*noise["metric"].values(), *noise["loss"].values()])
    assert "noise of seeds and test rows" in report["verdict"]
    state = torch.load(out / "plan_seed0.pt")
    net = MTLNet(len(index["features"]), index["hidden"], index["n_heads"], 2)
    net.load_state_dict(state)
    assert all(torch.isfinite(v).all() for v in state.values())


def test_per_row_losses_are_stored_and_read_back(tmp_path):
    """SubsetRuns(rows=True) keeps the target's per-row losses in the store (same transaction); a rerun
    reads them back without training, and runs kept without them read back as None."""
    import dataclasses

    import numpy as np

    from planner.jobs import Job, JobRunner, SubsetRuns
    from planner.store import Store

    d = synthetic_classification(k=4, p=3, n_per_task=60, seed=1)
    plain = SubsetRuns(0, TrainConfig(hidden=(4,), epochs=2, batch_size=32, device="cpu"))
    kind = dataclasses.replace(plain, rows=True)
    assert kind.settings() == plain.settings()  # the study key does not depend on it
    path = tmp_path / "s.db"
    jobs = [Job((1, 2), 0, 11), Job((), 0, 5)]
    with Store(path) as store:
        runner = JobRunner(store, batch_size=1)
        out = runner.run(d, kind, jobs, seed=0)
        other = runner.run(d, plain, [Job((3,), 0, 7)], seed=1)
    n_val, n_test = len(d.rows(0, 1)), len(d.rows(0, 2))
    for rec in out.values():
        assert len(rec.rows["val"]) == n_val and len(rec.rows["test"]) == n_test
        assert np.mean(rec.rows["val"]) == pytest.approx(rec.f, abs=1e-6)
        assert 1 - np.mean(rec.rows["test_error"]) == pytest.approx(rec.test["accuracy"], abs=1e-6)
    assert other[((3,), 0)].rows is None
    with Store(path) as store:
        runner = JobRunner(store)
        again = runner.run(d, kind, jobs, seed=0)
        assert runner.trained == 0
        assert {k: v.rows for k, v in again.items()} == {k: v.rows for k, v in out.items()}


def test_store_without_the_row_table_is_upgraded_and_bad_rows_are_named(tmp_path):
    import sqlite3

    from planner.store import SCHEMA, RunRecord, Store, StoreError

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a store written before per-row losses were kept
        conn.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS run_rows")[0])
    with Store(path) as store:
        key = store.open_study("fp", "T", 0, {"a": 1})
        store.add_batch(key, [RunRecord(("a",), 0, 1, 0.5, {"T": 0.5}, {"loss": 0.5}, 0.1, "cpu",
                                        rows={"val": [0.25, 0.75], "test": [0.5]})])
        assert store.runs(key)[0].rows == {"val": [0.25, 0.75], "test": [0.5]}
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE run_rows SET rows = '{\"val\": [\"x\"]}'")
    with Store(path) as store, pytest.raises(StoreError, match=r"run_rows row 1: rows\['val'\] is str"):
        store.runs(key)
