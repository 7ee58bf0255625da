"""Ctrl-C and time limits (contract, "Interrupts and time limits"): a finite default time limit on
every solving command, SIGINT during a solve reports the best solution so far, SIGINT during
training stops after the batch in progress, and ``planner group`` writes its instance before solving."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import store_row_count
from planner import interrupt
from planner.cli import main
from planner.grouping.problem import problem_from_affinity
from planner.grouping.schema import instance_from_affinity
from planner.solve import solve

ROOT = Path(__file__).resolve().parents[2]
SOLVING = [["solve"], ["batch"], ["plan"], ["group"], ["budget"], ["whatif"]]


def _random_matrix(n: int, seed: int = 0) -> tuple[list[str], list[list[float]]]:
    rng = np.random.default_rng(seed)
    return [f"t{i}" for i in range(n)], rng.normal(size=(n, n)).tolist()


@pytest.mark.parametrize("command", SOLVING, ids=lambda c: c[0])
def test_every_solving_command_shows_a_finite_default_time_limit(command):
    res = CliRunner().invoke(main, [*command, "--help"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    m = re.search(r"--time-limit S .*?\[default: ([0-9.]+)[;\]]", text)
    assert m, text
    assert 0 < float(m.group(1)) < float("inf")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_sigint_during_a_large_grouping_solve_reports_the_best_grouping(tmp_path):
    """50 tasks, 3 groups, no --time-limit: column generation does not finish in seconds; Ctrl-C
    after a few seconds ends it with one JSON result holding a grouping (exit 0)."""
    tasks, M = _random_matrix(50)
    path = tmp_path / "random50.json"
    path.write_text(json.dumps(instance_from_affinity(tasks, M, max_groups=3, name="random50")))
    problem_from_affinity(tasks, M, max_groups=3)  # the same instance, valid
    proc = subprocess.Popen([sys.executable, "-m", "planner", "solve", str(path), "--json"], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5.0)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    stopped = time.monotonic() - sent
    assert proc.returncode == 0, err
    assert stopped < 15.0
    assert "Traceback" not in err
    result = json.loads(out)  # exactly one JSON object
    assert result["status"] == "feasible" and result["interrupted"] is True
    assert result["bound"] is not None and result["bound"] >= result["objective"] - 1e-9
    groups = result["solution"]["groups"]
    assert 1 <= len(groups) <= 3 and sorted(t for g in groups for t in g) == sorted(tasks)
    assert "stopped on request" in result["message"]


def _sigint_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("solver", ["cpsat", "local"])
def test_sigint_stops_cpsat_and_local_search_in_process(solver):
    tasks, M = _random_matrix(20, seed=1)  # CP-SAT's slot model: a grouping within a second, no proof
    problem = problem_from_affinity(tasks, M, max_groups=4)
    old = signal.getsignal(signal.SIGINT)
    timer = _sigint_after(2.0)
    t0 = time.perf_counter()
    try:
        result = solve(problem, solver, time_limit=60, options={"patience": 10**9})
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 10.0
    assert signal.getsignal(signal.SIGINT) is old  # the handler is restored
    assert result.status.value == "feasible" and result.extra.get("interrupted")
    assert sorted(t for g in result.solution["groups"] for t in g) == sorted(tasks)


def test_flag_reaches_the_native_pricing_tree():
    from planner.grouping.colgen import _Values
    from planner.grouping.pricing import _native_lib, price_exact

    if _native_lib() is None:
        pytest.skip("no C compiler")
    tasks, M = _random_matrix(40, seed=2)
    V = _Values(problem_from_affinity(tasks, M, max_groups=3))
    pi, mu = np.zeros(40), 0.0
    interrupt.request()
    try:
        res = price_exact(V, pi, mu)
    finally:
        interrupt.clear()
    assert not res.done and res.nodes <= 64
    assert price_exact(V, pi, mu, node_limit=200).nodes > 64  # without the flag the tree goes on


def test_second_sigint_raises_keyboard_interrupt():
    with interrupt.catching() as active:
        assert active
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert interrupt.requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    interrupt.clear()


# -- training ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    import pandas as pd

    from planner_models.data import synthetic_classification

    d = synthetic_classification(k=6, p=4, n_per_task=60)
    frame = pd.DataFrame(d.X, columns=[f"x{i}" for i in range(d.X.shape[1])])
    frame["task"] = [d.task_names[t] for t in d.task]
    frame["y"] = d.y
    path = tmp_path_factory.mktemp("interrupts") / "data.csv"
    frame.to_csv(path, index=False)
    return path


def test_sigint_during_training_stops_after_the_batch_with_one_line(csv_path, tmp_path):
    db = tmp_path / "store.db"
    env = _env()
    env["PLANNER_PAUSE_AFTER_BATCH"] = "1.0"  # a second between stored batches: the signal lands mid-run
    proc = subprocess.Popen([sys.executable, "-m", "planner", "estimate", "--data", str(csv_path), "--task-column", "task",
                             "--label-column", "y", "--target", "target", "--subsets", "12", "--epochs", "3",
                             "--bootstrap", "0", "--repeats", "2", "--models-per-batch", "3", "--device", "cpu",
                             "--store", str(db), "-o", str(tmp_path / "out.json")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while store_row_count(db) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    progress = re.compile(r"^\d\d:\d\d:\d\d ")  # the plain progress lines (stderr is not a terminal)
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("note:")
             and not progress.match(ln)]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert "Traceback" not in err and str(db) in lines[0]
    kept = store_row_count(db)
    assert 3 <= kept < 17 and kept % 3 == 0  # whole batches only
    assert not (tmp_path / "out.json").exists()


# -- planner group -------------------------------------------------------------------------------------
def test_group_writes_the_instance_before_solving(csv_path, tmp_path, monkeypatch):
    import planner.solve

    def broken(*args, **kwargs):
        raise planner.solve.PlannerError("the solver broke")

    monkeypatch.setattr(planner.solve, "solve", broken)
    inst = tmp_path / "inst.json"
    res = CliRunner().invoke(main, ["group", "--data", str(csv_path), "--task-column", "task", "--label-column", "y",
                                    "--epochs", "2", "--hidden", "8", "--method", "hoa", "--max-groups", "2",
                                    "--tasks", "target,s01,s02", "--instance-out", str(inst)])
    assert res.exit_code == 1 and "the solver broke" in res.output
    written = json.loads(inst.read_text())
    assert written["kind"] == "grouping" and len(written["tasks"]) == 3
    assert written["meta"]["data"]["task_column"] == "task"
