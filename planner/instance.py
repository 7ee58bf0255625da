"""Instance files: parse and validate a JSON/YAML mapping into the frozen dataclass of its kind."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from planner.checks import Checker
from planner.io import read_data_file
from planner import registry
from planner.status import InstanceError


def parse_instance(data: Any, source: str = "", default_name: str | None = None):
    """Validate a parsed mapping and return the problem object of its kind."""
    check = Checker(source)
    data = check.mapping(data, "")
    if "schema" not in data:
        check.fail("schema", "missing required key (use schema: 1)")
    if isinstance(data["schema"], bool) or data["schema"] != 1:
        check.fail("schema", f"unsupported schema {data['schema']!r} (this version reads schema 1)")
    if "kind" not in data:
        check.fail("kind", f"missing required key (one of {', '.join(registry.kind_names())})")
    kind = check.string(data["kind"], "kind", choices=registry.kind_names())
    if "name" not in data or data["name"] is None:
        data = dict(data)
        data["name"] = default_name or "instance"
    else:
        check.string(data["name"], "name")
    return registry.problem_class(kind).from_dict(data, check)


def load_instance(path: str | os.PathLike):
    """Read, parse and validate one instance file; every problem is an InstanceError (one line)."""
    data = read_data_file(path)
    return parse_instance(data, source=str(path), default_name=_stem(path))


def _stem(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in (".json", ".yaml", ".yml"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


__all__ = ["parse_instance", "load_instance", "InstanceError"]
