"""Malformed instance files: each class of problem gives one line naming file, field and why."""
from __future__ import annotations

import json

import pytest

from planner.instance import load_instance, parse_instance
from planner.io import parse_text
from planner.status import InstanceError

from helpers import DELETE, edited

GOOD = {
    "schema": 1, "kind": "selection", "name": "g", "target": "T", "tasks": ["T", "a", "b", "c"],
    "surrogate": {"intercept": 0.5, "linear": {"a": -0.1, "b": 0.2, "c": -0.3}, "pairwise": [["a", "b", 0.1]]},
    "baseline": 0.5, "threshold": 0.0,
    "constraints": {"min_size": 0, "max_size": 2, "must_include": ["a"], "exclude": ["b"],
                    "costs": {"a": 1, "b": 2, "c": 3}, "budget": 5},
}


def broken(path, value):
    return edited(GOOD, path, value)

CASES = [
    (("schema",), 2, "schema", "unsupported schema"),
    (("schema",), DELETE, "schema", "missing"),
    (("kind",), "nope", "kind", "must be one of"),
    (("target",), DELETE, "target", "missing required key"),
    (("tasks",), ["T", "a", "a", "b", "c"], "tasks[2]", "duplicate task id"),
    (("tasks",), "T,a,b", "tasks", "must be a list"),
    (("surrogate", "linear", "zz"), 1.0, "surrogate.linear.zz", "unknown task id"),
    (("surrogate", "linear", "a"), float("nan"), "surrogate.linear.a", "finite"),
    (("surrogate", "linear", "a"), float("inf"), "surrogate.linear.a", "finite"),
    (("surrogate", "linear", "a"), "0.1", "surrogate.linear.a", "must be a number"),
    (("surrogate", "linear", "a"), True, "surrogate.linear.a", "must be a number"),
    (("surrogate", "linear", "a"), 1e300, "surrogate.linear.a", "too large"),
    (("surrogate", "intercept"), None, "surrogate.intercept", "must be a number"),
    (("surrogate", "pairwise"), [["a", "b", 0.1], ["b", "a", 0.2]], "surrogate.pairwise[1]", "given twice"),
    (("surrogate", "pairwise"), [["a", "a", 0.1]], "surrogate.pairwise[0]", "two different tasks"),
    (("surrogate", "pairwise"), [["a", "b"]], "surrogate.pairwise[0]", "must be [task_i, task_j, theta_ij]"),
    (("surrogate", "pairwise"), [["a", "q", 0.1]], "surrogate.pairwise[0][1]", "unknown task id"),
    (("surrogate", "extra"), 1, "surrogate.extra", "unknown key"),
    (("constraints", "max_size"), -1, "constraints.max_size", ">= 0"),
    (("constraints", "max_size"), 1.5, "constraints.max_size", "whole number"),
    (("constraints", "min_size"), 3, "constraints.min_size", "larger than max_size"),
    (("constraints", "costs", "a"), -1, "constraints.costs.a", ">= 0"),
    (("constraints", "budget"), -5, "constraints.budget", ">= 0"),
    (("constraints", "must_include"), ["T"], "constraints.must_include[0]", "always trained"),
    (("constraints", "must_include"), ["b"], "constraints.exclude", "both required and excluded"),
    (("constraints", "exclude"), [], None, None),  # an empty list is fine
    (("constraints", "must_include"), ["a", "a"], "constraints.must_include[1]", "duplicate"),
    (("constraints", "budget"), DELETE, "constraints.budget", "costs are given but no budget"),
    (("constraints", "bogus"), 1, "constraints.bogus", "unknown key"),
    (("baseline",), [1], "baseline", "must be a number"),
    (("unknown_top",), 1, "unknown_top", "unknown key"),
    (("name",), 5, "name", "must be a string"),
]


@pytest.mark.parametrize("path,value,field,why", CASES, ids=[".".join(c[0]) + f"={c[1]!r}"[:30] for c in CASES])
def test_each_malformed_field_is_named(path, value, field, why):
    data = broken(path, value)
    if field is None:
        parse_instance(data, "f.json")
        return
    with pytest.raises(InstanceError) as info:
        parse_instance(data, "f.json")
    message = str(info.value)
    assert message.startswith(f"f.json: {field}: "), message
    assert why in message
    assert "\n" not in message


def test_good_instance_round_trips():
    problem = parse_instance(GOOD, "g")
    again = parse_instance(problem.to_dict(), "g2")
    assert again == problem


@pytest.mark.parametrize(
    "text,why",
    [
        ("{\"schema\": 1,", "not valid JSON"),
        ("", "empty"),
        ("[1, 2]", "must be a mapping"),
        ("schema: 1\nkind: selection\nx: !!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
        ("a: &a [1, 2]\nb: *a\n" + "".join(f"c{i}: *a\n" for i in range(1100)), "aliases"),
        ("[" * 200 + "]" * 200, "nesting"),
        ("\xff\xfe", "UTF-8"),
    ],
)
def test_file_level_problems(tmp_path, text, why):
    suffix = ".yaml" if ":" in text and not text.startswith("{") else ".json"
    path = tmp_path / f"bad{suffix}"
    if text == "\xff\xfe":
        path.write_bytes(b"\xff\xfe\x00")
    else:
        path.write_text(text)
    with pytest.raises(InstanceError) as info:
        load_instance(path)
    assert str(info.value).startswith(str(path))
    assert why in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InstanceError, match="file not found"):
        load_instance(tmp_path / "nope.json")
    with pytest.raises(InstanceError, match="directory"):
        load_instance(tmp_path)


def test_yaml_and_json_give_the_same_problem(tmp_path):
    import yaml

    (tmp_path / "a.json").write_text(json.dumps(GOOD))
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(GOOD))
    a = load_instance(tmp_path / "a.json")
    b = load_instance(tmp_path / "a.yaml")
    assert a == b


def test_json_nan_literal_is_rejected_with_field():
    data = parse_text('{"schema": 1, "kind": "selection", "target": "T", "surrogate": {"linear": {"a": NaN}}}', "x.json")
    with pytest.raises(InstanceError, match="surrogate.linear.a: must be finite"):
        parse_instance(data, "x.json")
