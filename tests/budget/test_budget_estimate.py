"""Estimating a budget instance from data (TABA's step 1): pools, curve fits, probes, the budget command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from planner_models.data import TEST, TRAIN, VAL, synthetic_classification, synthetic_linear
from planner_models.train import TrainConfig
from planner.budget.estimate import (
    BudgetEstimateSettings,
    CurveFit,
    curve_counts,
    effective_labels,
    estimate_budget,
    fit_curve,
    label_pools,
    parse_costs,
    with_training_rows,
)
from planner.cli import main
from planner.instance import load_instance, parse_instance
from planner.budget.problem import Geometric, Power
from helpers import write_tasks_csv

FAST = TrainConfig(hidden=(8,), epochs=15, batch_size=16, patience=4, device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread avoids thread contention on shared CPUs (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------- fits
def test_fit_recovers_exact_geometric_curve():
    labels = [10, 14, 20, 28, 40]
    beta, amp = 0.93, 0.4
    truth = Geometric(beta)
    loss = [1.0 - amp * float(truth.value(m - 10, 10)) for m in labels]
    fits, chosen = fit_curve(labels, loss)
    assert chosen == "geometric"
    g = fits["geometric"]
    assert g["info"]["beta"] == pytest.approx(beta, rel=1e-4)
    assert g["scale"] == pytest.approx(amp, rel=1e-3)
    assert g["rmse"] < 1e-4  # the bounded search on beta stops at a tolerance
    assert fits["power"]["rmse"] > g["rmse"]
    # the parameters are absolute: continued past the pool, the curve is the true one
    curve = CurveFit("t", pool=40, held=100, labels=labels, loss=loss, spread=[0] * 5, fits=fits, chosen=chosen)
    assert curve.value(60) == pytest.approx(amp * float(truth.value(60, 40)), rel=1e-3)


def test_fit_recovers_exact_power_curve():
    labels = [8, 12, 20, 30, 50]
    loss = [2.0 * m ** -0.7 for m in labels]
    fits, chosen = fit_curve(labels, loss)
    assert chosen == "power"
    p = fits["power"]["info"]
    assert p["b"] == pytest.approx(0.7, rel=1e-3) and p["a"] == pytest.approx(2.0, rel=1e-3)
    assert fits["power"]["rmse"] < 1e-4
    fits, chosen = fit_curve(labels, loss, model="geometric")  # asked for: kept even if worse
    assert chosen == "geometric"


def test_flat_curve_gets_no_value():
    fits, chosen = fit_curve([5, 10, 20], [0.5, 0.52, 0.55])  # the loss rises: nothing to gain
    assert chosen == "geometric" and fits["geometric"]["scale"] == 0
    assert "error" in fits["power"]


def test_effective_labels_inverts_the_curve():
    info = {"model": "power", "a": 2.0, "b": 0.5}
    c = CurveFit("t", pool=25, held=100, labels=[5, 25], loss=[0, 0], spread=[0, 0],
                 fits={"power": {"info": info, "scale": 1.0, "rmse": 0.0}}, chosen="power")
    gain = float(Power(2.0, 0.5).value(30, 25))
    assert effective_labels(c, gain, 100) == pytest.approx(30, rel=1e-6)
    assert effective_labels(c, -1.0, 100) == 0
    assert effective_labels(c, 10.0, 100) == 100  # never reached: capped


def test_curve_counts():
    assert curve_counts(40, 5, 0.25) == [10, 14, 20, 28, 40]
    assert curve_counts(4, 5, 0.25) == [4]
    assert curve_counts(6, 5, 0.25)[0] == 4 and curve_counts(6, 5, 0.25)[-1] == 6


# ---------------------------------------------------------------------------- pools
def test_pools_and_revealed_rows():
    d = synthetic_linear(k=2, p=4, n_per_task=[100, 60, 40], seed=1)
    pools = label_pools(d, [0, 1, 2], 20, seed=3)
    for t in range(3):
        train = set(d.rows(t, TRAIN))
        lab, held = set(pools.labelled[t]), set(pools.held[t])
        assert len(lab) == 20 and not lab & held and lab | held == train
    assert pools.labelled[0].tolist() == label_pools(d, [0], 20, seed=3).labelled[0].tolist()  # seeded per task
    rows = pools.revealed({0: 5, 2: 10**6})
    assert len(rows[0]) == 25 and len(rows[1]) == 20 and len(rows[2]) == len(d.rows(2, TRAIN))
    sub = with_training_rows(d, {2: rows[2][:7], 0: rows[0]})
    assert sub.task_names == ["s02", "target"]
    counts = sub.counts()
    assert counts[0, TRAIN] == 7 and counts[1, TRAIN] == 25
    assert counts[0, VAL] == d.counts()[2, VAL] and counts[1, TEST] == d.counts()[0, TEST]


def test_parse_costs():
    names = ["a", "b", "c"]
    assert parse_costs("a=1, c=2.5", names) == {"a": 1.0, "c": 2.5}
    assert parse_costs("*=2,b=1", names) == {"a": 2.0, "b": 1.0, "c": 2.0}
    for text, words in [("", "nothing"), ("a", "not task=cost"), ("a=x", "not a number"), ("a=0", "positive"),
                        ("a=-1", "positive"), ("a=inf", "positive"), ("zz=1", "unknown task 'zz'"),
                        ("a=1,a=2", "twice"), ("=3", "names no task")]:
        with pytest.raises(ValueError, match=words):
            parse_costs(text, names)


# ---------------------------------------------------------------------------- estimates
def _noisy_pair(seed=0):
    """Two tasks with the same rule; task 1's labels are flipped at random 45% of the time."""
    d = synthetic_classification(k=1, p=6, n_per_task=500, a=0.0, b=1.0, n_good=1, sigma=0.1, seed=seed)
    rng = np.random.default_rng(seed)
    flip = (d.task == 1) & (rng.random(len(d.y)) < 0.45)
    d.y[flip] = 1 - d.y[flip]
    return d


def test_more_informative_labels_get_a_higher_value():
    d = _noisy_pair()
    settings = BudgetEstimateSettings(initial=60, points=4, repeats=2, relatedness=False, seed=0)
    est = estimate_budget(d, ["target", "s01"], settings, FAST)
    clean, noisy = est.curves["target"], est.curves["s01"]
    assert clean.labels == noisy.labels and clean.labels[-1] == 60
    assert clean.loss[-1] < clean.loss[0]  # the clean task learns within its pool
    assert clean.value(200) > noisy.value(200)
    inst = est.instance_dict("pair", 100, {"target": 1, "s01": 1})
    problem = parse_instance(inst, "test")
    assert problem.separable and [t.max for t in problem.tasks] == [240, 240]
    assert [t.initial for t in problem.tasks] == [60, 60]
    assert inst["meta"]["estimate"]["curves"]["target"]["chosen"] in ("geometric", "power")


def test_probes_give_a_valid_coupled_instance():
    d = synthetic_classification(k=2, p=6, n_per_task=300, n_good=1, seed=2)
    settings = BudgetEstimateSettings(initial=30, points=3, repeats=2, max_relatedness=0.5, seed=1)
    est = estimate_budget(d, ["target", "s01", "s02"], settings, FAST)
    r = np.asarray(est.relatedness)
    assert r.shape == (3, 3) and np.all(r >= 0) and np.all(r <= 0.5) and np.all(np.diag(r) == 0)
    assert est.trained == 3 * 3 * 2 + 3 * 3 * 2
    inst = est.instance_dict("three", 50, {"target": 1, "s01": 2, "s02": 3})
    parse_instance(inst, "test")


def test_estimate_rejects_tiny_pools():
    from planner_models.data import DataError

    d = synthetic_linear(k=1, p=3, n_per_task=[60, 8], seed=0)  # s01: 8 rows, about 4 for training
    settings = BudgetEstimateSettings(initial=20, points=3, repeats=1, relatedness=False)
    with pytest.raises(DataError, match="s01"):
        estimate_budget(d, ["target", "s01"], settings, FAST)


# ---------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    d = synthetic_classification(k=2, p=5, n_per_task=200, seed=4)
    return write_tasks_csv(d, tmp_path_factory.mktemp("data") / "tasks.csv")


ARGS = ["--task-column", "task", "--label-column", "y", "--initial", "20", "--points", "3", "--repeats", "1",
        "--epochs", "8", "--batch-size", "16", "--hidden", "8", "--device", "cpu"]


def test_budget_command_writes_and_solves(csv_path, tmp_path):
    out = tmp_path / "est.json"
    res = CliRunner().invoke(main, ["budget", "--data", str(csv_path), *ARGS, "--costs", "target=2,*=1",
                                    "--budget", "40", "--instance-out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["kind"] == "budget" and payload["status"] == "optimal"
    assert set(payload["solution"]["allocation"]) == {"target", "s01", "s02"}
    assert payload["solution"]["spent"] <= 40
    assert {"equal_money", "equal_count"} <= set(payload["baselines"])
    assert "curves" in payload["estimate"]
    problem = load_instance(out)
    assert [t.cost for t in problem.tasks] == [1.0, 1.0, 2.0] and problem.budget == 40
    assert problem.objective(list(payload["solution"]["allocation"].values())) == pytest.approx(payload["objective"])
    # the human summary: fits, plan and baselines
    res = CliRunner().invoke(main, ["budget", "--data", str(csv_path), *ARGS, "--costs", "s01=1,s02=3",
                                    "--budget", "30", "--no-relatedness"])
    assert res.exit_code == 0, res.output
    assert "rmse geo" in res.stdout and "equal_money" in res.stdout and "target" not in res.stdout


@pytest.mark.parametrize("costs, words", [("target", "not task=cost"), ("target=abc", "not a number"),
                                           ("target=-2", "positive"), ("nosuch=1", "unknown task 'nosuch'")])
def test_budget_command_bad_costs(csv_path, costs, words):
    res = CliRunner().invoke(main, ["budget", "--data", str(csv_path), *ARGS, "--costs", costs, "--budget", "10"])
    assert res.exit_code == 2
    assert words in res.stderr and "Traceback" not in res.output


def test_budget_command_bad_inputs(csv_path, tmp_path):
    res = CliRunner().invoke(main, ["budget", "--data", str(tmp_path / "missing.csv"), *ARGS, "--costs", "*=1",
                                    "--budget", "10"])
    assert res.exit_code == 2 and "no such file" in res.stderr
    res = CliRunner().invoke(main, ["budget", "--data", str(csv_path), *ARGS, "--costs", "*=1", "--budget", "-1"])
    assert res.exit_code == 2
    res = CliRunner().invoke(main, ["budget", "--help"])
    assert res.exit_code == 0 and "--costs" in res.output


def test_fit_is_capped_at_the_loss_floor():
    labels = [10, 20, 30, 40]
    loss = [0.5, 0.45, 0.40, 0.35]  # still falling straight: unbounded gains without a floor
    free, _ = fit_curve(labels, loss)
    assert free["geometric"]["info"]["beta"] > 0.999
    fits, chosen = fit_curve(labels, loss, floor=0.0)
    for name in ("geometric", "power"):
        f = fits[name]
        total = f["scale"] * float((Geometric(f["info"]["beta"]) if name == "geometric"
                                    else Power(f["info"]["a"], f["info"]["b"])).value(float("inf"), 10))
        assert f.get("capped") and total <= 0.5 + 1e-9
