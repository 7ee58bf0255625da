"""``planner batch``: one result per instance, summaries, skipping unchanged inputs, executors."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.batch import find_instances, run_batch, solve_file
from planner.cli import main
from planner.generators import random_selection_dict

INSTANCES = Path(__file__).resolve().parents[2] / "instances"
SUMMARY_COLUMNS = ["instance", "kind", "status", "objective", "bound", "seconds", "error"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three kinds, nested folders, a YAML file, a broken file and an infeasible instance."""
    root = tmp_path / "in"
    (root / "sub" / "deep").mkdir(parents=True)
    shutil.copy(INSTANCES / "selection_small.json", root)
    shutil.copy(INSTANCES / "budget_power.yaml", root / "sub")
    shutil.copy(INSTANCES / "grouping_cover_example.json", root / "sub" / "deep")
    (root / "sub" / "broken.json").write_text('{"schema": 1, "kind": "selection"')
    infeasible = random_selection_dict(4, 0.0, seed=1, constraints={"min_size": 3, "exclude": ["s000", "s001"]})
    (root / "sub" / "infeasible.json").write_text(json.dumps(infeasible))
    (root / "notes.txt").write_text("not an instance")
    (root / ".hidden.json").write_text("{}")
    return root


def _results(outdir: Path) -> dict[str, dict]:
    return {p.relative_to(outdir).as_posix(): json.loads(p.read_text()) for p in outdir.rglob("*.result.json")}


def test_batch_writes_one_result_each_and_summaries(folder, tmp_path):
    out = tmp_path / "out"
    res = run("batch", folder, "-o", out)
    assert res.exit_code == 1, res.output  # the broken and the infeasible instance
    results = _results(out)
    assert sorted(results) == ["selection_small.result.json", "sub/broken.result.json",
                               "sub/budget_power.result.json", "sub/deep/grouping_cover_example.result.json",
                               "sub/infeasible.result.json"]
    assert results["selection_small.result.json"]["status"] == "optimal"
    assert results["sub/budget_power.result.json"]["kind"] == "budget"
    assert results["sub/infeasible.result.json"]["status"] == "infeasible"
    broken = results["sub/broken.result.json"]
    assert broken["status"] == "error" and "not valid JSON" in broken["error"] and broken["exit_code"] == 2
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == SUMMARY_COLUMNS
    assert [r["instance"] for r in rows] == ["selection_small.json", "sub/broken.json", "sub/budget_power.yaml",
                                             "sub/deep/grouping_cover_example.json", "sub/infeasible.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"] == 5 and summary["solved"] == 3 and summary["failed"] == 2
    assert summary["counts"] == {"optimal": 3, "error": 1, "infeasible": 1}
    by = {r["instance"]: r for r in summary["results"]}
    assert by["selection_small.json"]["objective"] == pytest.approx(0.375)
    assert set(by["sub/broken.json"]) == set(SUMMARY_COLUMNS)
    assert "sub/broken.json: error" in res.stderr and "Traceback" not in res.output
    assert not list(out.rglob(".*.tmp"))


def test_exit_0_when_all_solved_and_json_summary(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for seed in range(3):
        (root / f"s{seed}.json").write_text(json.dumps(random_selection_dict(6, 0.3, seed=seed)))
    res = run("batch", root, "--json")  # results beside the inputs by default
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["solved"] == 3 and report["failed"] == 0
    assert sorted(p.name for p in root.glob("*.result.json")) == ["s0.result.json", "s1.result.json", "s2.result.json"]
    # The results and summary.json beside the inputs are not instances on the next run.
    again = run("batch", root, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["total"] == 3


def test_rerun_skips_unchanged_and_redoes_changed(folder, tmp_path):
    out = tmp_path / "out"
    run("batch", folder, "-o", out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.result.json")}
    res = run("batch", folder, "-o", out, "--json")
    report = json.loads(res.stdout)
    # Solved and infeasible ones are skipped; the broken one (an error) is tried again.
    assert report["skipped"] == 4
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.result.json")}
    changed = sorted(p.relative_to(out).as_posix() for p in before if before[p] != after[p])
    assert changed == ["sub/broken.result.json"]
    # Editing an input re-solves exactly that instance.
    data = json.loads((folder / "selection_small.json").read_text())
    data["constraints"]["max_size"] = 1
    (folder / "selection_small.json").write_text(json.dumps(data))
    report = json.loads(run("batch", folder, "-o", out, "--json").stdout)
    assert report["skipped"] == 3
    assert _results(out)["selection_small.result.json"]["solution"]["selected"] == ["OR"]
    # Other solver options are another run: nothing is skipped.
    report = json.loads(run("batch", folder, "-o", out, "--json", "--time-limit", "30").stdout)
    assert report["skipped"] == 0
    # --force solves everything again.
    assert json.loads(run("batch", folder, "-o", out, "--json", "--time-limit", "30", "--force").stdout)["skipped"] == 0


def test_fixing_a_broken_instance_is_picked_up(folder, tmp_path):
    out = tmp_path / "out"
    run("batch", folder, "-o", out)
    (folder / "sub" / "broken.json").unlink()
    (folder / "sub" / "infeasible.json").unlink()
    res = run("batch", folder, "-o", out, "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["total"] == 3  # results of removed inputs are not summarised


def test_damaged_result_file_is_redone(folder, tmp_path):
    out = tmp_path / "out"
    run("batch", folder, "-o", out)
    (out / "selection_small.result.json").write_text('{"schema": 1, "stat')
    report = json.loads(run("batch", folder, "-o", out, "--json").stdout)
    assert report["skipped"] == 3
    assert _results(out)["selection_small.result.json"]["status"] == "optimal"


def test_process_pool_matches_local(folder, tmp_path):
    local = run_batch(folder, tmp_path / "a", jobs=1)
    pool = run_batch(folder, tmp_path / "b", jobs=2, executor="process")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in local.rows]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in pool.rows]
    a, b = _results(tmp_path / "a"), _results(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key]["solution"] == b[key]["solution"] and a[key]["status"] == b[key]["status"]


def test_ray_missing_is_one_line(folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as without the extra
    res = run("batch", folder, "-o", tmp_path / "o", "--executor", "ray")
    assert res.exit_code == 1
    assert res.stderr.strip() == "error: the ray executor needs the optional extra: pip install 'mtl-planner[ray]'"
    assert not (tmp_path / "o" / "summary.csv").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_matches_local(folder, tmp_path):
    pytest.importorskip("ray")
    local = run_batch(folder, tmp_path / "a")
    remote = run_batch(folder, tmp_path / "b", executor="ray")
    assert [(r["instance"], r["status"], r["objective"]) for r in local.rows] == \
        [(r["instance"], r["status"], r["objective"]) for r in remote.rows]


def test_executor_errors(folder, tmp_path):
    assert run("batch", folder, "--executor", "local", "--jobs", "2").exit_code == 2
    assert run("batch", folder, "--jobs", "0").exit_code == 2
    assert run("batch", tmp_path / "missing").exit_code == 2
    assert run("batch", folder / "selection_small.json").exit_code == 2


def test_outdir_inside_dir_and_name_clashes(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(INSTANCES / "selection_small.json", root / "a.json")
    shutil.copy(INSTANCES / "selection_costs.yaml", root / "a.yaml")
    out = root / "results"
    res = run("batch", root, "-o", out, "--json")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.result.json")) == ["a.json.result.json", "a.yaml.result.json"]
    again = json.loads(run("batch", root, "-o", out, "--json").stdout)
    assert again["total"] == 2 and again["skipped"] == 2  # the results folder is not scanned


def test_empty_folder(tmp_path):
    res = run("batch", tmp_path, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["total"] == 0
    assert "no instance files" in res.stderr


def test_find_instances_ignores_results_and_hidden(folder):
    items = find_instances(folder, folder)
    assert [i.rel for i in items] == ["selection_small.json", "sub/broken.json", "sub/budget_power.yaml",
                                      "sub/deep/grouping_cover_example.json", "sub/infeasible.json"]


def test_solve_file_never_raises(tmp_path):
    missing = solve_file(str(tmp_path / "nope.json"), "nope.json")
    assert missing["status"] == "error" and missing["batch"]["sha256"] is None
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    assert solve_file(str(tmp_path / "bin.json"), "bin.json")["exit_code"] == 2


def test_time_limit_recorded_and_never_optimal_when_cut(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    hard = random_selection_dict(80, 0.5, seed=1, constraints={"max_size": 26})
    (root / "hard.json").write_text(json.dumps(hard))
    res = run("batch", root, "--time-limit", "0.5", "--solver", "highs", "--json")
    row = json.loads(res.stdout)["results"][0]
    assert row["status"] in ("feasible", "no_solution")
    stored = json.loads((root / "hard.result.json").read_text())
    assert stored["batch"]["options"]["time_limit"] == 0.5
    if row["status"] == "feasible":
        assert res.exit_code == 0 and stored["gap"] > 0 and stored["bound"] <= stored["objective"]
