"""Converters from published task-grouping result tables into grouping instance files.

* :func:`standley_instance` - Standley et al. 2020 ``network_selection/results*.txt``;
* :func:`mtgnet_instance` - MTG-Net (Song et al. 2022) ``*_x.csv`` masks with ``*_y.csv`` gains;
* :func:`tag_instance` - TAG (Fifty et al. 2021) affinity / HOA matrices from a JSON file.

Each returns an instance mapping (``schema: 1``, kind ``grouping``); every problem with the input
is an :class:`InstanceError` naming the file, the line or key, and why.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

from planner.io import read_data_file
from planner.status import InstanceError

STANDLEY_TASKS = ("s", "d", "n", "k", "e")
MAX_TABLE_BYTES = 64 * 1024 * 1024


def _read_text(path) -> str:
    path = Path(path)
    try:
        if path.is_dir():
            raise InstanceError(str(path), "", "is a directory, not a file")
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise InstanceError(str(path), "", "file is larger than 64 MiB")
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InstanceError(str(path), "", "file not found") from None
    except UnicodeDecodeError:
        raise InstanceError(str(path), "", "not UTF-8 text") from None
    except OSError as exc:
        raise InstanceError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    if not text.strip():
        raise InstanceError(str(path), "", "file is empty")
    return text


def _number(text: str, source: str, where: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise InstanceError(source, where, f"not a number: {text!r}") from None
    if not math.isfinite(x):
        raise InstanceError(source, where, f"must be finite, got {text!r}")
    return x


def _task_names(tasks: Sequence[str] | str | None, n: int, default: Sequence[str], source: str) -> list[str]:
    if tasks is None:
        names = list(default)
    elif isinstance(tasks, str):
        names = [t.strip() for t in tasks.split(",") if t.strip()]
    else:
        names = [str(t) for t in tasks]
    if len(names) != n:
        raise InstanceError(source, "tasks", f"{len(names)} task names given for {n} columns")
    if len(set(names)) != len(names):
        raise InstanceError(source, "tasks", "task names must be distinct")
    return names


# ---------------------------------------------------------------------- Standley et al. 2020
def read_standley(path, tasks: Sequence[str] | str | None = None) -> tuple[list[str], list[dict]]:
    """Candidates of a Standley results table: line 1 the half-size single-task networks (cost 0.5),
    then one full-size network (cost 1) per line; a blank field means the task is not in it."""
    source = str(path)
    lines = [ln.rstrip("\r\n") for ln in _read_text(path).split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 2:
        raise InstanceError(source, "line 2", "expected the half-size line and at least one network line")
    width = len(lines[0].split("\t"))
    names = _task_names(tasks, width, STANDLEY_TASKS if width == 5 else [f"t{i}" for i in range(width)], source)
    cands: list[dict] = []
    for lineno, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) > width:
            if any(f.strip() for f in fields[width:]):
                raise InstanceError(source, f"line {lineno}", f"{len(fields)} fields, expected {width}")
            fields = fields[:width]
        fields += [""] * (width - len(fields))
        members, value = [], {}
        for j, f in enumerate(fields):
            if f.strip():
                members.append(names[j])
                value[names[j]] = _number(f.strip(), source, f"line {lineno} column {j + 1}")
        if lineno == 1:
            if len(members) != width:
                raise InstanceError(source, "line 1", "the half-size line needs a loss for every task")
            for t in members:
                cands.append({"id": f"half:{t}", "members": [t], "value": {t: value[t]}, "resources": {"inference": 0.5}})
            continue
        if not members:
            raise InstanceError(source, f"line {lineno}", "a network line with no task")
        cands.append({"id": "+".join(members), "members": members, "value": value, "resources": {"inference": 1.0}})
    ids = [c["id"] for c in cands]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise InstanceError(source, "", f"the network {sorted(dup)[0]!r} appears twice")
    return names, cands


def standley_instance(path, budget: float, tasks=None, name: str | None = None) -> dict[str, Any]:
    """Choose networks with total inference cost <= budget minimising the sum over tasks of the
    best chosen network's loss (Standley et al. 2020, section 3)."""
    if not math.isfinite(budget) or budget < 0:
        raise InstanceError(str(path), "budget", f"must be a non-negative number, got {budget}")
    names, cands = read_standley(path, tasks)
    return {
        "schema": 1,
        "kind": "grouping",
        "name": name or f"{Path(path).stem}_b{budget:g}",
        "description": f"Standley et al. 2020 network selection from {Path(path).name}, inference budget {budget:g}",
        "sense": "min",
        "aggregate": "sum",
        "mode": "cover",
        "tasks": names,
        "candidates": cands,
        "constraints": {"budgets": [{"resource": "inference", "max": float(budget)}]},
        "meta": {"source": Path(path).name, "format": "standley2020"},
    }


# ---------------------------------------------------------------------- MTG-Net
def _read_matrix(path) -> list[list[float]]:
    source = str(path)
    rows = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        rows.append([_number(p, source, f"line {lineno} column {j + 1}") for j, p in enumerate(parts)])
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise InstanceError(source, f"row {i + 1}", f"{len(row)} columns, expected {width}")
    return rows


def mtgnet_instance(x_path, y_path, max_groups: int, tasks=None, name: str | None = None) -> dict[str, Any]:
    """Pick at most ``max_groups`` trained task combinations (rows of X, gains in Y) maximising the
    sum over tasks of the gain of the best picked combination containing the task (MTG-Net)."""
    if isinstance(max_groups, bool) or int(max_groups) < 1:
        raise InstanceError(str(x_path), "max_groups", f"must be at least 1, got {max_groups}")
    X = _read_matrix(x_path)
    Y = _read_matrix(y_path)
    if len(X) != len(Y):
        raise InstanceError(str(y_path), "", f"{len(Y)} rows, but {Path(x_path).name} has {len(X)}")
    if len(X[0]) != len(Y[0]):
        raise InstanceError(str(y_path), "", f"{len(Y[0])} columns, but {Path(x_path).name} has {len(X[0])}")
    n = len(X[0])
    names = _task_names(tasks, n, [f"t{i}" for i in range(n)], str(x_path))
    cands = []
    for r, (mask, gains) in enumerate(zip(X, Y)):
        if any(v not in (0.0, 1.0) for v in mask):
            raise InstanceError(str(x_path), f"row {r + 1}", "a task mask holds only 0 and 1")
        members = [names[j] for j in range(n) if mask[j] == 1.0]
        if not members:
            raise InstanceError(str(x_path), f"row {r + 1}", "a combination with no task")
        cands.append({"id": f"r{r + 1}", "members": members, "value": {names[j]: gains[j] for j in range(n) if mask[j] == 1.0}})
    return {
        "schema": 1,
        "kind": "grouping",
        "name": name or f"{Path(y_path).stem}_k{int(max_groups)}",
        "description": f"MTG-Net network selection: {Path(x_path).name} with gains {Path(y_path).name}, at most {int(max_groups)} groups",
        "sense": "max",
        "aggregate": "sum",
        "mode": "cover",
        "tasks": names,
        "candidates": cands,
        "constraints": {"max_groups": int(max_groups)},
        "meta": {"source": [Path(x_path).name, Path(y_path).name], "format": "mtgnet"},
    }


# ---------------------------------------------------------------------- TAG
def tag_instance(json_path, key: str, max_groups: int, sense: str | None = None, rule: str | None = None,
                 name: str | None = None) -> dict[str, Any]:
    """Network selection from a TAG / HOA affinity matrix (``matrix[a][b]``: effect of b onto a):
    at most ``max_groups`` overlapping groups, each task served by its best group, objective the
    mean over tasks. ``TAG*`` keys use the ``tag`` rule (maximise), ``HOA*`` keys the ``hoa`` rule
    (pair losses: minimise unless ``sense`` says otherwise)."""
    source = str(json_path)
    data = read_data_file(json_path)
    if not isinstance(data, dict):
        raise InstanceError(source, "", "expected a JSON object of matrices")
    if key not in data:
        raise InstanceError(source, key, f"no such key (available: {', '.join(sorted(map(str, data)))})")
    entry = data[key]
    if not isinstance(entry, dict) or "matrix" not in entry:
        raise InstanceError(source, key, "expected an object with 'matrix'")
    matrix = entry["matrix"]
    if isinstance(matrix, dict):
        tasks = [str(t) for t in matrix]
        rows = []
        for a in tasks:
            row = matrix[a]
            if not isinstance(row, dict):
                raise InstanceError(source, f"{key}.matrix.{a}", "expected an object keyed by task")
            missing = [b for b in tasks if b not in row]
            if missing:
                raise InstanceError(source, f"{key}.matrix.{a}", f"no entry for task {missing[0]!r}")
            rows.append([row[b] for b in tasks])
    elif isinstance(matrix, list):
        tasks = [f"t{i}" for i in range(len(matrix))]
        rows = matrix
    else:
        raise InstanceError(source, f"{key}.matrix", "expected a square matrix")
    n = entry.get("n")
    if n is not None and n != len(tasks):
        raise InstanceError(source, f"{key}.n", f"says {n} tasks, the matrix has {len(tasks)}")
    if rule is None:
        rule = "hoa" if key.upper().startswith("HOA") else "tag"
    if sense is None:
        sense = "min" if rule == "hoa" else "max"
    if isinstance(max_groups, bool) or int(max_groups) < 1:
        raise InstanceError(source, "max_groups", f"must be at least 1, got {max_groups}")
    comment = entry.get("comment")
    return {
        "schema": 1,
        "kind": "grouping",
        "name": name or f"{key}_k{int(max_groups)}",
        "description": f"TAG network selection from {Path(json_path).name} [{key}]" + (f" {comment.strip('# ')}" if isinstance(comment, str) else ""),
        "sense": sense,
        "aggregate": "mean",
        "mode": "cover",
        "tasks": tasks,
        "affinity": {"matrix": rows, "convention": "onto", "diagonal": "ignore"},
        "group_value": rule,
        "constraints": {"max_groups": int(max_groups)},
        "meta": {"source": Path(json_path).name, "key": key, "format": "tag2021"},
    }
