"""What-if sweeps: the budgets range, one DP pass against separate solves, CSV, plot, the CLI."""
from __future__ import annotations

import csv
import heapq
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.instance import load_instance, parse_instance
from planner.budget.problem import exact
from planner.budget.baselines import greedy
from planner.solve import solve
from planner.budget.whatif import BudgetRangeError, parse_budgets, whatif

ROOT = Path(__file__).resolve().parents[2]
INST = ROOT / "instances"


def test_parse_budgets():
    assert parse_budgets("0:10:5") == [0, 5, 10]
    assert parse_budgets("0:1:0.1")[-1] == 1.0  # exact decimals: STOP is hit
    assert len(parse_budgets("0:1:0.1")) == 11
    assert parse_budgets("3:4:5") == [3]
    assert parse_budgets(" 2 : 2 : 1 ") == [2]
    for text, words in [
        ("10", "START:STOP:STEP"),
        ("0:10", "START:STOP:STEP"),
        ("a:b:c", "three numbers"),
        ("0:10:0", "STEP must be > 0"),
        ("0:10:-1", "STEP must be > 0"),
        ("-5:10:1", "START must be >= 0"),
        ("10:5:1", "below START"),
        ("0:inf:1", "finite"),
        ("0:nan:1", "finite"),
        ("0:1e9:1", "more than the limit"),
        ("0:1e20:1e19", "1e15"),
    ]:
        with pytest.raises(BudgetRangeError, match=words):
            parse_budgets(text)


def test_one_pass_equals_separate_solves():
    p = load_instance(INST / "budget_geometric.json")
    budgets = parse_budgets("0:6300:450")
    one = whatif(p, budgets)
    assert one.one_pass and one.solver == "dp" and one.unit == 1.5
    many = whatif(p, budgets, solver="highs")
    assert not many.one_pass
    for a, b in zip(one.objectives, many.objectives):
        assert math.isclose(a, b, rel_tol=1e-7)
    assert all(b >= a - 1e-12 for a, b in zip(one.objectives, one.objectives[1:]))  # never falls
    for b, alloc, obj in zip(budgets, one.allocations, one.objectives):
        sol = {"allocation": alloc}
        assert math.isclose(p.with_budget(b).evaluate(sol), obj)


def test_coupled_sweep_solves_each_budget():
    p = load_instance(INST / "budget_coupled.json")
    res = whatif(p, [0, 100, 300])
    assert not res.one_pass and res.solver == "highs"
    for b, obj in zip(res.budgets, res.objectives):
        assert math.isclose(obj, solve(p.with_budget(b), "highs").objective, rel_tol=1e-9)


def test_csv_columns():
    p = load_instance(INST / "budget_table.json")
    res = whatif(p, parse_budgets("0:120:40"))
    rows = list(csv.reader(io.StringIO(res.csv_text())))
    assert rows[0] == ["budget", "objective", "layout", "ocr", "tables"]
    assert [r[0] for r in rows[1:]] == ["0", "40", "80", "120"]
    assert float(rows[-1][1]) == pytest.approx(13.0)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_whatif_writes_csv_and_plot(tmp_path):
    out_csv, out_png = tmp_path / "sweep.csv", tmp_path / "sweep.png"
    r = run("whatif", str(INST / "budget_power.yaml"), "--budgets", "0:2000:250",
            "--csv", str(out_csv), "--plot", str(out_png), "--json")
    assert r.exit_code == 0, r.output
    payload = json.loads(r.stdout)
    assert payload["kind"] == "budget" and payload["one_pass"] is True
    assert [row["budget"] for row in payload["rows"]] == [250.0 * k for k in range(9)]
    assert out_csv.read_text().startswith("budget,objective,sentiment,topic,toxicity\n")
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("whatif", "--help").exit_code == 0


def test_cli_whatif_table_output():
    r = run("whatif", str(INST / "budget_greedy_counterexample.json"), "--budgets", "40:45:5")
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].split() == ["budget", "objective", "a", "b", "c"]
    assert lines[-1].split()[0] == "45" and lines[-1].split()[2:] == ["2", "4", "1"]


@pytest.mark.parametrize("budgets", ["0:10", "5:1:1", "0:10:0", "x:y:z"])
def test_cli_bad_budgets_is_a_usage_error(budgets, tmp_path):
    out = tmp_path / "o.csv"
    r = run("whatif", str(INST / "budget_table.json"), "--budgets", budgets, "--csv", str(out))
    assert r.exit_code == 2
    assert "--budgets" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_cli_bad_instance_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": 1, "kind": "budget", "budget": 10, "tasks": [
        {"id": "a", "cost": 0, "info": {"model": "geometric", "beta": 0.5}}]}))
    out = tmp_path / "o.csv"
    r = run("whatif", str(bad), "--budgets", "0:10:5", "--csv", str(out))
    assert r.exit_code == 2
    assert r.stderr.strip().count("\n") == 0 and "tasks[0].cost" in r.stderr
    assert not out.exists()
    r = run("whatif", str(tmp_path / "missing.json"), "--budgets", "0:10:5")
    assert r.exit_code == 2 and "file not found" in r.stderr


def test_cli_whatif_rejects_other_kinds(tmp_path):
    other = tmp_path / "sel.json"
    other.write_text(json.dumps({"schema": 1, "kind": "selection", "target": "t", "tasks": ["t", "a"],
                                 "surrogate": {"intercept": 1.0, "linear": {"a": -0.1}}}))
    r = run("whatif", str(other), "--budgets", "0:10:5")
    assert r.exit_code == 2 and "budget instances" in r.stderr


def test_cli_dp_on_coupled_is_an_error():
    r = run("whatif", str(INST / "budget_coupled.json"), "--budgets", "0:10:5", "--solver", "dp")
    assert r.exit_code == 1 and "separable" in r.stderr


def test_cli_solve_budget_json():
    r = run("solve", str(INST / "budget_greedy_counterexample.json"), "--json")
    assert r.exit_code == 0, r.output
    payload = json.loads(r.stdout)
    assert payload["solution"]["allocation"] == {"a": 2, "b": 4, "c": 1}
    assert payload["solution"]["unit"] == 1 and payload["solution"]["unspent"] == 0
    assert payload["baselines"]["greedy"]["allocation"] == {"a": 4, "b": 2, "c": 2}


def _greedy_reference(problem):
    """The greedy rule spelled out: one label at a time, best gain per cost among those that fit."""
    n = np.zeros(len(problem.tasks), dtype=np.int64)
    left, costs, caps = exact(problem.budget), [exact(t.cost) for t in problem.tasks], problem.caps
    heap = [(-float(t.gain(0)) / t.cost, i) for i, t in enumerate(problem.tasks) if caps[i] > 0]
    heapq.heapify(heap)
    while heap:
        neg, i = heapq.heappop(heap)
        if neg >= 0 or costs[i] > left:
            continue
        n[i] += 1
        left -= costs[i]
        if n[i] < caps[i]:
            heapq.heappush(heap, (-float(problem.tasks[i].gain(n[i])) / problem.tasks[i].cost, i))
    return n


def test_fast_greedy_is_the_one_label_at_a_time_rule():
    from test_budget_solvers import random_instance

    rng = np.random.default_rng(9)
    for _ in range(80):
        p = random_instance(rng, int(rng.integers(1, 6)), budget=float(rng.integers(0, 300)))
        assert greedy(p).tolist() == _greedy_reference(p).tolist()
    huge = parse_instance({"schema": 1, "kind": "budget", "budget": 1e9, "tasks": [
        {"id": "x", "cost": 1, "initial": 1, "info": {"model": "power", "a": 1, "b": 0.5}},
        {"id": "y", "cost": 3, "initial": 1, "info": {"model": "power", "a": 2, "b": 0.3}}]})
    n = greedy(huge)  # fast: runs of labels are skipped by a threshold, not bought one by one
    assert huge.spent(n) <= 1e9 and huge.spent(n) > 1e9 - 3
