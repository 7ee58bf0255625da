"""Grouping commands: ``planner convert standley|mtgnet|tag`` and ``planner group`` (affinities
estimated from training, solved, and checked by training the plan).

Each ``convert`` command parses, calls one converter in :mod:`planner.grouping.convert`, validates the
result as an instance, and writes it atomically (JSON, or YAML for .yaml/.yml); without ``-o`` it
prints the JSON on stdout. Bad input is one line on stderr with exit code 2.
"""
from __future__ import annotations

import click

from planner.cli.options import (
    CLIError,
    check_out_folder,
    data_options,
    handle_errors,
    json_option,
    load_data,
    show_notes,
    solver_option,
    store_options,
    run_settings,
    time_limit_option,
    train_config,
    train_options,
)
from planner import __version__
from planner.cli.output import Progress, wall_seconds
from planner.grouping.estimate import GroupSettings, parse_budget, report_table, resolve_tasks, run_group


def _check_converted(out: str | None, *inputs: str) -> None:
    from planner.io import check_outputs

    check_outputs({"-o": out}, {f"input {i + 1}": path for i, path in enumerate(inputs)})


def _write(data: dict, out: str | None) -> None:
    from planner.instance import parse_instance
    from planner.io import dumps_json, write_instance

    problem = parse_instance(data, source=out or "<converted>")  # the converted file must be valid
    if out:
        write_instance(out, data)
        click.echo(f"wrote {out}: {problem.n} tasks, {len(problem.candidates or ())} candidates", err=True)
    else:
        click.echo(dumps_json(data), nl=False)


@click.group("convert")
def convert() -> None:
    """Convert published task-grouping tables into grouping instance files."""

out_option = click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), default=None,
                          help="Write the instance here (atomically; .yaml/.yml for YAML), else print JSON.")
name_option = click.option("--name", default=None, help="Instance name (default: from the file name).")

@convert.command("standley")
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("--inference-budget", "budget", type=click.FloatRange(min=0), required=True,
              help="Inference-cost budget (a full network costs 1, a half-size single-task network 0.5).")
@click.option("--tasks", default=None, help="Comma-separated task names for the columns (default s,d,n,k,e).")
@name_option
@out_option
@handle_errors
def standley(results, budget, tasks, name, out):
    """Standley et al. 2020 RESULTS table (tab separated) -> cover instance within a budget."""
    from planner.grouping.convert import standley_instance

    _check_converted(out, results)
    _write(standley_instance(results, budget, tasks=tasks, name=name), out)

@convert.command("mtgnet")
@click.argument("x_csv", type=click.Path(dir_okay=False))
@click.argument("y_csv", type=click.Path(dir_okay=False))
@click.option("--max-groups", type=click.IntRange(min=1), required=True, help="At most K groups (networks).")
@click.option("--tasks", default=None, help="Comma-separated task names (default t0, t1, ...).")
@name_option
@out_option
@handle_errors
def mtgnet(x_csv, y_csv, max_groups, tasks, name, out):
    """MTG-Net task-combination masks X_CSV with gains Y_CSV -> cover instance with K groups."""
    from planner.grouping.convert import mtgnet_instance

    _check_converted(out, x_csv, y_csv)
    _write(mtgnet_instance(x_csv, y_csv, max_groups, tasks=tasks, name=name), out)

@convert.command("tag")
@click.argument("affinities", type=click.Path(dir_okay=False))
@click.option("--key", required=True, help="Which matrix of the file (e.g. TAGnb_0, HOAnb_1).")
@click.option("--max-groups", type=click.IntRange(min=1), required=True, help="At most K groups.")
@click.option("--sense", type=click.Choice(["min", "max"]), default=None,
              help="Default: max for TAG affinities, min for HOA pair losses.")
@click.option("--rule", type=click.Choice(["tag", "hoa"]), default=None,
              help="Group value rule (default from the key: HOA* -> hoa, else tag).")
@name_option
@out_option
@handle_errors
def tag(affinities, key, max_groups, sense, rule, name, out):
    """TAG / HOA affinity matrices (JSON) -> cover instance with at most K groups, mean over tasks."""
    from planner.grouping.convert import tag_instance

    _check_converted(out, affinities)
    _write(tag_instance(affinities, key, max_groups, sense=sense, rule=rule, name=name), out)


@click.command("group")
@data_options(required=False)
@click.option("--runs", "runs_file", type=click.Path(dir_okay=False), default=None, metavar="RUNS.jsonl",
              help="Affinities from group runs made elsewhere (each line's 'losses' holding every member's "
                   "validation loss) instead of training: estimate and solve only, no --data.")
@train_options
@click.option("--method", type=click.Choice(["subsets", "tag", "hoa"]), default=None,
              help="subsets: models on sampled task subsets; tag: lookahead in one model with every task; "
                   "hoa: single-task and pair models (required with --data; --runs means subsets).")
@click.option("--max-groups", type=click.IntRange(min=1), required=True, help="At most K groups (networks).")
@click.option("--mode", type=click.Choice(["cover", "partition"]), default=None,
              help="cover (groups may overlap, each task served by its best group) or partition. "
                   "Default: cover for tag and hoa, partition for subsets.")
@click.option("--tasks", default=None, help="Tasks to group, comma separated (default: every task).")
@click.option("--rows-budget", "budget", default=None, metavar="ROWS",
              help="Training-cost budget: rows summed over the chosen networks (a network costs its "
                   "members' training rows); '1.5x' = 1.5 times the tasks' total training rows.")
@click.option("--max-group-size", type=click.IntRange(min=1), default=None, help="Largest group.")
@click.option("--alpha", type=click.IntRange(min=2), default=None,
              help="subsets: tasks per sampled subset (default max(2, n // 2)).")
@click.option("--subsets", "n_subsets", type=click.IntRange(min=2), default=None,
              help="subsets: number of sampled subsets (default min(C(n, alpha), 6n)).")
@click.option("--estimator", type=click.Choice(["retrain", "gradient"]), default="retrain", show_default=True,
              help="subsets: measure each member's loss by training one model per sampled group, or by the "
                   "gradient estimate (one network per task, a linearised fit per group; binary labels or "
                   "regression).")
@click.option("--lookahead-lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="tag: SGD step size of the lookahead (default: --lr).")
@click.option("--final-seeds", type=click.IntRange(1), default=1, show_default=True,
              help="Seeds per final model (plan, single-task, all-in-one); test metrics are averaged.")
@solver_option("grouping")
@time_limit_option
@store_options
@click.option("-o", "--out", "report_out", type=click.Path(dir_okay=False), default=None,
              help="Write the JSON report here (the command's main output, as for plan and budget).")
@click.option("--instance-out", "instance_out", type=click.Path(dir_okay=False), default=None,
              help="Write the grouping instance here (JSON, or YAML by suffix), before solving.")
@json_option
@handle_errors
def group(data_source, task_column, label_column, regression, seed, runs_file, train, method, max_groups, mode, tasks, budget, max_group_size,
          alpha, n_subsets, estimator, lookahead_lr, final_seeds, solver, time_limit, store, executor, models_per_batch, instance_out, report_out,
          as_json):
    """Group tasks from real training: estimate affinities (METHOD), solve the grouping instance,
    train one model per chosen group, and compare each task's test metric with single-task and
    all-in-one training. --loss auto means cross-entropy here (squared error for regression);
    --train-fraction and --epoch-fraction shorten the estimation models only."""
    from pathlib import Path

    from planner.io import dumps_json, write_instance, write_json

    for path in (instance_out, report_out):
        if path:
            check_out_folder(path)
    from planner.io import check_outputs

    check_outputs({"--instance-out": instance_out, "-o": report_out},
                  {"--store": store, "--data": data_source, "--runs": runs_file})
    if runs_file is not None:
        if data_source is not None or (method not in (None, "subsets")) or budget is not None:
            raise CLIError("--runs takes the place of --data (and means --method subsets, without --rows-budget)", 2)
        names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
        _group_from_runs(runs_file, names, GroupSettings(method="subsets", max_groups=max_groups, mode=mode,
                                                         max_group_size=max_group_size, solver=solver,
                                                         time_limit=time_limit),
                         instance_out, report_out, as_json)
        return
    missing = [name for name, v in (("--data", data_source), ("--task-column", task_column),
                                    ("--label-column", label_column), ("--method", method)) if v is None]
    if estimator != "retrain" and method != "subsets":
        raise CLIError("--estimator gradient measures the subsets affinities (--method subsets)", 2)
    if missing:
        raise CLIError(f"missing option {', '.join(missing)} (or give --runs RUNS.jsonl)", 2)
    config = train_config(train)
    if method == "tag" and config.heads != "task":
        raise CLIError("--method tag measures lookahead between per-task heads; --heads shared has one head", 2)
    data = load_data(data_source, task_column, label_column, regression, seed)
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    if tasks is not None and not names:
        raise CLIError("--tasks: no task names given", 2)
    chosen = resolve_tasks(data, names)
    total_rows = int(sum(data.counts()[t, 0] for t in chosen))
    settings = GroupSettings(method=method, max_groups=max_groups, mode=mode,
                             tasks=tuple(names) if names else None, seed=seed, alpha=alpha,
                             n_subsets=n_subsets, final_seeds=final_seeds,
                             budget=parse_budget(budget, total_rows), max_group_size=max_group_size,
                             solver=solver, time_limit=time_limit, lookahead_lr=lookahead_lr,
                             executor=executor, batch_size=models_per_batch, estimator=estimator)
    show_notes(data)
    source = {"source": data_source, "task_column": task_column, "label_column": label_column,
              "regression": regression, "seed": seed}

    def save_instance(instance: dict) -> None:
        # written before the solve: the affinities cost the training, a failed or stopped solve keeps them
        instance.setdefault("meta", {})["data"] = source
        if instance_out:
            write_instance(instance_out, instance)
            click.echo(f"wrote {instance_out}", err=True)

    bar = Progress("training models")
    try:
        report, instance = run_group(data, settings, config, store or ":memory:", bar, bar.total,
                                     instance_name=Path(instance_out).stem if instance_out else "group",
                                     on_instance=save_instance)
    finally:
        bar.close()
    report["data"] = source
    report["seconds"] = round(wall_seconds(), 3)  # the command's wall time, loading and set-up included
    report.setdefault("settings", run_settings())  # the library's own settings, where it reports them, win
    report.setdefault("version", __version__)
    if report_out:
        write_json(report_out, report)
    if as_json:
        click.echo(dumps_json(report).strip())
    else:
        for line in report_table(report):
            click.echo(line)


def _group_from_runs(runs_file, names, settings, instance_out, report_out, as_json) -> None:
    """Affinities from a runs file, the grouping instance, and its solution (nothing is trained)."""
    from pathlib import Path

    from planner.cli.output import emit_result
    from planner.grouping.estimate import affinity_runs_file, build_instance
    from planner.instance import parse_instance
    from planner.io import write_instance
    from planner.report import result_summary
    from planner.solve import solve

    tasks, M, info = affinity_runs_file(runs_file, names)
    name = Path(instance_out).stem if instance_out else "group"
    instance = build_instance(tasks, M, settings, {t: 1 for t in tasks}, name,
                              {"method": "subsets", "estimate": info})
    problem = parse_instance(instance, source=str(runs_file))
    if instance_out:
        write_instance(instance_out, instance)  # the estimate is kept whatever the solve does
    result = solve(problem, settings.solver, settings.time_limit)
    payload = result.to_dict(problem.name, problem.kind)
    payload["estimate"] = {k: v for k, v in info.items() if k != "together"}
    payload.setdefault("settings", run_settings())  # the library's own settings, where it reports them, win
    payload.setdefault("version", __version__)
    emit_result(payload, as_json, report_out, result_summary(problem, payload))
    if result.status.exit_code:
        raise CLIError(f"the grouping instance is {payload['status']}", result.status.exit_code)
