"""Faults: SIGKILL mid-run and rerun, two processes on one store, unwritable and full disks, solver faults.

The kill tests run the real CLI in a child process and SIGKILL it at points chosen by watching
its progress (rows in the SQLite store, result files in the output folder); the rerun must end
with exactly what an uninterrupted run gives.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import store_row_count
from planner.batch import run_batch
from planner.cli import main
from planner.cli.options import DEFAULT_TIME_LIMIT
from planner.generators import random_selection_dict

INSTANCES = Path(__file__).resolve().parents[2] / "instances"
ROOT = Path(__file__).resolve().parents[2]

# planner estimate on a tiny dataset: 6 sources, 12 subsets + 2 single-task + 3 noise replicates
# = 17 models, 3 per store transaction (6 transactions).
N_MODELS = 38  # 12 subsets x 3 seeds (the replicate design covers them all) + 2 single-task
ESTIMATE_ARGS = ["--task-column", "task", "--label-column", "y", "--target", "target", "--subsets", "12",
                 "--epochs", "3", "--bootstrap", "0", "--repeats", "2", "--models-per-batch", "3", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("PLANNER_DEBUG", None)
    return env


def _spawn(*args, pause: float = 0.0) -> subprocess.Popen:
    env = _env()
    if pause:  # the estimate waits this long after each stored batch: the kill lands between two
        env["PLANNER_PAUSE_AFTER_BATCH"] = str(pause)
    return subprocess.Popen([sys.executable, "-m", "planner", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _runs(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT study, subset, replicate, seed, f FROM runs ORDER BY study, subset, replicate").fetchall()
    finally:
        con.close()


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 240.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before the kill point: {err[-2000:]}")
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.communicate()
            assert proc.returncode == -signal.SIGKILL
            return
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    pytest.fail("the kill point was never reached")


def _without_name(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("name", None)
    return data


@pytest.fixture(scope="module")
def estimate_data(tmp_path_factory):
    """A tiny CSV and the instance an uninterrupted estimate writes from it (the reference)."""
    import pandas as pd

    from planner_models.data import synthetic_classification

    folder = tmp_path_factory.mktemp("estimate")
    data = synthetic_classification(k=6, p=4, n_per_task=60)
    frame = pd.DataFrame(data.X, columns=[f"x{i}" for i in range(data.X.shape[1])])
    frame["task"] = [data.task_names[t] for t in data.task]
    frame["y"] = data.y
    csv = folder / "data.csv"
    frame.to_csv(csv, index=False)
    ref_db, ref_out = folder / "ref.db", folder / "ref.json"
    t0 = time.perf_counter()
    res = run("estimate", "--data", csv, *ESTIMATE_ARGS, "--store", ref_db, "-o", ref_out)
    assert res.exit_code == 0, res.output
    return {"csv": csv, "db": ref_db, "out": ref_out, "seconds": time.perf_counter() - t0}


def test_estimate_sigkill_and_rerun_gives_the_uninterrupted_result(estimate_data, tmp_path):
    db, out = tmp_path / "k.db", tmp_path / "k.json"
    args = ["estimate", "--data", estimate_data["csv"], *ESTIMATE_ARGS, "--store", db, "-o", out]
    # Kill point 1: after the first transaction; kill point 2: a rerun killed with most rows stored.
    for at_least in (1, 10):
        before = store_row_count(db)
        proc = _spawn(*args, pause=0.5)
        _kill_when(proc, lambda: store_row_count(db) >= max(at_least, before + 1))
        n = store_row_count(db)
        assert 0 < n < N_MODELS, f"killed with {n} of {N_MODELS} rows"
        assert n % 3 == 0, "a batch is one transaction: only whole batches are stored"
        assert not out.exists(), "no output file from a killed run"
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert store_row_count(db) == N_MODELS
    assert _without_name(out) == _without_name(estimate_data["out"])
    ref = {r[1:] for r in _runs(estimate_data["db"])}
    got = _runs(db)
    assert len(got) == len({r[1:3] for r in got}) == N_MODELS  # nothing duplicated
    assert {r[1:] for r in got} == ref  # nothing lost, nothing different


@pytest.mark.slow
@pytest.mark.parametrize("at_least", [1, 4, 7, 10, 13, 16])
def test_estimate_kill_sweep(estimate_data, tmp_path, at_least):
    """Every transaction boundary as a kill point (rows 3, 6, ..., 15, and 17: trained, not yet
    written), then a clean rerun."""
    db, out = tmp_path / "k.db", tmp_path / "k.json"
    args = ["estimate", "--data", estimate_data["csv"], *ESTIMATE_ARGS, "--store", db, "-o", out]
    _kill_when(_spawn(*args), lambda: store_row_count(db) >= at_least)
    assert 0 < store_row_count(db) <= N_MODELS
    if out.exists():  # killed after the atomic rename: the file is whole
        assert _without_name(out) == _without_name(estimate_data["out"])
    # (a kill inside the atomic write may leave a hidden .k.json.PID.*.tmp, never a partial k.json;
    # the next write of k.json removes it, see test_atomic_write_sweeps_temporaries_of_killed_writers)
    assert run(*args).exit_code == 0
    assert _without_name(out) == _without_name(estimate_data["out"])
    assert {r[1:] for r in _runs(db)} == {r[1:] for r in _runs(estimate_data["db"])}


def test_two_estimates_sharing_one_store(estimate_data, tmp_path):
    db = tmp_path / "shared.db"
    procs = [_spawn("estimate", "--data", estimate_data["csv"], *ESTIMATE_ARGS, "--store", db, "-o", tmp_path / f"{n}.json")
             for n in "ab"]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    assert store_row_count(db) == N_MODELS
    assert {r[1:] for r in _runs(db)} == {r[1:] for r in _runs(estimate_data["db"])}
    for n in "ab":
        assert _without_name(tmp_path / f"{n}.json") == _without_name(estimate_data["out"])


# -- batch -------------------------------------------------------------------------------------

def _slow_folder(root: Path) -> Path:
    """Eight selection instances of ~0.1-0.4 s each (HiGHS on this machine)."""
    root.mkdir()
    specs = [(70, s, 23) for s in (1, 2, 4, 5, 6, 8)] + [(60, s, 20) for s in (1, 6)]
    for n, (k, seed, cap) in enumerate(specs):
        sub = root / ("even" if n % 2 == 0 else "odd")
        sub.mkdir(exist_ok=True)
        data = random_selection_dict(k, 0.5, seed=seed, constraints={"max_size": cap})
        (sub / f"i{n}_k{k}_s{seed}.json").write_text(json.dumps(data))
    return root


def _comparable(outdir: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(outdir.rglob("*.result.json")):
        r = json.loads(path.read_text())
        out[path.relative_to(outdir).as_posix()] = (r["status"], r["objective"], r["bound"], r["solution"])
    return out


@pytest.mark.parametrize("jobs", [1, 2])
def test_batch_sigkill_and_rerun(tmp_path, jobs):
    root = _slow_folder(tmp_path / "in")
    ref = run_batch(root, tmp_path / "ref")
    assert ref.failed == 0
    out = tmp_path / "out"
    proc = _spawn("batch", root, "-o", out, "--jobs", jobs)
    _kill_when(proc, lambda: len(list(out.rglob("*.result.json"))) >= 2)
    kept = list(out.rglob("*.result.json"))
    assert 2 <= len(kept) < 8
    for path in kept:  # every result that exists is whole
        assert json.loads(path.read_text())["status"] == "optimal"
    assert not (out / "summary.csv").exists()
    report = run_batch(root, out, jobs=jobs, time_limit=DEFAULT_TIME_LIMIT)  # the CLI's options: its results are kept
    assert report.skipped >= len(kept) and report.total == 8 and report.failed == 0
    assert _comparable(out) == _comparable(tmp_path / "ref")
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(r["instance"] for r in summary["results"]) == sorted(r["instance"] for r in ref.rows)
    assert len(summary["results"]) == 8
    time.sleep(0.5)  # orphaned pool workers of the killed run (if any) have nothing left to write
    assert _comparable(out) == _comparable(tmp_path / "ref")


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("after", [1, 3, 5, 7])
def test_batch_kill_sweep(tmp_path, jobs, after):
    root = _slow_folder(tmp_path / "in")
    ref = run_batch(root, tmp_path / "ref")
    out = tmp_path / "out"
    _kill_when(_spawn("batch", root, "-o", out, "--jobs", jobs), lambda: len(list(out.rglob("*.result.json"))) >= after)
    assert run_batch(root, out, jobs=jobs, time_limit=DEFAULT_TIME_LIMIT).total == 8
    time.sleep(0.5)
    assert _comparable(out) == _comparable(tmp_path / "ref") and ref.failed == 0


# -- unwritable output ---------------------------------------------------------------------------

def test_output_folder_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run("batch", INSTANCES, "-o", blocker / "out")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.strip().startswith("error: ") and "Not a directory" in res.stderr
    res = run("solve", INSTANCES / "selection_small.json", "-o", blocker / "r.json")
    assert res.exit_code == 1 and res.stderr.strip().count("\n") == 0 and "Not a directory" in res.stderr
    res = run("batch", INSTANCES, "-o", blocker)
    assert res.exit_code == 1 and "is a file" in res.stderr


def test_read_only_output_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a 0o555 folder stays writable (the regular-file and full-disk tests cover this)")
        res = run("batch", INSTANCES, "-o", folder)
        assert res.exit_code == 1 and "Permission denied" in res.stderr
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_read_only_filesystem():
    target = Path("/sys/planner_probe")
    if os.access("/sys", os.W_OK) and not _write_fails(target):
        pytest.skip("/sys is writable here")
    res = run("batch", INSTANCES, "-o", target)
    assert res.exit_code == 1 and res.stderr.strip().startswith("error: ") and "Traceback" not in res.output
    assert res.stderr.strip().count("\n") == 0


def _write_fails(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError:
        return True
    path.rmdir()
    return False


def _full_disk(monkeypatch, after: int = 0):
    """os.fsync raises ENOSPC from the (after+1)-th call on, as on a full disk."""
    import planner.batch
    import planner.io

    calls = {"n": 0}
    real = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    fake_os = type(sys)("os_full")
    fake_os.__dict__.update(os.__dict__)
    fake_os.fsync = fsync
    monkeypatch.setattr(planner.io, "os", fake_os)
    monkeypatch.setattr(planner.batch, "os", fake_os)
    return calls


def test_full_disk_before_the_first_result(tmp_path, monkeypatch):
    _full_disk(monkeypatch)
    out = tmp_path / "out"
    res = run("batch", INSTANCES, "-o", out)
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1] == f"error: {out}: cannot write to the output folder: No space left on device"
    assert list(out.iterdir()) == []


def test_full_disk_midway_keeps_whole_results_only(tmp_path, monkeypatch):
    root = tmp_path / "in"
    root.mkdir()
    for seed in range(5):
        (root / f"s{seed}.json").write_text(json.dumps(random_selection_dict(6, 0.3, seed=seed)))
    out = tmp_path / "out"
    _full_disk(monkeypatch, after=3)  # the probe and two results get through
    res = run("batch", root, "-o", out)
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1] == f"error: {out / 's2.result.json'}: cannot write result: No space left on device"
    assert sorted(p.name for p in out.iterdir()) == ["s0.result.json", "s1.result.json"]  # no partial, no temp file
    monkeypatch.undo()
    report = run_batch(root, out, time_limit=DEFAULT_TIME_LIMIT)  # space again: the rerun finishes the rest
    assert report.skipped == 2 and report.failed == 0


def test_full_disk_on_solve_output(tmp_path, monkeypatch):
    _full_disk(monkeypatch)
    out = tmp_path / "r.json"
    res = run("solve", INSTANCES / "selection_small.json", "-o", out)
    assert res.exit_code == 1 and res.stderr.strip() == f"error: {out}: No space left on device"  # the user's path
    assert list(tmp_path.iterdir()) == []


# -- solver faults -------------------------------------------------------------------------------

def _problem(data):
    from planner.instance import parse_instance

    return parse_instance(data, "test")


def test_time_limit_never_reports_a_wrong_optimal():
    from planner.solve import solve

    hard = _problem(random_selection_dict(80, 0.5, seed=1, constraints={"max_size": 26}))
    for solver in ("highs", "cpsat"):
        res = solve(hard, solver=solver, time_limit=0.3)
        assert res.status.value in ("feasible", "no_solution"), (solver, res.status, res.message)
        if res.status.value == "feasible":
            assert res.bound is not None and res.bound <= res.objective and res.gap > 0
            payload = res.to_dict(hard.name, hard.kind)
            assert payload["gap"] == pytest.approx(res.gap) and payload["status"] == "feasible"


@pytest.mark.parametrize("name", ["selection_small.json", "selection_costs.yaml", "grouping_cover_example.json",
                                  "grouping_partition_example.yaml", "budget_coupled.json", "budget_table.json"])
def test_zero_time_limit_on_every_backend(name):
    """With no time at all a backend may still prove optimality, but then it must be the true optimum."""
    from planner.instance import load_instance
    from planner.registry import backend_names
    from planner.solve import solve

    problem = load_instance(INSTANCES / name)
    exact = solve(problem)  # no time limit: the exact optimum (brute force or DP)
    assert exact.status.value == "optimal"
    for backend in backend_names(problem.kind):
        try:
            res = solve(problem, solver=backend, time_limit=0)
        except Exception as exc:  # noqa: BLE001 - a backend may refuse an instance, but must say why
            from planner.status import PlannerError

            assert isinstance(exc, PlannerError), (backend, exc)
            continue
        assert res.status.value in ("optimal", "feasible", "no_solution"), (backend, res.status)
        if res.status.value == "optimal":
            assert res.objective == pytest.approx(exact.objective, rel=1e-6, abs=1e-9), backend
        elif res.status.value == "feasible" and res.bound is not None:
            better = (lambda a, b: a <= b + 1e-9) if problem.sense == "min" else (lambda a, b: a >= b - 1e-9)
            assert better(res.bound, exact.objective) and better(exact.objective, res.objective), backend


def test_time_limit_through_the_cli_is_feasible_with_gap(tmp_path):
    path = tmp_path / "hard.json"
    path.write_text(json.dumps(random_selection_dict(80, 0.5, seed=1, constraints={"max_size": 26})))
    res = run("solve", path, "--solver", "highs", "--time-limit", "0.3", "--json")
    obj = json.loads(res.stdout)
    assert obj["status"] in ("feasible", "no_solution")
    assert res.exit_code == (0 if obj["status"] == "feasible" else 4)
    if obj["status"] == "feasible":
        assert obj["gap"] > 0 and obj["bound"] < obj["objective"]


def _break_backend(monkeypatch, kind, name, exc):
    from planner import registry

    real = registry.backend

    def broken(problem, time_limit, options):
        raise exc

    def lookup(k, n):
        return broken if (k, n) == (kind, name) else real(k, n)

    monkeypatch.setattr(registry, "backend", lookup)


def test_missing_solver_falls_back_and_says_so(monkeypatch):
    from planner.solve import solve
    from planner.status import SolverUnavailable

    problem = _problem(random_selection_dict(8, 0.3, seed=1))
    first = solve(problem).solver
    _break_backend(monkeypatch, "selection", first, SolverUnavailable("package not installed"))
    res = solve(problem)
    assert res.status.value == "optimal" and res.solver != first
    assert f"{first}: package not installed" in res.message
    with pytest.raises(SolverUnavailable):
        solve(problem, solver=first)


def test_crashing_solver_falls_back_under_auto_and_is_named_otherwise(monkeypatch, tmp_path):
    from planner.solve import solve

    data = random_selection_dict(8, 0.3, seed=1)
    problem = _problem(data)
    first = solve(problem).solver
    _break_backend(monkeypatch, "selection", first, RuntimeError("segfault-ish"))
    res = solve(problem)
    assert res.status.value == "optimal" and f"{first} failed (RuntimeError: segfault-ish)" in res.message
    path = tmp_path / "i.json"
    path.write_text(json.dumps(data))
    cli = run("solve", path, "--solver", first)
    assert cli.exit_code == 1
    assert cli.stderr.strip() == f"error: solver {first} failed (RuntimeError: segfault-ish)"


def test_every_backend_missing(monkeypatch, tmp_path):
    from planner import registry
    from planner.status import SolverUnavailable

    for name in registry.backend_names("budget"):
        _break_backend(monkeypatch, "budget", name, SolverUnavailable(f"{name} is not installed"))
    res = run("solve", INSTANCES / "budget_table.json")
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert line.startswith("error: no backend could solve this instance: ") and line.count("\n") == 0


def test_atomic_write_sweeps_temporaries_of_killed_writers(tmp_path):
    """A SIGKILL inside an atomic write leaves a hidden temporary file; the next write of the same
    file removes it once its writer is gone, and leaves the files of live writers alone."""
    from planner.io import atomic_write_text

    dead = subprocess.Popen(["true"])
    dead.wait()
    old = time.time() - 3600
    stale = tmp_path / f".out.json.{dead.pid}.abc123.tmp"
    live = tmp_path / f".out.json.{os.getppid()}.def456.tmp"      # a running process (our parent)
    fresh = tmp_path / f".out.json.{dead.pid}.ghi789.tmp"         # too recent to judge
    other = tmp_path / f".other.json.{dead.pid}.jkl012.tmp"       # another file's
    for p in (stale, live, fresh, other):
        p.write_text("partial")
    for p in (stale, live, other):
        os.utime(p, (old, old))
    atomic_write_text(tmp_path / "out.json", "{}\n")
    assert (tmp_path / "out.json").read_text() == "{}\n"
    assert not stale.exists()
    assert live.exists() and fresh.exists() and other.exists()


def _open_store(path, queue, barrier):
    from planner.store import Store

    try:
        barrier.wait(10)
        store = Store(path)
        store.done("x")
        store.close()
        queue.put("")
    except Exception as exc:  # reported to the parent
        queue.put(repr(exc))


def test_two_processes_opening_a_new_store_at_once(tmp_path):
    """Switching a new file to WAL and creating the tables while another process does the same can meet a
    lock that SQLite does not wait on; the store retries, so neither process fails (without the retry
    about half of the rounds failed)."""
    import multiprocessing as mp

    import planner.store  # noqa: F401  (imported before the fork, so both children start together)

    ctx = mp.get_context("fork")
    errors = []
    for i in range(30):
        path = str(tmp_path / f"s{i}.db")
        queue, barrier = ctx.Queue(), ctx.Barrier(2)
        procs = [ctx.Process(target=_open_store, args=(path, queue, barrier)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        errors += [e for e in (queue.get(timeout=10) for _ in procs) if e]
    assert errors == []
