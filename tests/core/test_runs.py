"""Runs as data: ``planner runs list|export`` and :func:`planner.store.runs_table` over a store made by a
tiny real training run."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.store import list_studies, runs_table

TRAIN = ["--epochs", "3", "--batch-size", "32", "--hidden", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    from planner_models.data import synthetic_classification

    d = synthetic_classification(k=5, p=4, n_per_task=120, seed=3)
    folder = tmp_path_factory.mktemp("runs")
    data = folder / "tasks.csv"
    lines = ["task," + ",".join(d.feature_names) + ",y"]
    for x, t, y in zip(d.X, d.task, d.y):
        lines.append(d.task_names[t] + "," + ",".join(f"{v:.5f}" for v in x) + f",{y}")
    data.write_text("\n".join(lines) + "\n")
    store = folder / "runs.sqlite"
    res = CliRunner().invoke(main, ["estimate", "--data", str(data), "--task-column", "task", "--label-column", "y",
                                    "--target", d.task_names[0], "--subsets", "10", "--alpha", "2", "--bootstrap", "0",
                                    "--repeats", "2", "--store", str(store), "-o", str(folder / "inst.json"), *TRAIN])
    assert res.exit_code == 0, res.output
    return store, d.task_names


def test_runs_table_and_list(trained_store):
    store, names = trained_store
    studies = list_studies(store)
    assert len(studies) == 1 and studies[0]["target"] == names[0] and studies[0]["runs"] > 5
    rows = runs_table(store)
    assert len(rows) == studies[0]["runs"]
    assert {r["study"] for r in rows} == {studies[0]["key"]}
    assert any(r["subset"] == [] for r in rows)  # the target alone
    assert all(set(r) >= {"subset", "replicate", "seed", "f", "val_losses", "test", "seconds", "device"} for r in rows)
    assert runs_table(store, studies[0]["key"][:6]) == rows
    res = CliRunner().invoke(main, ["runs", "list", str(store)])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 2 and studies[0]["key"][:10] in lines[1] and names[0] in lines[1]
    assert f" {studies[0]['runs']} " in lines[1] and "hidden=8 epochs=3" in lines[1]


def test_export_round_trip_json_and_csv(trained_store, tmp_path):
    store, _ = trained_store
    rows = runs_table(store)
    out = tmp_path / "runs.json"
    res = CliRunner().invoke(main, ["runs", "export", str(store), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["runs"] == rows
    out_csv = tmp_path / "runs.csv"
    res = CliRunner().invoke(main, ["runs", "export", str(store), "--format", "csv", "-o", str(out_csv)])
    assert res.exit_code == 0, res.output
    back = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(back) == len(rows)
    for r, b in zip(rows, back):
        assert json.loads(b["subset"]) == r["subset"] and float(b["f"]) == r["f"]
        assert json.loads(b["test"]) == r["test"] and int(b["seed"]) == r["seed"]
    res = CliRunner().invoke(main, ["runs", "export", str(store), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["runs"] == rows


def test_runs_errors_are_one_line(trained_store, tmp_path):
    store, _ = trained_store
    res = CliRunner().invoke(main, ["runs", "export", str(store), "--study", "zzzz"])
    assert res.exit_code == 2 and "no study" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["runs", "list", str(tmp_path / "missing.sqlite")])
    assert res.exit_code == 2 and "no such store" in res.output
    assert not (tmp_path / "missing.sqlite").exists()
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not sqlite")
    res = CliRunner().invoke(main, ["runs", "list", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output
