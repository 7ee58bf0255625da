"""The package layout holds: no import circles, the core never imports a decision package or the CLI,
the training side never imports the planner, and a user's own ``models`` package shadows nothing."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DECISIONS = ("planner.selection", "planner.grouping", "planner.budget")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "models":
        parts[0] = "planner_models"
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of planner/ and models/ -> the project modules it imports (anywhere in the file)."""
    files = [p for folder in ("planner", "models") for p in (ROOT / folder).rglob("*.py")]
    names = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolved against this module's package
                    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{node.module}" if node.module else package
                else:
                    base = node.module or ""
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in names:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[0] == "planner" else parts[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_relative_imports_are_followed():
    graph = import_graph()
    assert "planner_models.schedule" in graph["planner_models.user_model"]


def test_the_cycle_finder_finds_a_planted_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_modules():
    graph = import_graph()
    assert len(graph) > 40
    # a package's __init__ re-exports its own modules: that is the package's face, not a circle
    pruned = {m: {d for d in deps if not (m.startswith(d + ".") and d in graph)} for m, deps in graph.items()}
    assert _cycles(pruned) == []


def test_no_import_circles_between_packages():
    graph = import_graph()
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        packages.setdefault(_package_of(module), set()).update(
            _package_of(d) for d in deps if _package_of(d) != _package_of(module))
    assert _cycles(packages) == []


def test_core_never_imports_a_decision_or_the_cli():
    graph = import_graph()
    core = [m for m in graph if m.startswith("planner.") and _package_of(m) == m and m.count(".") == 1
            and not m.startswith(DECISIONS + ("planner.cli",)) and m != "planner.__main__"]
    assert "planner.solve" in core and "planner.store" in core
    upward = {m: sorted(d for d in graph[m] if d.startswith(DECISIONS + ("planner.cli",))) for m in core}
    assert {m: d for m, d in upward.items() if d} == {}


def test_decisions_do_not_import_each_other_or_the_cli():
    graph = import_graph()
    for module, deps in graph.items():
        pkg = _package_of(module)
        if pkg in DECISIONS:
            bad = sorted(d for d in deps if _package_of(d) in DECISIONS + ("planner.cli",) and _package_of(d) != pkg)
            assert bad == [], module


def test_training_side_never_imports_the_planner():
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("planner_models"):
            assert not any(d == "planner" or d.startswith("planner.") for d in deps), module


def test_registry_targets_exist():
    from planner import registry

    for kind, spec in registry.KINDS.items():
        assert registry.problem_class(kind).kind == kind
        for b in spec.backends:
            assert callable(registry.backend(kind, b.name)), b.target
        assert set(registry.installed_backends(kind)) <= set(registry.backend_names(kind))


def test_a_users_models_package_shadows_nothing(tmp_path):
    """From a project folder with its own ``models`` package, the CLI and the Python API still work."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("raise ImportError('the user models package was imported')\n")
    (tmp_path / "models" / "data.py").write_text("raise ImportError('the user models.data was imported')\n")
    script = (
        "import json, sys\n"
        "sys.path.insert(0, '')\n"
        "from planner.instance import load_instance\n"
        "from planner.solve import solve\n"
        "from planner_models.data import synthetic_classification\n"
        "from planner_models.train import TrainConfig, train_subsets\n"
        f"p = load_instance({str(ROOT / 'instances' / 'selection_small.json')!r})\n"
        "r = solve(p)\n"
        "d = synthetic_classification(k=3, p=4, n_per_task=60, seed=0)\n"
        "res = train_subsets(d, 0, [(1,)], TrainConfig(epochs=2), [1])\n"
        "print(json.dumps({'status': r.status.value, 'f': float(res[0].f)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "optimal" and result["f"] == result["f"]
    cli = subprocess.run([sys.executable, "-m", "planner", "solve", str(ROOT / "instances" / "selection_small.json"),
                          "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["status"] == "optimal"
