"""``planner solve`` and ``planner validate``: one instance file of any kind."""
from __future__ import annotations

import sys
import time

import click

from planner.cli.options import handle_errors, json_option, solver_option, time_limit_option
from planner.cli.output import emit_result


@click.command()
@click.argument("instance", type=click.Path(dir_okay=False))
@solver_option(help="Backend: auto picks the best available one for the instance; dp is for budgets, "
                    "local and spectral are grouping heuristics (reported with their gap).")
@time_limit_option
@json_option
@click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the result object to this file (atomically, only when solved).")
@handle_errors
def solve(instance, solver, time_limit, as_json, out):
    """Solve one INSTANCE file (JSON or YAML) of any kind and report the plan."""
    from planner.instance import load_instance
    from planner.report import result_summary
    from planner.solve import solve as run_solve

    from planner.io import check_outputs
    from planner.solve import remaining

    check_outputs({"-o": out}, {"INSTANCE": instance})
    started = time.perf_counter()
    problem = load_instance(instance)  # the time limit covers reading and validating the file too
    result = run_solve(problem, solver=solver, time_limit=remaining(time_limit, started))
    payload = result.to_dict(problem.name, problem.kind)
    emit_result(payload, as_json, out, result_summary(problem, payload))
    code = result.status.exit_code
    if code:
        if not as_json:
            click.echo(f"status: {payload['status']}" + (f" ({result.message})" if result.message else ""), err=True)
        sys.exit(code)


@click.command()
@click.argument("instance", type=click.Path(dir_okay=False))
@handle_errors
def validate(instance):
    """Check an INSTANCE file; print what is wrong (file, field, why) or a one-line summary."""
    from planner.instance import load_instance
    from planner.report import instance_summary

    problem = load_instance(instance)
    from planner.status import printable

    click.echo(printable(f"{instance}: ok: {instance_summary(problem)}"))
