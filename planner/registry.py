"""The declared registry: every problem kind, its backends and its ``auto`` order, as data.

One literal table (``KINDS``) says which problem class reads each ``kind``, which backends solve it
(in the module that holds each), which Python packages a backend needs ("installed?"), and how
``--solver auto`` orders them. Nothing registers itself on import: modules are imported when a
kind or backend is first used, so importing this module is cheap and has no import circles.

To add a backend: write ``solve_x(problem, time_limit, options) -> SolveResult`` in the kind's
package and add one ``Backend`` row below (and, if ``auto`` should try it, a name in the chooser).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable


@dataclass(frozen=True)
class Backend:
    name: str
    target: str  # "module:function" with the signature (problem, time_limit, options) -> SolveResult
    requires: tuple[str, ...] = ()  # import names of the packages it needs
    exact: bool = True  # proves optimality when it finishes (heuristics: False)
    about: str = ""


@dataclass(frozen=True)
class Kind:
    kind: str
    problem: str  # "module:Class" of the frozen problem dataclass
    backends: tuple[Backend, ...]


def choose_selection(problem) -> list[str]:
    """Brute force while it is instant, then the MILP, then CP-SAT."""
    free = problem.k - len(problem.must_include) - len(problem.exclude)
    return ["brute", "highs", "cpsat"] if free <= 12 else ["highs", "cpsat"]


def choose_grouping(problem) -> list[str]:
    """Exact backends first; heuristics only where nothing exact can run."""
    if problem.n <= 8 and (not problem.derived or problem.derived_count() <= 5_000):
        return ["brute", "highs", "cpsat", "local"]
    return ["highs", "cpsat", "local", "spectral"]


def choose_budget(problem) -> list[str]:
    """The exact dynamic program for separable objectives; outer approximation when coupled."""
    return ["dp", "highs", "brute"] if problem.separable else ["highs", "brute"]


_PYOMO_HIGHS = ("pyomo", "highspy")

KINDS: dict[str, Kind] = {
    "selection": Kind(
        "selection",
        "planner.selection.problem:SelectionProblem",
        (
            Backend("brute", "planner.selection.brute:solve_brute", (), True, "enumerate every subset (up to 22 free sources)"),
            Backend("highs", "planner.selection.highs:solve_highs", _PYOMO_HIGHS, True, "McCormick MILP, Pyomo + HiGHS"),
            Backend("cpsat", "planner.selection.cpsat:solve_cpsat", ("ortools",), True, "OR-Tools CP-SAT on a scaled objective"),
        ),
    ),
    "grouping": Kind(
        "grouping",
        "planner.grouping.problem:GroupingProblem",
        (
            Backend("brute", "planner.grouping.brute:solve_brute", (), True, "enumerate groupings (N <= 10)"),
            Backend("highs", "planner.grouping.highs:solve_highs", _PYOMO_HIGHS, True,
                    "facility location / set partitioning / column generation with HiGHS"),
            Backend("cpsat", "planner.grouping.cpsat:solve_cpsat", ("ortools",), True, "OR-Tools CP-SAT"),
            Backend("local", "planner.grouping.heuristic:solve_local", (), False, "local search, with its gap"),
            Backend("spectral", "planner.grouping.heuristic:solve_spectral", (), False, "spectral clustering, with its gap"),
        ),
    ),
    "budget": Kind(
        "budget",
        "planner.budget.problem:BudgetProblem",
        (
            Backend("dp", "planner.budget.dp:solve_dp", (), True, "exact dynamic program (separable objectives)"),
            Backend("highs", "planner.budget.highs:solve_highs", _PYOMO_HIGHS, True, "outer approximation with HiGHS"),
            Backend("brute", "planner.budget.brute:solve_brute", (), True, "enumerate allocations (small instances)"),
        ),
    ),
}

AUTO: dict[str, Callable[[Any], list[str]]] = {
    "selection": choose_selection,
    "grouping": choose_grouping,
    "budget": choose_budget,
}


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def kind_names() -> list[str]:
    return sorted(KINDS)


@lru_cache(maxsize=None)
def problem_class(kind: str) -> type:
    return _load(KINDS[kind].problem)


def backend_names(kind: str) -> list[str]:
    return [b.name for b in KINDS[kind].backends]


def solver_choices() -> list[str]:
    """Every backend name of any kind, ``auto`` first (the CLI's ``--solver`` choices)."""
    names: list[str] = []
    for spec in KINDS.values():
        names += [b.name for b in spec.backends if b.name not in names]
    return ["auto", *names]


def backend_spec(kind: str, name: str) -> Backend | None:
    return next((b for b in KINDS[kind].backends if b.name == name), None)


def is_installed(backend: Backend) -> bool:
    return all(importlib.util.find_spec(mod) is not None for mod in backend.requires)


def installed_backends(kind: str) -> list[str]:
    return [b.name for b in KINDS[kind].backends if is_installed(b)]


@lru_cache(maxsize=None)
def backend(kind: str, name: str) -> Callable:
    spec = backend_spec(kind, name)
    if spec is None:
        raise KeyError(name)
    return _load(spec.target)


def auto_order(problem) -> list[str]:
    known = backend_names(problem.kind)
    return [n for n in AUTO[problem.kind](problem) if n in known]
