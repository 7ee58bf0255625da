"""Verdicts in every summary: the gap in percent, whether a grouping beats its baselines, warnings on
absurd fitted curves, tables without runs of all-zero rows, and wall time that is the command's."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.grouping.estimate import report_table, verdict, verdict_line
from planner.instance import parse_instance
from planner.report import collapse_zero_rows, gap_text, result_summary, weight_warnings
from planner.status import SolveResult, SolveStatus

INSTANCES = Path(__file__).resolve().parents[2] / "instances"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_gap_in_percent_in_json_and_text():
    res = SolveResult(SolveStatus.FEASIBLE, objective=10.0, bound=12.5, solution={}, solver="x")
    d = res.to_dict("i", "grouping")
    assert d["gap"] == pytest.approx(0.25) and d["gap_percent"] == pytest.approx(25.0)
    assert gap_text(d) == "25%"
    none = SolveResult(SolveStatus.FEASIBLE, objective=10.0, solution={}).to_dict("i", "grouping")
    assert "gap_percent" not in none and gap_text(none) == "- (no bound)"
    out = _run("solve", INSTANCES / "selection_small.json")
    assert out.exit_code == 0 and "gap: 0%" in out.output
    payload = json.loads(_run("solve", INSTANCES / "selection_small.json", "--json").output)
    assert payload["gap_percent"] == 0


def _group_report(plan, stl, aio, higher=True):
    return {"tasks": ["a", "b"], "metric": "accuracy" if higher else "rmse", "served_by": {"a": 0, "b": 0},
            "test": {"plan": {"a": plan, "b": plan}, "stl": {"a": stl, "b": stl}, "all_in_one": {"a": aio, "b": aio}},
            "aggregate": {"plan": plan, "stl": stl, "all_in_one": aio}, "groups": [["a", "b"]],
            "cost": {"rows": 10, "single_task_rows": 10}, "method": "hoa", "mode": "cover", "max_groups": 1,
            "status": "feasible", "solver": "highs", "gap": 0.125, "models_trained": 3, "seconds": 1.0,
            "verdict": verdict({"plan": plan, "stl": stl, "all_in_one": aio}, higher)}


def test_group_verdict_both_directions():
    assert verdict({"plan": 0.8, "stl": 0.7, "all_in_one": 0.9}, True) == {"all_in_one": "worse", "stl": "better"}
    # rmse: lower is better
    assert verdict({"plan": 0.8, "stl": 0.7, "all_in_one": 0.9}, False) == {"all_in_one": "better", "stl": "worse"}
    assert verdict({"plan": 0.5, "stl": 0.5, "all_in_one": 0.5}, True) == {"all_in_one": "tie", "stl": "tie"}
    line = verdict_line(_group_report(0.8, 0.7, 0.9))
    assert line.startswith("verdict: the plan loses to the all-in-one model") and "beats single-task" in line
    lines = report_table(_group_report(0.8, 0.7, 0.6))
    assert any(ln.startswith("verdict: the plan beats the all-in-one model") for ln in lines)
    assert any("gap 12.5%" in ln for ln in lines)


def test_absurd_curve_weights_are_flagged():
    assert weight_warnings({"a": 1.0, "b": 0.0, "c": 0.5}) == []
    warned = weight_warnings({"a": 3e8, "b": 1e-12, "c": 2.0})
    assert len(warned) == 2 and "task a" in warned[0] and "task b" in warned[1]
    assert all(w.startswith("warning:") for w in warned)
    data = json.loads((INSTANCES / "budget_geometric.json").read_text())
    data["tasks"][0]["weight"] = 5e7
    problem = parse_instance(data, "x")
    result = {"instance": "x", "kind": "budget", "status": "optimal", "solver": "dp", "seconds": 0.0,
              "objective": 1.0, "bound": 1.0, "gap": 0.0,
              "solution": {"allocation": {"segmentation": 0, "detection": 3, "depth": 0, "edges": 0}}}
    lines = result_summary(problem, result)
    assert any(ln.startswith("warning: task segmentation") for ln in lines)
    assert "allocation: detection=3 (0 for segmentation, depth, edges)" in lines


def test_tables_collapse_runs_of_zero_rows():
    rows = [["0", "0", "0"], ["1", "0", "0"], ["2", "0.5", "1"], ["3", "0", "0"], ["4", "1", "0"]]
    assert collapse_zero_rows(rows) == [["0 .. 1 (2 rows)", "0", "0"], ["2", "0.5", "1"], ["3", "0", "0"],
                                        ["4", "1", "0"]]
    assert collapse_zero_rows([["5", "-", "-"], ["6", "-", "-"]]) == [["5", "-", "-"], ["6", "-", "-"]]
    out = _run("whatif", INSTANCES / "budget_geometric.json", "--budgets", "0:4:1")
    assert out.exit_code == 0, out.output
    assert "0 .. 1 (2 rows)" in out.output


def test_wall_time_counts_from_the_process_start():
    from planner.cli import output

    age = output._process_age()
    if age is None:
        pytest.skip("no /proc here")
    output.mark_start(process=True)
    try:
        assert output.wall_seconds() >= age > 0
    finally:
        output.end_command()
    output.mark_start()
    time.sleep(0.05)
    assert 0.05 <= output.wall_seconds() < 5
    output.end_command()


def test_progress_plain_lines_off_a_terminal_and_quiet():
    import io
    import re

    from planner.cli import output

    buf = io.StringIO()
    bar = output.Progress("training models", stream=buf)
    bar.total(20)
    for _ in range(20):
        bar(1)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert all(re.match(r"^\d\d:\d\d:\d\d training models: \d+/20", ln) for ln in lines)
    assert 3 <= len(lines) <= 12 and "20/20 (100%)" in lines[-1]  # about one per 10%, not one per model
    output.set_verbosity(0)
    try:
        quiet = io.StringIO()
        bar = output.Progress("x", stream=quiet)
        bar.total(5)
        bar(5)
        assert quiet.getvalue() == ""
    finally:
        output.set_verbosity(1)
