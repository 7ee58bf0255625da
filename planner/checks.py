"""Small validators shared by the three instance kinds.

Every failure raises :class:`InstanceError` with the file, a dotted field path
(``constraints.costs.a``) and a short reason, so a user gets one clear line.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from planner.status import InstanceError

_MISSING = object()


class Checker:
    """Validates values read from one source file (``source`` names it in every message)."""

    def __init__(self, source: str = ""):
        self.source = source

    def fail(self, field: str, why: str) -> "None":
        raise InstanceError(self.source, field, why)

    # -- containers --------------------------------------------------------
    def mapping(self, value: Any, field: str) -> dict:
        if not isinstance(value, Mapping):
            self.fail(field, f"must be a mapping (object), got {type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail(field, f"keys must be strings, got {type_name(key)} {key!r}")
        return dict(value)

    def keys(self, value: Mapping, field: str, required: Iterable[str] = (), optional: Iterable[str] = ()) -> None:
        required = list(required)
        allowed = set(required) | set(optional)
        for key in value:
            if key not in allowed:
                where = f"{field}.{key}" if field else key
                self.fail(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                where = f"{field}.{key}" if field else key
                self.fail(where, "missing required key")

    def sequence(self, value: Any, field: str, min_len: int = 0) -> list:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            self.fail(field, f"must be a list, got {type_name(value)}")
        if len(value) < min_len:
            self.fail(field, f"must have at least {min_len} item{'s' if min_len != 1 else ''}, got {len(value)}")
        return list(value)

    # -- scalars -----------------------------------------------------------
    def number(
        self,
        value: Any,
        field: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
        hi_open: bool = False,
        integer: bool = False,
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(field, f"must be a number, got {type_name(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(field, f"must be finite, got {value}")
        if isinstance(value, int) and abs(value) > 1e300:
            self.fail(field, "is too large")
        x = float(value) if not integer else value
        if integer:
            if isinstance(value, float):
                if not value.is_integer():
                    self.fail(field, f"must be a whole number, got {value}")
                x = int(value)
        if abs(float(x)) > 1e15:
            self.fail(field, f"magnitude {float(x):.3g} is too large (limit 1e15)")
        if lo is not None and (x <= lo if lo_open else x < lo):
            self.fail(field, f"must be {'>' if lo_open else '>='} {lo:g}, got {value}")
        if hi is not None and (x >= hi if hi_open else x > hi):
            self.fail(field, f"must be {'<' if hi_open else '<='} {hi:g}, got {value}")
        return x

    def integer(self, value: Any, field: str, *, lo: int | None = None, hi: int | None = None) -> int:
        return int(self.number(value, field, lo=lo, hi=hi, integer=True))

    def string(self, value: Any, field: str, *, choices: Iterable[str] | None = None) -> str:
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {type_name(value)}")
        if choices is not None:
            choices = list(choices)
            if value not in choices:
                self.fail(field, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def task_id(self, value: Any, field: str) -> str:
        """Task ids are non-empty strings; whole numbers are accepted and read as their decimal text."""
        if isinstance(value, bool):
            self.fail(field, f"task id must be a string, got {type_name(value)}")
        if isinstance(value, int):
            return str(value)
        if not isinstance(value, str):
            self.fail(field, f"task id must be a string, got {type_name(value)}")
        if not value.strip():
            self.fail(field, "task id must not be empty")
        if len(value) > 200:
            self.fail(field, "task id is longer than 200 characters")
        return value

    def known(self, task: str, known: Iterable[str] | set, field: str) -> str:
        if task not in known:
            self.fail(field, f"unknown task id {task!r}")
        return task

    def unique_ids(self, values: Iterable[Any], field: str) -> list[str]:
        ids: list[str] = []
        seen: set[str] = set()
        for i, raw in enumerate(values):
            tid = self.task_id(raw, f"{field}[{i}]")
            if tid in seen:
                self.fail(f"{field}[{i}]", f"duplicate task id {tid!r}")
            seen.add(tid)
            ids.append(tid)
        return ids


    def task_entries(self, raw: Any, field: str, optional: Iterable[str] = (), min_len: int = 0
                     ) -> list[tuple[str, dict, str]]:
        """An instance's ``tasks`` list: each entry a task id or an object ``{"id": ..., <optional keys>}``;
        ids unique. Returns ``(id, the entry's object or {}, its field name)`` per entry, in order."""
        out: list[tuple[str, dict, str]] = []
        seen: set[str] = set()
        for i, item in enumerate(self.sequence(raw, field, min_len=min_len)):
            where = f"{field}[{i}]"
            if isinstance(item, Mapping):
                item = self.mapping(item, where)
                self.keys(item, where, required=("id",), optional=tuple(optional))
                tid = self.task_id(item["id"], f"{where}.id")
            else:
                tid, item = self.task_id(item, where), {}
            if tid in seen:  # a set: linear in the number of tasks
                self.fail(where, f"duplicate task id {tid!r}")
            seen.add(tid)
            out.append((tid, item, where))
        return out


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__
