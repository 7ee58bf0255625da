"""Fuzzing the CLI with broken instances of every kind (hypothesis).

Each example starts from a valid shipped instance, breaks it in one or more ways (wrong types,
missing keys, NaN and infinity, huge and tiny numbers, unknown and duplicate ids, empty lists, deep
nesting, YAML anchors and tags) and drives ``planner solve -o OUT`` and ``planner validate``.

The property: never a traceback and never exit 1 (an internal error); exit 2 comes with one short
line on stderr and no output file (nor a temporary one); a mutant that is still a valid instance
may be solved (exit 0, 3 or 4), and then ``-o`` holds a complete result. Mutations that can only
break the file (a NaN, a wrong type in a required number, a missing required key, ...) must exit 2.
"""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main

INSTANCES = Path(__file__).resolve().parents[2] / "instances"
SEEDS = {
    "selection": ["selection_small.json", "selection_costs.yaml"],
    "grouping": ["grouping_cover_example.json", "grouping_partition_example.yaml", "grouping_tag_taskonomy_k3.json"],
    "budget": ["budget_coupled.json", "budget_power.yaml", "budget_table.json"],
}
EXAMPLES = int(os.environ.get("PLANNER_FUZZ_EXAMPLES", "150"))  # per kind (docs/reliability.md quotes the totals)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("PLANNER_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
STATS: dict[str, dict[int, int]] = {}


def _seed(name: str) -> dict:
    return yaml.safe_load((INSTANCES / name).read_text())


BASES = {kind: [_seed(n) for n in names] for kind, names in SEEDS.items()}

# Values that are wrong almost anywhere in an instance.
BAD_SCALARS = [None, True, False, "", "x", "1e3", float("nan"), float("inf"), float("-inf"), 10 ** 400, -10 ** 400,
               1e308, -1e308, 5e-324, 1e-300, 1e16, -1, 0, -0.0, 2 ** 63, [], {}, [[]], {"": None}]
# Values that must be rejected wherever a number or a task id is expected.
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


_GONE = object()


def _paths(obj, prefix=()):
    """Every path into the nested structure (dict keys and list indices)."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, prefix + (i,)))
    return out


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _deep(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def mutants(draw, kind: str):
    """A valid instance of ``kind`` broken in 1-3 ways; returns (data, must_fail, how)."""
    data = copy.deepcopy(draw(st.sampled_from(BASES[kind])))
    breaks = []  # (path, value placed there, or _GONE): each one alone makes the file invalid
    hows = []
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths or not isinstance(data, dict):
            break
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        key = path[-1]
        old = parent[key]
        op = draw(st.sampled_from(["bad", "nonfinite", "delete", "unknown_key", "dup", "empty", "deep", "retype",
                                   "huge", "tiny", "unknown_id", "negate"]))
        hows.append(f"{op}@{'.'.join(map(str, path))}")
        if op == "bad":
            parent[key] = copy.deepcopy(draw(st.sampled_from(BAD_SCALARS)))  # later ops may mutate it
        elif op == "nonfinite":
            parent[key] = draw(st.sampled_from(NON_FINITE))
            if isinstance(old, (int, float)) and not isinstance(old, bool):
                breaks.append((path, parent[key]))
        elif op == "delete":
            if isinstance(parent, dict):
                del parent[key]
                if path in (("kind",), ("schema",)):
                    breaks.append((path, _GONE))
            else:
                parent.pop(key)
        elif op == "unknown_key":
            target = old if isinstance(old, dict) else parent if isinstance(parent, dict) else None
            if target is not None:
                target[draw(st.sampled_from(["zzz_unknown", "__proto__", "constructor", "Kind", " kind"]))] = 1
        elif op == "dup":
            if isinstance(parent, list):
                parent.append(copy.deepcopy(old))
            elif isinstance(old, list) and old:
                old.append(copy.deepcopy(old[0]))
        elif op == "empty":
            parent[key] = draw(st.sampled_from([[], {}, ""]))
        elif op == "deep":
            parent[key] = _deep(draw(st.integers(10, 200)))
        elif op == "retype":
            if isinstance(old, (int, float)) and not isinstance(old, bool):
                parent[key] = draw(st.sampled_from([str(old), [old], {"v": old}, None]))
                if path == ("schema",):
                    breaks.append((path, parent[key]))
            elif isinstance(old, str):
                parent[key] = draw(st.sampled_from([1, 2.5, [old], {"id": old}, True]))
            elif isinstance(old, list):
                parent[key] = {str(i): v for i, v in enumerate(old)}
            elif isinstance(old, dict):
                parent[key] = list(old.items()) if draw(st.booleans()) else list(old)
        elif op == "huge":
            parent[key] = draw(st.sampled_from([1e15, 1e300, 10 ** 18, 2 ** 64, 1e12 + 0.5, 10 ** 30]))
        elif op == "tiny":
            parent[key] = draw(st.sampled_from([1e-300, 5e-324, 1e-12, -1e-300, 1e-9]))
        elif op == "unknown_id":
            if isinstance(old, str):
                parent[key] = draw(st.sampled_from(["no_such_task", "", " ", "x" * 300, "CA\x00", "é"]))
        elif op == "negate":
            if isinstance(old, (int, float)) and not isinstance(old, bool):
                parent[key] = -old if old else -1
    free_form = ("meta", "description")  # not validated: anything goes there
    breaks = [(p, v) for p, v in breaks if p[0] not in free_form]
    return data, any(_still(data, path, value) for path, value in breaks), hows


def _still(data, path, value) -> bool:
    """Whether a breaking change survived the later mutations."""
    try:
        parent = _get(data, path[:-1])
        if value is _GONE:
            return isinstance(parent, dict) and path[-1] not in parent
        return parent[path[-1]] is value
    except (KeyError, IndexError, TypeError):
        return False


def _render(data, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data)  # NaN / Infinity literals included: json.loads accepts them
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _check(tmp_path: Path, text: str, suffix: str, must_fail: bool, how, kind: str) -> None:
    inst = tmp_path / f"fuzz{suffix}"
    inst.write_text(text, encoding="utf-8")
    out = tmp_path / "out.json"
    if out.exists():
        out.unlink()
    res = _invoke(["solve", inst, "--json", "-o", out, "--time-limit", "5"])
    STATS.setdefault(kind, {}).setdefault(res.exit_code, 0)
    STATS[kind][res.exit_code] += 1
    context = f"{how}: exit {res.exit_code}\nstdout: {res.stdout[:500]}\nstderr: {res.stderr[:800]}"
    assert res.exception is None or isinstance(res.exception, SystemExit), context + f"\n{res.exception!r}"
    assert "Traceback" not in res.output, context
    assert "internal error" not in res.stderr, context
    assert res.exit_code in (0, 2, 3, 4), context
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [], context
    if res.exit_code == 2:
        msg = res.stderr.strip()
        assert msg.startswith("error: ") and "\n" not in msg and len(msg) < 400, context
        assert not out.exists(), context
        assert res.stdout == "", context
    else:
        assert not must_fail, context
        obj = json.loads(res.stdout)
        assert obj["status"] in ("optimal", "feasible", "infeasible", "unbounded", "no_solution")
        if obj["status"] in ("optimal", "feasible"):
            assert json.loads(out.read_text()) == obj
            assert obj["objective"] is not None and math.isfinite(obj["objective"])
        else:
            assert not out.exists()
    val = _invoke(["validate", inst])
    assert val.exit_code in (0, 2) and "Traceback" not in val.output, f"validate: {val.output}"
    assert (val.exit_code == 2) == (res.exit_code == 2), f"validate and solve disagree: {how}: {val.output}"


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_fuzz_broken_instances(kind, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"fuzz_{kind}")

    @FUZZ
    @given(mutants(kind), st.sampled_from(["json", "yaml"]))
    def run(mutant, fmt):
        data, must_fail, how = mutant
        try:
            text = _render(data, fmt)
        except (ValueError, yaml.YAMLError, RecursionError):
            return  # not representable in this format
        _check(tmp, text, ".json" if fmt == "json" else ".yaml", must_fail, how, kind)

    run()


# -- raw text: YAML features, syntax damage, resource bombs ----------------------------------

YAML_CASES = {
    "python_object_tag": "!!python/object/apply:os.system ['echo pwned']\n",
    "python_name_tag": "schema: 1\nkind: !!python/name:os.system\n",
    "binary_tag": "schema: 1\nkind: selection\nname: !!binary aGVsbG8=\n",
    "timestamp": "schema: 1\nkind: budget\nbudget: 2001-12-14\ntasks: []\n",
    "set_tag": "schema: 1\nkind: grouping\ntasks: !!set {a, b}\n",
    "custom_tag": "schema: 1\nkind: !custom selection\n",
    "billion_laughs": "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)),
    "anchor_reuse_ids": "schema: 1\nkind: selection\ntarget: &t CA\ntasks: [*t, *t, OR]\n"
                        "surrogate: {intercept: 0, linear: {OR: 1}}\n",
    "merge_key": "base: &b {schema: 1, kind: budget}\n<<: *b\nbudget: 10\ntasks: []\n",
    "recursive_alias": "a: &a [*a]\n",
    "deep_flow": "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep_block": "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    "duplicate_keys": "schema: 1\nkind: selection\nkind: budget\nbudget: 1\ntasks: []\n",
    "yaml_nan": "schema: 1\nkind: budget\nbudget: .nan\ntasks: [{id: a, cost: 1, info: {model: geometric, beta: 0.5}}]\n",
    "yaml_inf": "schema: 1\nkind: budget\nbudget: .inf\ntasks: [{id: a, cost: 1, info: {model: geometric, beta: 0.5}}]\n",
    "huge_int": "schema: 1\nkind: budget\nbudget: " + "9" * 5000 + "\ntasks: [{id: a, cost: 1, info: {model: geometric, beta: 0.5}}]\n",
    "list_top": "- 1\n- 2\n",
    "scalar_top": "42\n",
    "null_doc": "~\n",
    "two_docs": "schema: 1\n---\nschema: 1\n",
    "tab_indent": "schema: 1\n\tkind: selection\n",
    "bad_utf8": None,
    "bom": "\ufeffschema: 1\nkind: selection\n",
    "null_bytes": "schema: 1\x00\nkind: selection\n",
    "int_keys": "schema: 1\nkind: budget\n1: 2\n",
    "empty": "",
    "whitespace": "   \n\n",
}
JSON_CASES = {
    "truncated": '{"schema": 1, "kind": "selection", "tasks": ["a", ',
    "trailing_comma": '{"schema": 1, "kind": "budget",}',
    "nan_literal": '{"schema": 1, "kind": "budget", "budget": NaN, "tasks": []}',
    "deep_array": "[" * 100000 + "]" * 100000,
    "deep_object": '{"a":' * 3000 + "1" + "}" * 3000,
    "dup_keys": '{"schema": 1, "kind": "selection", "kind": "grouping"}',
    "huge_exponent": '{"schema": 1, "kind": "budget", "budget": 1e999999, "tasks": []}',
    "big_int_digits": '{"schema": 1, "kind": "budget", "budget": ' + "1" * 5000 + ', "tasks": []}',
    "lone_surrogate": '{"schema": 1, "kind": "selection", "name": "\\ud800"}',
}


@pytest.mark.parametrize("case", sorted(YAML_CASES) + [f"json:{c}" for c in sorted(JSON_CASES)])
def test_raw_text_cases(case, tmp_path):
    if case.startswith("json:"):
        text, suffix = JSON_CASES[case[5:]], ".json"
    else:
        text, suffix = YAML_CASES[case], ".yaml"
    inst = tmp_path / f"raw{suffix}"
    if text is None:
        inst.write_bytes(b"schema: 1\nkind: \xff\xfe\n")
    else:
        inst.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = tmp_path / "out.json"
    res = _invoke(["solve", inst, "-o", out])
    assert res.exit_code == 2, f"{case}: {res.exit_code} {res.output[:500]}"
    msg = res.stderr.strip()
    assert msg.startswith("error: ") and "\n" not in msg and len(msg) < 400, f"{case}: {msg[:500]}"
    assert "Traceback" not in res.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _with(name: str, path: tuple, value):
    data = copy.deepcopy(_seed(name))
    _get(data, path[:-1])[path[-1]] = value
    return data


# Inputs that once gave exit 1 (an internal error) instead of exit 2; kept as regressions.
REGRESSIONS = {
    "budget_subnormal_cost": _with("budget_coupled.json", ("tasks", 2, "cost"), 5e-324),
    "schema_huge_int": _with("selection_small.json", ("schema",), 10 ** 400),
    "long_task_id": _with("selection_small.json", ("target",), "t" * 199 + "\n"),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_regressions(case, tmp_path):
    inst = tmp_path / "r.json"
    inst.write_text(json.dumps(REGRESSIONS[case]))
    res = _invoke(["solve", inst, "-o", tmp_path / "out.json"])
    msg = res.stderr.strip()
    assert res.exit_code == 2 and msg.startswith("error: ") and "\n" not in msg and len(msg) < 400, res.output
    assert not (tmp_path / "out.json").exists()


def test_fuzzed_folder_through_batch(tmp_path):
    """A folder of broken files through ``planner batch``: one error result each, exit 1, no crash."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (name, text) in enumerate(sorted(YAML_CASES.items())):
        if text is not None:
            (folder / f"{i:02d}_{name}.yaml").write_text(text, encoding="utf-8")
    (folder / "good.json").write_text((INSTANCES / "selection_small.json").read_text())
    res = _invoke(["batch", folder, "-o", tmp_path / "out", "--json"])
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    by = {r["instance"]: r for r in report["results"]}
    assert by["good.json"]["status"] == "optimal"
    for name, row in by.items():
        if name != "good.json":
            assert row["status"] == "error" and "internal error" not in row["error"], row
            stored = json.loads((tmp_path / "out" / name.replace(".yaml", ".result.json")).read_text())
            assert stored["exit_code"] == 2, stored


def test_report_fuzz_counts():
    """Not a check: prints the exit-code tally of the fuzz runs above (quoted in docs/reliability.md)."""
    print("fuzz exit codes by kind:", json.dumps(STATS, sort_keys=True))
