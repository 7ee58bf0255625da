"""``planner demo``: the main job on embedded default data."""
from __future__ import annotations

from pathlib import Path

import click


def run_demo() -> None:
    """Solve the example instances shipped in instances/ and print each plan."""
    from planner.instance import load_instance
    from planner.report import result_summary
    from planner.solve import solve

    root = Path(__file__).resolve().parent.parent / "instances"
    files = sorted(p for p in root.glob("*") if p.suffix in (".json", ".yaml", ".yml"))
    for path in files:
        problem = load_instance(path)
        result = solve(problem)
        for line in result_summary(problem, result.to_dict(problem.name, problem.kind)):
            click.echo(line)
        click.echo("")
