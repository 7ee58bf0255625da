"""``planner estimate``, ``planner plan``: from a table of tasks to a selection with evidence."""
from __future__ import annotations

from pathlib import Path

import click

from planner.cli.options import (
    CLIError,
    build_constraints,
    check_constraint_ids,
    check_out_folder,
    check_target,
    constraint_options,
    data_options,
    estimate_options,
    fmt,
    handle_errors,
    json_option,
    load_data,
    show_notes,
    solver_option,
    store_options,
    train_config,
    run_settings,
    train_options,
)
from planner.cli.output import Progress
from planner import __version__


def _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch=128):
    from planner.selection.estimate import EstimateSettings

    return EstimateSettings(alpha=alpha, n_subsets=subsets, seed=seed, repeats=repeats, surrogate=surrogate,
                            n_boot=n_boot, executor=executor, batch_size=models_per_batch)


@click.command()
@data_options(required=False)
@click.option("--runs", "runs_file", type=click.Path(dir_okay=False), default=None, metavar="RUNS.jsonl",
              help="Fit from runs made elsewhere instead of training (one JSON object per line: "
                   '{"subset": [source ids], "loss": L, "seed": S}); no --data then.')
@estimate_options
@store_options
@train_options
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Selection instance to write (JSON, or YAML by suffix).")
@handle_errors
def estimate(data_source, task_column, label_column, regression, seed, runs_file, target, alpha, subsets, repeats,
             surrogate, n_boot, store, executor, models_per_batch, train, out):
    """Train models on sampled source subsets and fit a surrogate of the target's loss; write a
    selection instance holding the surrogate, the single-task baseline and the diagnostics.
    With --runs, fit the same surrogate from runs made elsewhere."""
    from planner.selection.estimate import estimate as run_estimate
    from planner.io import write_instance

    if runs_file is not None:
        if data_source is not None:
            raise CLIError("give either --data (train here) or --runs (runs made elsewhere), not both", 2)
        _estimate_from_runs(runs_file, target, _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor,
                                                         models_per_batch), out)
        return
    missing = [name for name, v in (("--data", data_source), ("--task-column", task_column),
                                    ("--label-column", label_column)) if v is None]
    if missing:
        raise CLIError(f"missing option {', '.join(missing)} (or give --runs RUNS.jsonl)", 2)
    config = train_config(train)
    data = load_data(data_source, task_column, label_column, regression, seed)
    check_target(data, target)
    show_notes(data)
    check_out_folder(out)
    bar = Progress("training subset models")
    try:
        est = run_estimate(data, target, _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch), config,
                           store or ":memory:", None, bar, bar.total)
    finally:
        bar.close()
    instance = est.instance_dict(name=Path(out).stem)
    instance["meta"]["data"] = {"source": data_source, "task_column": task_column, "label_column": label_column,
                                "regression": regression, "seed": seed}
    write_instance(out, instance)
    d = est.diagnostics
    click.echo(f"wrote {out}: {len(est.sources)} sources, {d['n_subsets']} subsets ({est.trained} trained now), "
               f"surrogate {d['surrogate']}, held-out Spearman {fmt(d['spearman'])}, F1 {fmt(d['f1_transfer'])}")

@click.command()
@data_options
@estimate_options
@store_options
@train_options
@constraint_options
@click.option("--final-seeds", type=click.IntRange(1), default=3, show_default=True, help="Seeds per final model.")
@solver_option("selection")
@json_option
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for PNG plots (scores with intervals; predicted vs measured).")
@click.option("--instance-out", type=click.Path(dir_okay=False), default=None, help="Also write the selection instance.")
@handle_errors
def plan(data_source, task_column, label_column, regression, seed, target, alpha, subsets, repeats, surrogate,
         n_boot, store, executor, models_per_batch, train, max_size, min_size, must_include, exclude, final_seeds, solver, as_json, out, plot_dir, instance_out):
    """End to end: estimate, select (the program and Algorithm 1), train the final models and
    compare them on the target's test split with single-task and pooled training."""
    config = train_config(train)
    data = load_data(data_source, task_column, label_column, regression, seed)
    check_target(data, target)
    cons = build_constraints(max_size, min_size, must_include, exclude)
    check_constraint_ids(data, target, cons)
    for path in (out, instance_out):
        if path:
            check_out_folder(path)
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    show_notes(data)
    run_plan_command(data, target, _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch), config,
                     final_seeds, solver, store, cons, as_json, out, plot_dir, instance_out,
                     source_info={"source": data_source, "task_column": task_column, "label_column": label_column})


def run_plan_command(data, target, settings, config, final_seeds, solver, store, cons, as_json, out, plot_dir,
                     instance_out, source_info=None):
    from planner.io import dumps_json, write_instance, write_json
    from planner.selection.plan import PlanSettings, comparison_table, run_plan

    bar = Progress("training models")
    try:
        report, est, _extras = run_plan(data, target, settings, config, PlanSettings(final_seeds=final_seeds, solver=solver),
                                        store or ":memory:", cons or None, bar, bar.total,
                                        log=lambda s: None)
    finally:
        bar.close()
    if source_info:
        report["data"] = source_info
    report.setdefault("settings", run_settings())  # the library's own settings, where it reports them, win
    report.setdefault("version", __version__)
    if out:
        write_json(out, report)
    if instance_out:
        write_instance(instance_out, est.instance_dict(name=Path(instance_out).stem, constraints=cons or None))
    if plot_dir:
        from planner.plots import plot_predicted_vs_measured, plot_scores

        plot_scores(report, Path(plot_dir) / "scores.png")
        plot_predicted_vs_measured(est.pred_held, est.f[est.held], est.baseline, report, Path(plot_dir) / "predicted_vs_measured.png")
    if as_json:
        click.echo(dumps_json(report).strip())
    else:
        for line in comparison_table(report):
            click.echo(line)
        click.echo(f"({report['seconds']:.1f} s)")


def _estimate_from_runs(runs_file, target, settings, out) -> None:
    from planner.io import write_instance
    from planner.selection.estimate import estimate_from_runs

    check_out_folder(out)
    est = estimate_from_runs(runs_file, target, settings)
    instance = est.instance_dict(name=Path(out).stem)
    instance["meta"]["runs"] = str(runs_file)
    write_instance(out, instance)
    d = est.diagnostics
    click.echo(f"wrote {out}: {len(est.sources)} sources, {d['n_subsets']} subsets from {runs_file}, "
               f"surrogate {d['surrogate']}, held-out Spearman {fmt(d['spearman'])}, F1 {fmt(d['f1_transfer'])}")
