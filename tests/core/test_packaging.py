"""Every third-party library the package imports is declared in pyproject.toml (a dependency or an extra)."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = {"yaml": "pyyaml", "sklearn": "scikit-learn"}  # import name -> distribution name where they differ
OWN = {"planner", "planner_models", "models"}


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [s for extra in project["optional-dependencies"].values() for s in extra]
    return {re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0].lower() for s in specs}


def test_every_imported_library_is_declared():
    third_party = {n for n in _imports(ROOT / "planner") | _imports(ROOT / "models")
                   if n not in OWN and n not in sys.stdlib_module_names}
    missing = sorted(n for n in third_party if DISTRIBUTION.get(n, n).lower() not in _declared())
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_torch_range_and_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch>=2.2,<3" in project["dependencies"]
    assert set(project["optional-dependencies"]) >= {"ray", "parquet", "dev"}
    assert not any(s.startswith("networkx") for s in project["dependencies"]) or "networkx" in _imports(ROOT / "planner")
