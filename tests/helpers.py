"""Small helpers shared by the test modules."""
from __future__ import annotations

import copy

DELETE = object()  # as a value for edited(): remove the key instead


def edited(base: dict, path: tuple, value) -> dict:
    """A deep copy of ``base`` with the item at ``path`` (keys/indices) set to ``value``, or removed."""
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def write_tasks_csv(data, path, task_column: str = "task", label_column: str = "y", label_names=None):
    """``data`` (a TaskData) as the CSV the CLI reads: its features, a task column of task names and a
    label column (``label_names[y]`` where given, else the label itself). Returns ``path``."""
    lines = [",".join([task_column, *data.feature_names, label_column])]
    for x, t, y in zip(data.X, data.task, data.y):
        label = label_names[int(y)] if label_names is not None else y
        lines.append(",".join([data.task_names[t], *(f"{v:.5f}" for v in x), str(label)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args, **kw):
    """``planner`` with ``args`` (each turned into text) through click's test runner."""
    from click.testing import CliRunner

    from planner.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def assert_same_result(a, b, tol: float = 2e-5) -> None:
    """Two ``SubsetResult`` of the same model from two trainers: the same subset, seed, schedule, rows and
    device, and f, every member's validation loss and every test metric within ``tol``."""
    import pytest

    assert a.subset == b.subset and a.seed == b.seed and a.epochs == b.epochs and a.best_epoch == b.best_epoch
    assert a.n_train == b.n_train and a.device == b.device
    assert a.f == pytest.approx(b.f, abs=tol)
    assert a.val_losses.keys() == b.val_losses.keys()
    for k in a.val_losses:
        assert a.val_losses[k] == pytest.approx(b.val_losses[k], abs=tol)
    assert a.test.keys() == b.test.keys()
    for k in a.test:
        assert a.test[k] == pytest.approx(b.test[k], abs=tol)


def store_row_count(db) -> int:
    """Runs in the store file ``db``, read-only (0 while it does not exist or cannot be read yet)."""
    import sqlite3
    from pathlib import Path

    if not Path(db).exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0
