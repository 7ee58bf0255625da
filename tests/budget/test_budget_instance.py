"""Budget instances: validation (one clear line per bad field), round trips, evaluate, the examples."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from planner.checks import Checker
from planner.instance import load_instance, parse_instance
from planner.budget.baselines import all_to_one, baselines, equal_count, equal_money, greedy
from planner.budget.curves import budget_instance_from_curves, fit_information_model
from planner.budget.problem import BudgetProblem, Geometric, Power, Table
from planner.status import InfeasibleSolution, InstanceError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "instances").glob("budget_*"))

BASE = {
    "schema": 1,
    "kind": "budget",
    "name": "t",
    "budget": 20,
    "tasks": [
        {"id": "a", "cost": 2, "initial": 1, "max": 6, "weight": 1.5, "info": {"model": "geometric", "beta": 0.8}},
        {"id": "b", "cost": 3, "initial": 4, "info": {"model": "power", "a": 2.0, "b": 0.5}},
        {"id": "c", "cost": 1.5, "info": {"model": "table", "points": [[0, 0], [2, 1.0], [5, 1.5]]}},
    ],
}


def make(**changes) -> BudgetProblem:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return parse_instance(data, source="t.json")


def bad(mutate, field: str, words: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(InstanceError) as info:
        parse_instance(data, source="t.json")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("t.json: "), msg
    assert info.value.field == field, msg
    assert words in msg, msg


def set_task(i, key, value):
    def mutate(d):
        d["tasks"][i][key] = value
    return mutate


def set_info(i, key, value):
    def mutate(d):
        d["tasks"][i]["info"][key] = value
    return mutate


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (set_task(0, "cost", 0), "tasks[0].cost", "must be > 0"),
        (set_task(1, "cost", -2), "tasks[1].cost", "must be > 0"),
        (set_info(0, "beta", 1.0), "tasks[0].info.beta", "must be < 1"),
        (set_info(0, "beta", 0), "tasks[0].info.beta", "must be > 0"),
        (set_info(0, "beta", 1.5), "tasks[0].info.beta", "must be < 1"),
        (set_info(0, "beta", float("nan")), "tasks[0].info.beta", "finite"),
        (set_task(1, "initial", 0), "tasks[1].initial", "power model needs at least 1 initial label"),
        (lambda d: d["tasks"][1].pop("initial"), "tasks[1].initial", "power model needs at least 1 initial label"),
        (set_info(1, "b", 0), "tasks[1].info.b", "must be > 0"),
        (set_info(1, "a", float("inf")), "tasks[1].info.a", "finite"),
        (set_info(2, "points", [[1, 0], [2, 1]]), "tasks[2].info.points[0]", "must start at [0, 0]"),
        (set_info(2, "points", [[0, 0.5], [2, 1]]), "tasks[2].info.points[0]", "must start at [0, 0]"),
        (set_info(2, "points", [[0, 0], [3, 1], [3, 2]]), "tasks[2].info.points[2][0]", "must increase strictly"),
        (set_info(2, "points", [[0, 0], [3, 1], [2, 2]]), "tasks[2].info.points[2][0]", "must increase strictly"),
        (set_info(2, "points", [[0, 0]]), "tasks[2].info.points", "at least 2"),
        (set_info(2, "points", [[0, 0], [1, 2, 3]]), "tasks[2].info.points[1]", "[n, I]"),
        (set_task(0, "max", -1), "tasks[0].max", "must be >= 0"),
        (set_task(0, "max", 2.5), "tasks[0].max", "whole number"),
        (set_task(0, "initial", -3), "tasks[0].initial", "must be >= 0"),
        (set_task(0, "weight", -1), "tasks[0].weight", "must be >= 0"),
        (set_task(0, "colour", "red"), "tasks[0].colour", "unknown key"),
        (set_info(0, "gamma", 2), "tasks[0].info.gamma", "unknown key"),
        (set_info(0, "model", "exponential"), "tasks[0].info.model", "must be one of geometric, power, table"),
        (lambda d: d["tasks"][0]["info"].pop("beta"), "tasks[0].info.beta", "missing required key"),
        (lambda d: d["tasks"][0].pop("cost"), "tasks[0].cost", "missing required key"),
        (set_task(2, "id", "a"), "tasks[2].id", "duplicate task id 'a'"),
        (set_task(2, "id", ""), "tasks[2].id", "must not be empty"),
        (lambda d: d.update(budget=-1), "budget", "must be >= 0"),
        (lambda d: d.update(budget="lots"), "budget", "must be a number"),
        (lambda d: d.update(budget=True), "budget", "must be a number"),
        (lambda d: d.pop("budget"), "budget", "missing required key"),
        (lambda d: d.update(tasks=[]), "tasks", "at least 1 item"),
        (lambda d: d.update(tasks=["a", "b"]), "tasks[0]", "object with id, cost and info"),
        (lambda d: d.update(deadline=3), "deadline", "unknown key"),
        (lambda d: d.update(relatedness=[[1, 0], [0, 1]]), "relatedness", "3x3 matrix"),
        (lambda d: d.update(relatedness=[[1, 0, 0], [0, 1], [0, 0, 1]]), "relatedness[1]", "must have 3 entries"),
        (lambda d: d.update(relatedness=[[1, -0.2, 0], [0, 1, 0], [0, 0, 1]]), "relatedness[0][1]", "must be >= 0"),
        (lambda d: d.update(relatedness=[[2, 0, 0], [0, 1, 0], [0, 0, 1]]), "relatedness[0][0]", "diagonal"),
        (lambda d: d.update(relatedness="strong"), "relatedness", "must be a list"),
    ],
)
def test_bad_inputs_rejected_with_one_clear_line(mutate, field, words):
    bad(mutate, field, words)


def test_round_trip_and_defaults():
    p = make(relatedness=[[1, 0.5, 0], [0, 1, 0.25], [0, 0, 1]])
    again = parse_instance(json.loads(json.dumps(p.to_dict())), source="x")
    assert again == p
    assert p.tasks[2].initial == 0 and p.tasks[2].weight == 1.0 and p.tasks[2].max is None
    assert not p.separable
    assert make().separable
    assert make(relatedness=[[1, 0, 0], [0, 0, 0], [0, 0, 1]]).separable  # zero off the diagonal


def test_closed_forms_match_the_contract():
    g = Geometric(0.8)
    # I(n) = sum_{m < n} beta^(n0 + m) at integers; the closed form for real n.
    assert math.isclose(float(g.value(3, 2)), 0.8**2 + 0.8**3 + 0.8**4)
    assert math.isclose(float(g.value(2.5, 1)), 0.8 * (1 - 0.8**2.5) / 0.2)
    p = Power(2.0, 0.5)
    assert math.isclose(float(p.value(5, 4)), 2.0 * (4**-0.5 - 9**-0.5))
    t = Table(((0.0, 0.0), (2.0, 1.0), (5.0, 1.5)))
    assert np.allclose(t.value([0, 1, 2, 3.5, 5, 100], 0), [0, 0.5, 1.0, 1.25, 1.5, 1.5])
    assert t.concave
    assert not Table(((0.0, 0.0), (1.0, 0.1), (2.0, 2.0))).concave
    assert not Table(((0.0, 0.0), (1.0, -1.0))).concave  # falls, then the flat tail rises


def test_evaluate_checks_and_recomputes():
    p = make()
    sol = {"allocation": {"a": 2, "b": 1, "c": 4}, "spent": 13.0}
    expected = 1.5 * float(Geometric(0.8).value(2, 1)) + float(Power(2, 0.5).value(1, 4)) + (1 + 0.5 * 2 / 3)
    assert math.isclose(p.evaluate(sol), expected)
    for wrong, words in [
        ({"allocation": {"a": 7, "b": 0, "c": 0}}, "above max"),
        ({"allocation": {"a": 0, "b": 7, "c": 0}}, "above the budget"),
        ({"allocation": {"a": -1, "b": 0, "c": 0}}, "negative"),
        ({"allocation": {"a": 1.5, "b": 0, "c": 0}}, "whole number"),
        ({"allocation": {"a": 1, "b": 0}}, "missing"),
        ({"allocation": {"a": 1, "b": 0, "c": 0, "z": 1}}, "unknown task"),
        ({"allocation": {"a": 1, "b": 0, "c": 0}, "spent": 99}, "spent"),
        ({"labels": {}}, "allocation"),
    ]:
        with pytest.raises(InfeasibleSolution, match=words):
            p.evaluate(wrong)


def test_coupled_objective_uses_effective_labels():
    p = make(relatedness=[[1, 0.5, 0], [0, 1, 0], [0, 0, 1]])
    n = [1, 2, 0]
    e_a = 1 + 0.5 * 2
    expected = 1.5 * float(Geometric(0.8).value(e_a, 1)) + float(Power(2, 0.5).value(2, 4))
    assert math.isclose(p.objective(n), expected)


def test_budget_exact_decimals():
    # 0.1 * 3 = 0.30000000000000004 in floats; the check uses the decimals as written.
    data = {"schema": 1, "kind": "budget", "budget": 0.3,
            "tasks": [{"id": "x", "cost": 0.1, "info": {"model": "geometric", "beta": 0.5}}]}
    p = parse_instance(data)
    assert p.caps.tolist() == [3]
    assert p.evaluate({"allocation": {"x": 3}}) > 0


def test_baselines():
    p = make()
    assert equal_count(p).tolist() == [3, 3, 3]  # 3 * (2 + 3 + 1.5) = 19.5 <= 20
    assert equal_money(p).tolist() == [3, 2, 4]  # a third of 20 each, a capped at 6 anyway
    n, task = all_to_one(p)
    assert n.sum() == n.max() and task in p.task_ids
    table = baselines(p)
    assert set(table) == {"equal_money", "equal_count", "all_to_one", "greedy"}
    for entry in table.values():
        assert math.isclose(p.evaluate(entry), entry["objective"])
    g = greedy(p)
    assert p.spent(g) <= 20


def test_greedy_coupled_is_feasible():
    p = make(relatedness=[[1, 0.5, 0.2], [0.3, 1, 0], [0, 0.4, 1]])
    g = greedy(p)
    assert p.evaluate(p.solution(g)) >= p.objective([0, 0, 0])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load(path):
    p = load_instance(path)
    assert p.kind == "budget"
    assert p.name == path.stem


def test_instance_from_curves_geometric_recovers_beta():
    true = Geometric(0.97)
    xs = np.arange(0, 200, 10)
    ys = 3.0 * true.value(xs, 5)
    info, scale = fit_information_model(xs, ys, "geometric", initial=5)
    assert abs(info["beta"] - 0.97) < 1e-3 and abs(scale - 3.0) < 1e-2
    pw = Power(1.5, 0.4)
    info, scale = fit_information_model(xs, pw.value(xs, 10), "power", initial=10)
    assert abs(info["b"] - 0.4) < 1e-2 and abs(info["a"] - 1.5) < 0.05 and scale == 1.0
    data = budget_instance_from_curves(
        "est", 100, {"u": 2, "v": 1},
        {"u": (xs, ys), "v": ([5, 10, 20], [1.0, 1.5, 1.8])},
        initial={"u": 5}, relatedness={"u": {"v": 0.3}, "v": {"u": -0.2}}, model="table",
    )
    p = parse_instance(data)
    assert p.relatedness == ((1.0, 0.3), (0.0, 1.0))  # the negative transfer clipped to 0
    assert p.tasks[1].info.points[0] == (0.0, 0.0)
    with pytest.raises(InstanceError):
        budget_instance_from_curves("e", 10, {"u": 0}, {"u": ([1], [1])}, model="table")


def test_checker_source_in_message():
    with pytest.raises(InstanceError, match=r"^my\.yaml: budget: "):
        BudgetProblem.from_dict({"budget": -5, "tasks": []}, Checker("my.yaml"))


def test_marginal_gain_matches_the_closed_form_differences():
    m = np.arange(0, 500)
    for info, n0 in ((Geometric(0.93), 7), (Power(2.5, 0.7), 3), (Table(((0.0, 0.0), (4.5, 2.0), (9.0, 2.5))), 0)):
        diff = info.value(m + 1, n0) - info.value(m, n0)
        assert np.allclose(info.increment(m, n0), diff, rtol=1e-9, atol=1e-12)
        assert np.all(info.increment(m, n0) >= 0)


def test_absurd_label_counts_rejected():
    bad(lambda d: d["tasks"][2].update(cost=1e-12), "tasks[2].cost", "limit 1e+12")
    p = make()
    assert int(p.with_budget(1e15).caps.max()) > 0  # a sweep to a huge budget: no overflow
