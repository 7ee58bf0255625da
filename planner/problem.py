"""What every problem kind provides (the registry that maps ``kind`` to its class is
:mod:`planner.registry`).

A kind module defines a frozen dataclass with

* ``kind`` (class attribute) and ``name``, ``sense`` ("min" or "max");
* ``from_dict(data, checker) -> Problem`` (classmethod): validate a parsed file;
* ``to_dict() -> dict``: the instance file's mapping again (``schema`` and ``kind`` included);
* ``evaluate(solution) -> float``: recompute the objective of a solution in plain Python,
  raising :class:`planner.status.InfeasibleSolution` when it breaks a constraint;
* ``task_ids`` (tuple of every task id in the instance).

and is named in :data:`planner.registry.KINDS`, with its backends.
"""
from __future__ import annotations

from typing import Any, Protocol

from planner.checks import Checker


class Problem(Protocol):
    kind: str
    name: str
    sense: str

    @classmethod
    def from_dict(cls, data: dict, checker: Checker) -> "Problem": ...

    def to_dict(self) -> dict[str, Any]: ...

    def evaluate(self, solution: dict[str, Any]) -> float: ...


COMMON_KEYS = ("schema", "kind", "name", "tasks", "description", "meta")
