"""Grouping instance validation: every malformed field gives one line naming the field and why."""
from __future__ import annotations

import copy
import math

import pytest

from planner.instance import parse_instance
from planner.status import InstanceError
from helpers import DELETE
from helpers import edited as edit

CANDS = {
    "schema": 1, "kind": "grouping", "name": "g", "sense": "max", "aggregate": "sum", "mode": "cover",
    "tasks": [{"id": "a", "resources": {"mem": 1}}, "b", "c"],
    "candidates": [
        {"id": "ab", "members": ["a", "b"], "value": {"a": 1.0, "b": 2.0}, "resources": {"mem": 2}},
        {"id": "c", "members": ["c"], "value": {"c": 0.5}},
    ],
    "constraints": {"max_groups": 2, "group_size": {"min": 1, "max": 3},
                    "budgets": [{"resource": "mem", "max": 4}], "per_group_budgets": [{"resource": "mem", "max": 3}]},
}
AFF = {
    "schema": 1, "kind": "grouping", "name": "h", "sense": "max", "mode": "partition", "tasks": ["a", "b", "c"],
    "affinity": {"matrix": [[0, 1, 2], [1, 0, 3], [2, 3, 0]], "convention": "onto", "diagonal": "ignore"},
    "group_value": "pairwise_mean_by_size", "constraints": {"max_groups": 2},
}


CASES = [
    (CANDS, ("sense",), "best", "sense", "must be one of"),
    (CANDS, ("mode",), "both", "mode", "must be one of"),
    (CANDS, ("aggregate",), "median", "aggregate", "must be one of"),
    (CANDS, ("tasks",), ["a", "a"], "tasks[1]", "duplicate task id"),
    (CANDS, ("tasks",), [], "tasks", "at least 1"),
    (CANDS, ("tasks", 0, "resources", "mem"), -1, "tasks[0].resources.mem", ">= 0"),
    (CANDS, ("candidates", 0, "members"), ["a", "z"], "candidates[0].members[1]", "unknown task id"),
    (CANDS, ("candidates", 0, "members"), [], "candidates[0].members", "at least 1"),
    (CANDS, ("candidates", 0, "members"), ["a", "a"], "candidates[0].members[1]", "listed twice"),
    (CANDS, ("candidates", 1, "id"), "ab", "candidates[1].id", "used twice"),
    (CANDS, ("candidates", 0, "value", "a"), math.nan, "candidates[0].value.a", "finite"),
    (CANDS, ("candidates", 0, "value", "a"), math.inf, "candidates[0].value.a", "finite"),
    (CANDS, ("candidates", 0, "value", "a"), "high", "candidates[0].value.a", "must be a number"),
    (CANDS, ("candidates", 0, "value", "c"), 1.0, "candidates[0].value.c", "not a member"),
    (CANDS, ("candidates", 0, "value"), {"a": 1.0}, "candidates[0].value", "no value for member 'b'"),
    (CANDS, ("candidates", 0, "value"), 3.0, "candidates[0].value", "cover mode needs a value per member"),
    (CANDS, ("candidates", 0, "resources", "mem"), -2, "candidates[0].resources.mem", ">= 0"),
    (CANDS, ("candidates", 0, "colour"), "red", "candidates[0].colour", "unknown key"),
    (CANDS, ("constraints", "max_groups"), 0, "constraints.max_groups", ">= 1"),
    (CANDS, ("constraints", "max_groups"), 1.5, "constraints.max_groups", "whole number"),
    (CANDS, ("constraints", "group_size"), {"min": 3, "max": 2}, "constraints.group_size", "greater than max"),
    (CANDS, ("constraints", "group_size"), {"min": 5}, "constraints.group_size.min", "more than the 3 tasks"),
    (CANDS, ("constraints", "budgets"), [{"resource": "mem", "max": -1}], "constraints.budgets[0].max", ">= 0"),
    (CANDS, ("constraints", "budgets"), [{"resource": "disk", "max": 1}], "constraints.budgets[0].resource", "defined by no task"),
    (CANDS, ("constraints", "budgets"), [{"resource": "mem", "max": 1}, {"resource": "mem", "max": 2}],
     "constraints.budgets[1].resource", "limited twice"),
    (CANDS, ("constraints", "min_groups"), 1, "constraints.min_groups", "unknown key"),
    (CANDS, ("affinity",), AFF["affinity"], "candidates", "not both"),
    (CANDS, ("candidates",), DELETE, "candidates", "missing"),
    (AFF, ("group_value",), DELETE, "group_value", "missing required key"),
    (AFF, ("group_value",), "median", "group_value", "must be one of"),
    (AFF, ("affinity", "matrix"), [[0, 1], [1, 0]], "affinity.matrix", "has 2 rows, expected 3"),
    (AFF, ("affinity", "matrix"), [[0, 1, 2], [1, 0], [2, 3, 0]], "affinity.matrix[1]", "must be square"),
    (AFF, ("affinity", "matrix"), [[0, 1, 2], [1, 0, math.nan], [2, 3, 0]], "affinity.matrix[1][2]", "finite"),
    (AFF, ("affinity", "matrix"), {"a": {"b": 1, "c": 2}, "b": {"a": 1, "c": 3}}, "affinity.matrix", "no row for task 'c'"),
    (AFF, ("affinity", "convention"), "into", "affinity.convention", "must be one of"),
    (AFF, ("affinity", "diagonal"), "zero", "affinity.diagonal", "must be one of"),
    (AFF, ("mode",), "cover", "group_value", "use it with mode: partition"),
]


@pytest.mark.parametrize("base,path,value,field,why", CASES)
def test_bad_fields_give_one_clear_line(base, path, value, field, why):
    with pytest.raises(InstanceError) as info:
        parse_instance(edit(base, path, value), source="x.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("x.yaml: ")
    assert info.value.field == field, msg
    assert why in msg, msg


def test_good_instances_round_trip():
    for base in (CANDS, AFF):
        p = parse_instance(copy.deepcopy(base))
        again = parse_instance(p.to_dict())
        assert again == p


def test_matrix_given_as_mapping_and_resources_derived():
    data = edit(AFF, ("affinity", "matrix"), {"a": {"b": 1, "c": 2}, "b": {"a": 1, "c": 3}, "c": {"a": 2, "b": 3}})
    p = parse_instance(data)
    assert p.onto[1][2] == 3 and p.onto[0][0] == 0
    q = parse_instance(copy.deepcopy(CANDS))
    assert q.candidates[1].resources == ()  # no per-task resources for c
    assert dict(q.candidates[0].resources) == {"mem": 2.0}  # given per candidate
