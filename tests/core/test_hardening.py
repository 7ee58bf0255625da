"""Hardening: output targets, batch names, special files, non-finite values, ambiguous input,
tampered stores, time limits and scale. Each class of defect has its tests here; the cases tried
and their verdicts are listed in docs/reliability.md."""
from __future__ import annotations

import json
import re
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = ROOT / "instances"
SMALL = INSTANCES / "selection_small.json"


def _invoke(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def _one_error_line(res, code=2):
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    # progress bars (training) may come first on stderr; the error is one line, the last
    lines = [line for line in res.stderr.strip().splitlines() if not re.match(r"(\d\d:\d\d:\d\d )?training ", line)]
    msg = "\n".join(lines)
    assert msg.startswith("error: ") and "\n" not in msg, msg
    return msg


# -- output targets -------------------------------------------------------------------------------

def test_out_through_symlink_writes_the_target_and_keeps_the_link(tmp_path):
    inst = tmp_path / "a.json"
    shutil.copy(SMALL, inst)
    target = tmp_path / "real" / "res.json"
    target.parent.mkdir()
    link = tmp_path / "link.json"
    link.symlink_to(target)
    res = _invoke(["solve", inst, "-o", link])
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["status"] == "optimal"
    assert [p.name for p in target.parent.iterdir()] == ["res.json"]  # no temporary file left


def test_out_refuses_fifo_and_device(tmp_path):
    inst = tmp_path / "a.json"
    shutil.copy(SMALL, inst)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    msg = _one_error_line(_invoke(["solve", inst, "-o", fifo]))
    assert "FIFO" in msg and str(fifo) in msg
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    before = os.stat("/dev/null")
    msg = _one_error_line(_invoke(["solve", inst, "-o", "/dev/null"]))
    assert "character device" in msg
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino and after.st_rdev == before.st_rdev
    # a symlink to a device is refused as well
    link = tmp_path / "null.json"
    link.symlink_to("/dev/null")
    _one_error_line(_invoke(["solve", inst, "-o", link]))
    assert link.is_symlink()


def test_out_symlink_loop_and_dangling_link(tmp_path):
    inst = tmp_path / "a.json"
    shutil.copy(SMALL, inst)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.symlink_to(two)
    two.symlink_to(one)
    msg = _one_error_line(_invoke(["solve", inst, "-o", one]))
    assert "symlink" in msg and one.is_symlink() and two.is_symlink()
    dangling = tmp_path / "later.json"
    dangling.symlink_to(tmp_path / "made.json")
    assert _invoke(["solve", inst, "-o", dangling]).exit_code == 0
    assert dangling.is_symlink() and json.loads((tmp_path / "made.json").read_text())["status"] == "optimal"


def test_out_equal_to_an_input_is_a_usage_error(tmp_path):
    inst = tmp_path / "a.json"
    shutil.copy(SMALL, inst)
    original = inst.read_bytes()
    link = tmp_path / "alias.json"
    link.symlink_to(inst)
    for out in (inst, link, tmp_path / "." / "a.json"):
        msg = _one_error_line(_invoke(["solve", inst, "-o", out]))
        assert "input" in msg
        assert inst.read_bytes() == original


def test_estimate_out_equal_to_store_keeps_the_store(tmp_path):
    from planner.io import OutputTargetError, check_outputs

    store = tmp_path / "runs.sqlite"
    store.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    before = store.read_bytes()
    with pytest.raises(OutputTargetError, match="--store"):
        check_outputs({"-o": store}, {"--store": store, "--data": tmp_path / "d.csv"})
    res = _invoke(["estimate", "--data", tmp_path / "d.csv", "--task-column", "t", "--label-column", "y",
                   "--target", "a", "--store", store, "-o", store])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert store.read_bytes() == before


def test_atomic_write_long_name_and_user_path_in_errors(tmp_path):
    from planner.io import atomic_write_text

    long = tmp_path / ("n" * 250)
    atomic_write_text(long, "x")  # the temporary name is shortened, the file keeps its name
    assert long.read_text() == "x" and len(list(tmp_path.iterdir())) == 1
    missing = tmp_path / "no" / "such" / "out.json"
    with pytest.raises(OSError) as err:
        atomic_write_text(missing, "x")
    assert err.value.filename == str(missing)


# -- ambiguous input ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,field", [
    ('{"schema": 1, "kind": "selection", "target": "CA", "target": "OR"}', "target"),
    ('{"schema": 1, "kind": "budget", "budget": 1, "tasks": [{"id": "a", "cost": 1, "cost": 2}]}', "cost"),
])
def test_json_duplicate_keys(tmp_path, text, field):
    inst = tmp_path / "d.json"
    inst.write_text(text)
    msg = _one_error_line(_invoke(["solve", inst]))
    assert f"{field}: duplicate key" in msg


@pytest.mark.parametrize("text,field,why", [
    ("schema: 1\nkind: selection\nkind: budget\n", "kind", "duplicate key"),
    ("schema: 1\nkind: budget\nbudget: 5\ntasks:\n  - {id: a, cost: 1, cost: 3}\n", "tasks[0].cost", "duplicate key"),
    ("schema: 1\nkind: selection\ntarget: CA\ntasks: [CA, 010, OR]\n", "tasks[1]", "ambiguous"),
    ("schema: 1\nkind: selection\ntarget: CA\ntasks: [CA, 1:30, OR]\n", "tasks[1]", "ambiguous"),
    ("schema: 1\nkind: selection\ntarget: CA\ntasks: [CA, NO, OR]\n", "tasks[1]", "ambiguous"),
    ("schema: 1\nkind: budget\nbudget: 1_000\n", "budget", "ambiguous"),
])
def test_yaml_duplicate_keys_and_yaml11_rewrites(tmp_path, text, field, why):
    inst = tmp_path / "d.yaml"
    inst.write_text(text)
    msg = _one_error_line(_invoke(["solve", inst]))
    assert f"{field}: " in msg and why in msg, msg


def test_yaml_quoted_ids_and_plain_numbers_still_read(tmp_path):
    from planner.io import parse_text

    data = parse_text("a: '010'\nb: \"1:30\"\nc: 10\nd: 0.5\ne: true\nf: 0\ng: -3\n", "x.yaml")
    assert data == {"a": "010", "b": "1:30", "c": 10, "d": 0.5, "e": True, "f": 0, "g": -3}
    merged = parse_text("base: &b {x: 1}\nuse:\n  <<: *b\n  x: 2\n", "m.yaml")
    assert merged["use"] == {"x": 2}  # a merge key is overridden explicitly, not a duplicate


# -- special input files --------------------------------------------------------------------------

def test_solve_refuses_fifo_and_device_input(tmp_path):
    fifo = tmp_path / "x.json"
    os.mkfifo(fifo)
    msg = _one_error_line(_invoke(["solve", fifo]))  # returns at once: no reader blocks on the FIFO
    assert "FIFO" in msg
    zero = tmp_path / "z.json"
    zero.symlink_to("/dev/zero")
    assert "character device" in _one_error_line(_invoke(["solve", zero]))


def test_size_cap_holds_while_reading(tmp_path):
    from planner.io import read_regular_bytes
    from planner.status import InstanceError

    big = tmp_path / "big.json"
    big.write_bytes(b" " * 5000)
    with pytest.raises(InstanceError, match="larger than"):
        read_regular_bytes(big, limit=4096)
    assert read_regular_bytes(big, limit=5000) == b" " * 5000


# -- undefined figures (NaN) never crash a writer --------------------------------------------------

def _frame(n_tasks=7, n=60, seed=0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for t in ["t"] + [f"s{i}" for i in range(n_tasks - 1)]:
        X = rng.normal(size=(n, 3))
        y = 2 * X[:, 0] + 0.1 * rng.normal(size=n)
        rows += [{"x0": a, "x1": b, "x2": c, "task": t, "y": v} for (a, b, c), v in zip(X, y)]
    return pd.DataFrame(rows)


ESTIMATE = ["--task-column", "task", "--label-column", "y", "--regression", "--target", "t", "--subsets", "12",
            "--epochs", "2", "--bootstrap", "0", "--repeats", "2"]


def test_estimate_with_undefined_f1_writes_null(tmp_path):
    """Every sampled subset made worse than the single-task baseline (by editing the stored runs):
    no held-out subset beats the baseline, so transfer F1 is undefined. The rerun trains nothing,
    and must write the instance with f1_transfer null instead of crashing on NaN."""
    import sqlite3

    csv, store, out = tmp_path / "d.csv", tmp_path / "runs.db", tmp_path / "inst.json"
    _frame().to_csv(csv, index=False)
    res = _invoke(["estimate", "--data", csv, *ESTIMATE, "--store", store, "-o", out])
    assert res.exit_code == 0, res.output
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE runs SET f = 50.0 + 0.01 * rowid WHERE subset != '[]'")
    out.unlink()
    res = _invoke(["estimate", "--data", csv, *ESTIMATE, "--store", store, "-o", out])
    assert res.exit_code == 0, res.output
    assert "0 trained now" in res.output and "F1 n/a" in res.output
    inst = json.loads(out.read_text())  # strict JSON: no NaN literal
    assert inst["meta"]["diagnostics"]["f1_transfer"] is None
    from planner.instance import load_instance

    assert load_instance(out).kind == "selection"  # still a valid instance


def test_writers_turn_non_finite_into_null(tmp_path):
    from planner.io import dumps_json, write_instance

    obj = {"a": float("nan"), "b": [1.0, float("inf"), {"c": -float("inf")}], "d": "nan"}
    assert json.loads(dumps_json(obj)) == {"a": None, "b": [1.0, None, {"c": None}], "d": "nan"}
    write_instance(tmp_path / "x.yaml", obj)
    assert ".nan" not in (tmp_path / "x.yaml").read_text()


# -- non-finite data --------------------------------------------------------------------------------

@pytest.mark.parametrize("column,value,why", [
    ("x1", float("inf"), "not finite"),
    ("x2", -float("inf"), "not finite"),
    ("x1", 1e308, "float32 range"),
    ("y", float("inf"), "not finite"),
    ("y", 1e39, "float32 range"),
])
def test_non_finite_data_is_refused_with_column_and_row(tmp_path, column, value, why):
    from planner_models.data import DataError, load_table

    frame = _frame()
    frame.loc[17, column] = value
    csv = tmp_path / "d.csv"
    frame.to_csv(csv, index=False)
    with pytest.raises(DataError) as err:
        load_table(str(csv), "task", "y", regression=True)
    msg = str(err.value)
    assert f"column {column!r}, row 18" in msg and why in msg, msg
    res = _invoke(["estimate", "--data", csv, *ESTIMATE, "-o", tmp_path / "o.json"])
    msg = _one_error_line(res)
    assert f"row 18" in msg and not (tmp_path / "o.json").exists()


def test_nan_loss_is_refused_not_dropped(tmp_path):
    from planner.store import NonFiniteLoss, RunRecord, Store

    with Store(tmp_path / "s.db") as store:
        study = store.open_study("fp", "t", 0, {"x": 1})
        good = RunRecord(("a",), 0, 1, 0.5, {"t": 0.5}, {"rmse": 1.0}, 0.1, "cpu")
        bad = RunRecord(("b",), 0, 1, float("nan"), {"t": float("nan")}, {"rmse": 1.0}, 0.1, "cpu")
        with pytest.raises(NonFiniteLoss, match="non-finite loss"):
            store.add_batch(study, [good, bad])
        assert store.count(study) == 0  # nothing of the batch is stored
        assert store.add_batch(study, [good]) == 1


# -- planner batch: names, summaries, special files, leftovers ----------------------------------

def _batch(*args):
    return _invoke(["batch", *args, "--json"])


def test_batch_result_names_are_distinct_and_reversible(tmp_path):
    from planner.batch import result_names

    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.json", "a.yaml", "a.json.yaml", "b.yml", "c.json"):
        shutil.copy(SMALL, root / name)
    res = _batch(root)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["total"] == 5 and report["solved"] == 5
    results = sorted(p.name for p in root.glob("*.result.json"))
    assert len(results) == 5
    sources = {json.loads((root / n).read_text())["batch"]["source"] for n in results}
    assert sources == {"a.json", "a.yaml", "a.json.yaml", "b.yml", "c.json"}
    assert sorted(r["instance"] for r in report["results"]) == sorted(sources)
    # the mapping is one to one whatever the names
    rels = ["x.json", "x.yaml", "x.json.yaml", "x.json.yml", "x.yaml.json", "x.yml", "y/x.json", "y.json"]
    names = result_names(rels)
    assert len(set(names.values())) == len(rels)


def test_batch_summary_files_are_never_instances_nor_overwritten(tmp_path):
    root = tmp_path / "in"
    (root / "old").mkdir(parents=True)
    shutil.copy(SMALL, root / "s.json")
    # another batch's summary under DIR is not an instance
    res = _batch(root, "-o", root / "old")
    assert res.exit_code == 0, res.output
    res = _batch(root)
    assert res.exit_code == 0, res.output
    assert [r["instance"] for r in json.loads(res.stdout)["results"]] == ["s.json"]
    # an instance called summary.json in OUT = DIR: refused before solving, not overwritten
    inst = root / "summary.json"
    inst.unlink()
    shutil.copy(SMALL, inst)
    before = inst.read_bytes()
    msg = _one_error_line(_invoke(["batch", root]))
    assert "summary.json" in msg
    assert inst.read_bytes() == before
    # with another OUTDIR it is an instance like any other
    res = _batch(root, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "summary.json" in [r["instance"] for r in json.loads(res.stdout)["results"]]


def test_batch_special_files_long_and_undecodable_names(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(SMALL, root / "ok.json")
    os.mkfifo(root / "x.json")
    (root / "z.json").symlink_to("/dev/zero")
    shutil.copy(SMALL, root / ("L" * 240 + ".json"))  # result name of 252 bytes: works
    shutil.copy(SMALL, root / ("M" * 246 + ".json"))  # result name of 258 bytes: that instance's error
    bad = os.fsencode(str(root)) + b"/bad\xff.json"
    shutil.copy(SMALL, bad)
    res = _batch(root)
    assert res.exit_code == 1 and "Traceback" not in res.output
    rows = {r["instance"]: r for r in json.loads(res.stdout)["results"]}
    assert rows["x.json"]["status"] == "error" and "FIFO" in rows["x.json"]["error"]
    assert rows["z.json"]["status"] == "error" and "character device" in rows["z.json"]["error"]
    assert rows["L" * 240 + ".json"]["status"] == "optimal"
    assert rows["M" * 246 + ".json"]["status"] == "error" and "255 bytes" in rows["M" * 246 + ".json"]["error"]
    assert rows["bad\\xff.json"]["status"] == "optimal"
    assert rows["ok.json"]["status"] == "optimal"
    assert "bad\\xff.json" in (root / "summary.csv").read_text(encoding="utf-8")
    assert not [p for p in os.listdir(root) if p.startswith(".")]


def test_batch_sweeps_temporaries_of_a_killed_batch(tmp_path):
    import subprocess
    import time as _time

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(SMALL, root / "s.json")
    assert _batch(root).exit_code == 0
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = root / f".s.result.json.{dead.pid}.abcd1234.tmp"
    leftover.write_text('{"sch')
    old = _time.time() - 3600
    os.utime(leftover, (old, old))
    res = _batch(root)  # s.json is unchanged and skipped: its result is not written again
    assert res.exit_code == 0 and json.loads(res.stdout)["skipped"] == 1
    assert not leftover.exists()


# -- tampered stores, escape codes, user paths, one-line usage errors --------------------------

@pytest.fixture
def trained_store(tmp_path):
    csv, store, out = tmp_path / "d.csv", tmp_path / "runs.db", tmp_path / "inst.json"
    _frame().to_csv(csv, index=False)
    res = _invoke(["estimate", "--data", csv, *ESTIMATE, "--store", store, "-o", out])
    assert res.exit_code == 0, res.output
    return csv, store


@pytest.mark.parametrize("sql,why", [
    ("UPDATE runs SET f = 'abc' WHERE rowid = 3", "f is str"),
    ("UPDATE runs SET val_losses = '{bad json' WHERE rowid = 4", "val_losses is not valid JSON"),
    ("UPDATE runs SET subset = '[\"nosuch\"]' WHERE rowid = 5", "unknown task 'nosuch'"),
    ("UPDATE runs SET subset = '7' WHERE rowid = 5", "subset is not a list"),
    ("UPDATE runs SET replicate = 'x' WHERE rowid = 6", "replicate is str"),
    ("UPDATE studies SET settings = 'nope'", None),
])
def test_tampered_store_rows_are_one_line_exit_2(trained_store, tmp_path, sql, why):
    import sqlite3

    csv, store = trained_store
    with sqlite3.connect(store) as conn:
        conn.execute(sql)
    out = tmp_path / "again.json"
    res = _invoke(["estimate", "--data", csv, *ESTIMATE, "--store", store, "-o", out])
    if why is None:  # the study's own key still matches: its settings text is not read
        assert res.exit_code in (0, 2) and "internal error" not in res.output
        return
    msg = _one_error_line(res)
    assert "not a usable store" in msg and "runs row" in msg and why in msg, msg
    assert not out.exists()


def test_escape_codes_in_names_are_shown_escaped(tmp_path):
    data = json.loads(SMALL.read_text())
    data["name"] = "evil\x1b]0;pwned\x07\x1b[31m"
    inst = tmp_path / "e.json"
    inst.write_text(json.dumps(data))
    for args in (["solve", inst], ["validate", inst]):
        res = _invoke(args)
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.output and "\x07" not in res.output and "\\x1b" in res.output
    data["tasks"][1] = "bad\x1b[2J"
    inst.write_text(json.dumps(data))
    msg = _one_error_line(_invoke(["solve", inst]))
    assert "\x1b" not in msg
    res = _invoke(["batch", tmp_path])
    assert "\x1b" not in res.output and res.exit_code == 1


def test_write_errors_name_the_users_path(tmp_path, monkeypatch):
    import errno

    inst = tmp_path / "a.json"
    shutil.copy(SMALL, inst)
    out = tmp_path / "res.json"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    msg = _one_error_line(_invoke(["solve", inst, "-o", out]), code=1)
    assert msg == f"error: {out}: No space left on device"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("args", [
    ["solve", "--bogus"], ["solve"], ["solve", SMALL, "--solver", "nope"], ["nosuch"],
    ["batch", "/no/such/folder"], ["whatif", SMALL],
])
def test_usage_errors_are_one_line(args):
    msg = _one_error_line(_invoke(args))
    assert "--help" in msg and "Usage:" not in msg


# -- time limits ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e999"])
@pytest.mark.parametrize("command", [
    ["solve", SMALL], ["batch", INSTANCES], ["whatif", INSTANCES / "budget_power.yaml", "--budgets", "1:10:1"],
])
def test_time_limits_are_validated_alike(tmp_path, command, value):
    args = [*command, "--time-limit", value]
    if command[0] == "batch":
        args += ["-o", tmp_path / "out"]
    msg = _one_error_line(_invoke(args))
    assert "--time-limit" in msg
    assert not (tmp_path / "out").exists()


def test_time_limit_rule_in_the_library():
    from planner.solve import check_time_limit
    from planner.status import UsageError
    from planner.budget.whatif import whatif
    from planner.instance import load_instance

    assert check_time_limit(None) is None and check_time_limit(0) == 0.0 and check_time_limit(2) == 2.0
    for bad in (float("nan"), float("inf"), -1.0, "3", True):
        with pytest.raises(UsageError):
            check_time_limit(bad)
    with pytest.raises(UsageError):
        whatif(load_instance(INSTANCES / "budget_power.yaml"), [1.0, 2.0], time_limit=float("nan"))


def test_local_search_keeps_its_time_limit():
    """The cover local search used to build a 38,000-row LP for its bound after the search, taking
    seconds past the limit; past a size it now reports the per-task bound instead."""
    from planner.instance import load_instance
    from planner.solve import solve

    problem = load_instance(INSTANCES / "grouping_mtgnet_mimic27_k5.json")
    res = solve(problem, "local", time_limit=1.0)
    assert res.seconds < 1.0 + 1.0, res.seconds  # a margin for busy machines; it was 3-5 s
    if res.status.has_solution:
        assert res.bound >= res.objective - 1e-9  # a maximisation: the bound is above


# -- scale --------------------------------------------------------------------------------------

def test_validation_of_a_huge_selection_is_linear(tmp_path):
    from planner.instance import parse_instance
    from planner.status import InstanceError

    n = 100_000
    tasks = ["T"] + [f"s{i}" for i in range(n)]
    data = {"schema": 1, "kind": "selection", "target": "T", "tasks": tasks,
            "surrogate": {"intercept": 0.0, "linear": {t: 0.5 for t in tasks[1:50]}}}
    problem = parse_instance(data, "big")
    assert len(problem.sources) == n
    dup = dict(data, tasks=tasks + ["s99999"])
    with pytest.raises(InstanceError, match=r"tasks\[100001\]: duplicate task id"):
        parse_instance(dup, "big")


def test_sparse_ridge_matches_the_dense_one():
    import numpy as np

    from planner.ridge import as_design
    from planner.sampling import design
    from planner.selection.surrogate import LinearSurrogate, PairwiseSurrogate, masks_from_subsets

    k = 40
    subsets = design(k, 5, 8 * k, 0, "none")
    masks = masks_from_subsets(subsets, k)
    rng = np.random.default_rng(3)
    y = masks @ rng.normal(size=k) + 0.2 * rng.normal(size=len(subsets))
    for ridge in (None, 0.0):  # cross-validated, and the minimum-norm least squares
        dense = LinearSurrogate(ridge=ridge).fit(masks, y)
        sparse = LinearSurrogate(ridge=ridge).fit(as_design(masks, sparse=True), y)
        assert sparse.ridge_ == dense.ridge_
        assert np.allclose(sparse.coef_, dense.coef_, atol=1e-6)
        assert abs(sparse.intercept_ - dense.intercept_) < 1e-6
    pd_ = PairwiseSurrogate(min_pair_count=3, ridge=0.01, pair_ridge=1.0).fit(masks, y)
    ps = PairwiseSurrogate(min_pair_count=3, ridge=0.01, pair_ridge=1.0).fit(as_design(masks, sparse=True), y)
    assert pd_.pairs_ == ps.pairs_ and len(ps.pairs_) > 0
    assert np.allclose(pd_.coef_, ps.coef_, atol=1e-5) and np.allclose(pd_.pair_coef_, ps.pair_coef_, atol=1e-5)


def test_surrogate_fit_on_thousands_of_sources():
    import numpy as np
    import scipy.sparse as sp

    from planner.sampling import design
    from planner.selection.surrogate import fit_surrogate, masks_from_subsets

    k = 1500  # a dense design would be 12,000 x 1,500; the sparse one holds 60,000 ones
    subsets = design(k, 5, 8 * k, 0, "none")
    masks = masks_from_subsets(subsets, k)
    assert sp.issparse(masks)
    rng = np.random.default_rng(5)
    theta = rng.normal(size=k)
    y = masks @ theta + 0.1 * rng.normal(size=len(subsets))
    model = fit_surrogate(masks, y, kind="auto")
    assert np.corrcoef(model.coef_, theta)[0, 1] > 0.99
    assert np.allclose(model.predict(masks[:10]), y[:10], atol=1.0)
