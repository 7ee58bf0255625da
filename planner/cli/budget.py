"""Budget commands for the ``planner`` CLI: ``whatif`` (a sweep of label budgets) and ``budget``
(estimate a budget instance from a data file, then solve it).

Commands stay thin: parse, call one library function, write. Errors are one line on stderr with the
contract's exit code (``planner.cli.options.handle_errors``); files are written atomically and only
when every budget got a plan.
"""
from __future__ import annotations

import sys

import click

from planner.cli.options import (
    CLIError,
    data_options,
    handle_errors,
    json_option,
    load_data,
    run_settings,
    show_notes,
    solver_option,
    store_options,
    time_limit_option,
    train_config,
    train_options,
)
from planner import __version__
from planner.cli.output import Progress, emit_result


def _budgets(ctx, param, value):
    from planner.budget.whatif import BudgetRangeError, parse_budgets

    try:
        return parse_budgets(value)
    except BudgetRangeError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("whatif")
@click.argument("instance", type=click.Path(dir_okay=False))
@click.option("--budgets", required=True, callback=_budgets, metavar="START:STOP:STEP",
              help="Budgets to sweep, START to STOP (included when hit) in steps of STEP, in money.")
@solver_option("budget", help="auto: one DP pass for separable instances, HiGHS per budget for coupled ones.")
@time_limit_option(help="Seconds per budget (the one-pass DP gets the total); Ctrl-C stops early with the "
                        "budgets solved so far.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), default=None,
              help="Write a CSV: budget, objective, one column of labels per task.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG: the optimum against budget, with the allocation stacked.")
@json_option
@handle_errors
def whatif_command(instance, budgets, solver, time_limit, csv_out, plot_out, as_json):
    """The exact optimum and allocation of a budget INSTANCE at every budget of a range."""
    from planner.instance import load_instance
    from planner.io import atomic_write_bytes, atomic_write_text, dumps_json
    from planner.status import InstanceError
    from planner.budget.whatif import plot_png, whatif

    from planner.io import check_outputs

    check_outputs({"--csv": csv_out, "--plot": plot_out}, {"INSTANCE": instance})
    problem = load_instance(instance)
    if problem.kind != "budget":
        raise InstanceError(instance, "kind", f"whatif sweeps budget instances, this one is {problem.kind!r}")
    from planner import interrupt

    with interrupt.catching():  # Ctrl-C: the budget being solved reports its best, the rest get no plan
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


@click.command("budget")
@data_options
@store_options
@train_options
@click.option("--costs", required=True, metavar="TASK=C,...",
              help="Cost of one label per task, e.g. 'a=1,b=2.5'; '*=C' for every task not named. "
                   "Only the tasks given (all with '*') are planned for.")
@click.option("--budget", "money", required=True, type=click.FloatRange(min=0), help="Money to spend on labels.")
@click.option("--initial", type=click.IntRange(4), default=50, show_default=True,
              help="Labelled training rows per task to start from (seeded); the rest are held back, to be bought.")
@click.option("--points", type=click.IntRange(2), default=5, show_default=True,
              help="Learning-curve points per task (label counts within the initial pool).")
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True,
              help="Models per curve point and per probe (other row orders and seeds).")
@click.option("--curve-model", type=click.Choice(["auto", "geometric", "power"]), default="auto", show_default=True,
              help="Information model; auto keeps, per task, the fit with the smaller error.")
@click.option("--relatedness/--no-relatedness", default=True, show_default=True,
              help="Probe joint training of every pair of tasks (labels of one task counting for another).")
@click.option("--max-relatedness", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Most that one label of a task may count for another.")
@solver_option("budget")
@time_limit_option
@click.option("--instance-out", type=click.Path(dir_okay=False), default=None, help="Write the estimated instance here.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the result object here (when solved).")
@json_option
@handle_errors
def budget_command(data_source, task_column, label_column, regression, seed, train, store, executor, models_per_batch, costs, money, initial, points, repeats,
                   curve_model, relatedness, max_relatedness, solver, time_limit, instance_out, out, as_json):
    """Estimate a label-budget instance from a data file and solve it (TABA).

    Each task starts with --initial labelled training rows; buying a label reveals one more of its
    held-back training rows. Learning curves within the initial pools (validation loss; --loss auto
    is cross-entropy for classes here) give each task's fitted information model; joint-training probes give the relatedness. The plan is
    compared with equal money, equal count, everything to one task and greedy.
    """
    from pathlib import Path

    from planner.budget.estimate import BudgetEstimateSettings, estimate_budget, parse_costs
    from planner.instance import parse_instance
    from planner.io import write_instance
    from planner.report import result_summary, weight_warnings
    from planner.solve import solve as run_solve

    # cross-entropy for classes: a floor at 0 caps the fitted curves (the negative margin has none)
    config = train_config(train, auto_loss=None if regression else "ce")
    for path in (instance_out, out):
        if path and not Path(path).resolve().parent.is_dir():
            raise CLIError(f"{path}: folder {Path(path).resolve().parent} does not exist", 1)
    from planner.io import check_outputs

    check_outputs({"--instance-out": instance_out, "-o": out}, {"--data": data_source, "--store": store})
    data = load_data(data_source, task_column, label_column, regression, seed)
    try:
        cost_map = parse_costs(costs, data.task_names)
    except ValueError as exc:
        raise CLIError(f"--costs: {exc}", 2) from None
    settings = BudgetEstimateSettings(initial=initial, points=points, repeats=repeats, model=curve_model,
                                      relatedness=relatedness, max_relatedness=max_relatedness, seed=seed)
    show_notes(data)
    bar = Progress("training curve and probe models")
    try:
        est = estimate_budget(data, list(cost_map), settings, config, bar, bar.total, store or ":memory:", executor,
                              models_per_batch)
    finally:
        bar.close()
    for note in est.notes:
        click.echo(f"note: {note}", err=True)
    name = Path(instance_out).stem if instance_out else "estimated_budget"
    source = {"source": data_source, "task_column": task_column, "label_column": label_column,
              "regression": regression, "seed": seed, "train": config.to_dict()}
    instance = est.instance_dict(name, money, cost_map, meta={"data": source})
    if instance_out:
        write_instance(instance_out, instance)
    problem = parse_instance(instance, "estimated instance")
    result = run_solve(problem, solver=solver, time_limit=time_limit)
    payload = result.to_dict(problem.name, problem.kind)
    summary = [] if as_json else _estimate_lines(est) + result_summary(problem, payload)
    warnings = weight_warnings({t.id: t.weight for t in problem.tasks})  # the text summary shows them too
    if as_json:
        payload["estimate"] = est.to_dict()
        if warnings:
            payload["warnings"] = [w.removeprefix("warning: ") for w in warnings]
    payload.setdefault("settings", run_settings())  # the library's own settings, where it reports them, win
    payload.setdefault("version", __version__)
    emit_result(payload, as_json, out, summary)
    if instance_out and not as_json:
        click.echo(f"wrote {instance_out}", err=True)
    code = result.status.exit_code
    if code:
        if not as_json:
            click.echo(f"status: {payload['status']}" + (f" ({result.message})" if result.message else ""), err=True)
        sys.exit(code)


def _estimate_lines(est) -> list[str]:
    """The fitted curves (one row per task) and the relatedness matrix, for people."""
    head = ["task", "pool", "held", "model", "parameters", "weight", "rmse geo", "rmse pow"]
    rows = []
    for tid in est.tasks:
        c = est.curves[tid]
        info = c.info
        params = (f"beta={info['beta']:.4g}" if info["model"] == "geometric" else f"a={info['a']:.4g} b={info['b']:.4g}")
        rmse = [f"{c.fits[m]['rmse']:.3g}" if "rmse" in c.fits[m] else "-" for m in ("geometric", "power")]
        rows.append([tid, str(c.pool), str(c.held), c.chosen, params, f"{c.scale:.4g}", *rmse])
    widths = [max(len(r[k]) for r in rows + [head]) for k in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
    if est.relatedness is not None:
        nonzero = [(est.tasks[i], est.tasks[j], v) for i, row in enumerate(est.relatedness)
                   for j, v in enumerate(row) if i != j and v > 0]
        lines.append("relatedness: " + (", ".join(f"{b}->{a} {v:.3g}" for a, b, v in nonzero) if nonzero
                                        else "none measured above noise"))
    lines.append(f"estimated from {est.trained} models in {est.seconds:.1f} s")
    return lines



def _print_table(result) -> None:
    from planner.budget.whatif import _num
    from planner.report import collapse_zero_rows

    ids = list(result.task_ids)
    head = ["budget", "objective", *ids]
    rows = []
    for b, obj, alloc in zip(result.budgets, result.objectives, result.allocations):
        rows.append([_num(b), "-" if obj is None else f"{obj:.6g}", *(["-"] * len(ids) if alloc is None else
                                                                         [str(alloc[t]) for t in ids])])
    rows = collapse_zero_rows(rows)  # budgets that buy nothing: one row
    widths = [max(len(r[k]) for r in rows + [head]) for k in range(len(head))]
    for r in [head] + rows:
        click.echo("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    how = "one DP pass" if result.one_pass else f"{len(result.budgets)} solves ({result.solver})"
    click.echo(f"# {len(result.budgets)} budgets, {how}, {result.seconds:.3f} s", err=True)
