"""Budget commands for the ``planner`` CLI: ``whatif`` (a sweep of label budgets).

``planner.cli`` calls :func:`register` with its click group. Commands stay thin: parse, call one
library function (``planner.whatif.whatif``), write. Errors are one line on stderr with the
contract's exit code (``planner.cli.handle_errors``); files are written atomically and only when
every budget got a plan.
"""
from __future__ import annotations

import sys

import click


def _budgets(ctx, param, value):
    from planner.whatif import BudgetRangeError, parse_budgets

    try:
        return parse_budgets(value)
    except BudgetRangeError as exc:
        raise click.BadParameter(str(exc)) from None


def register(main: click.Group) -> None:
    from planner.cli import handle_errors

    @main.command("whatif")
    @click.argument("instance", type=click.Path(dir_okay=False))
    @click.option("--budgets", required=True, callback=_budgets, metavar="START:STOP:STEP",
                  help="Budgets to sweep, START to STOP (included when hit) in steps of STEP, in money.")
    @click.option("--solver", type=click.Choice(["auto", "dp", "highs", "brute"]), default="auto", show_default=True,
                  help="auto: one DP pass for separable instances, HiGHS per budget for coupled ones.")
    @click.option("--time-limit", type=click.FloatRange(min=0), default=None,
                  help="Seconds per budget (the one-pass DP gets the total).")
    @click.option("--csv", "csv_out", type=click.Path(dir_okay=False), default=None,
                  help="Write a CSV: budget, objective, one column of labels per task.")
    @click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
                  help="Write a PNG: the optimum against budget, with the allocation stacked.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
    @handle_errors
    def whatif_command(instance, budgets, solver, time_limit, csv_out, plot_out, as_json):
        """The exact optimum and allocation of a budget INSTANCE at every budget of a range."""
        from planner.instance import load_instance
        from planner.io import atomic_write_bytes, atomic_write_text, dumps_json
        from planner.status import InstanceError
        from planner.whatif import plot_png, whatif

        problem = load_instance(instance)
        if problem.kind != "budget":
            raise InstanceError(instance, "kind", f"whatif sweeps budget instances, this one is {problem.kind!r}")
        result = whatif(problem, budgets, solver=solver, time_limit=time_limit)
        code = result.exit_code
        if code == 0:
            # Render everything first, then write: a failure leaves no partial output behind.
            csv_text = result.csv_text() if csv_out else None
            png = plot_png(result) if plot_out else None
            if csv_out:
                atomic_write_text(csv_out, csv_text)
            if plot_out:
                atomic_write_bytes(plot_out, png)
        if as_json:
            click.echo(dumps_json(result.to_dict()), nl=False)
        else:
            _print_table(result)
        if result.messages:
            click.echo("note: " + "; ".join(result.messages), err=True)
        if code != 0:
            click.echo(f"error: some budgets have no plan (exit {code}); no files written", err=True)
            sys.exit(code)


def _print_table(result) -> None:
    from planner.whatif import _num

    ids = list(result.task_ids)
    head = ["budget", "objective", *ids]
    rows = []
    for b, obj, alloc in zip(result.budgets, result.objectives, result.allocations):
        rows.append([_num(b), "-" if obj is None else f"{obj:.6g}", *(["-"] * len(ids) if alloc is None else
                                                                         [str(alloc[t]) for t in ids])])
    widths = [max(len(r[k]) for r in rows + [head]) for k in range(len(head))]
    for r in [head] + rows:
        click.echo("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    how = "one DP pass" if result.one_pass else f"{len(result.budgets)} solves ({result.solver})"
    click.echo(f"# {len(result.budgets)} budgets, {how}, {result.seconds:.3f} s", err=True)
