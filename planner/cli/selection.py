"""``planner estimate``, ``planner plan``: from a table of tasks to a selection with evidence."""
from __future__ import annotations

from pathlib import Path

import click

from planner.cli.options import (
    CLIError,
    DEFAULT_TIME_LIMIT,
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
    time_limit_option,
    train_config,
    run_settings,
    train_options,
)
from planner.cli.output import Progress, wall_seconds
from planner import __version__


def reliability_text(d) -> str:
    from planner.selection.evidence import reliability_text as text  # loaded when needed: --help stays fast

    return text(d)


def _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch=128, estimator="auto",
              time_budget=None):
    from planner.selection.estimate import EstimateSettings

    return EstimateSettings(alpha=alpha, n_subsets=subsets, seed=seed, repeats=repeats, surrogate=surrogate,
                            n_boot=n_boot, executor=executor, batch_size=models_per_batch,
                            estimator=estimator, time_budget=time_budget)


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
             surrogate, n_boot, estimator, time_budget, store, executor, models_per_batch, train, out):
    """Train models on sampled source subsets and fit a surrogate of the target's loss; write a
    selection instance holding the surrogate, the single-task baseline and the diagnostics.
    With --runs, fit the same surrogate from runs made elsewhere."""
    from planner.selection.estimate import estimate as run_estimate
    from planner.io import write_instance

    if runs_file is not None:
        if data_source is not None:
            raise CLIError("give either --data (train here) or --runs (runs made elsewhere), not both", 2)
        _estimate_from_runs(runs_file, target, _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor,
                                                         models_per_batch, estimator, time_budget), out)
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
    from planner.io import check_outputs

    check_outputs({"-o": out}, {"--store": store, "--data": data_source})
    bar = Progress("training subset models")
    try:
        est = run_estimate(data, target, _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch, estimator,
                                                   time_budget), config,
                           store or ":memory:", None, bar, bar.total)
    finally:
        bar.close()
    instance = est.instance_dict(name=Path(out).stem)
    instance["meta"]["data"] = {"source": data_source, "task_column": task_column, "label_column": label_column,
                                "regression": regression, "seed": seed}
    write_instance(out, instance)
    d = est.diagnostics
    click.echo(f"wrote {out}: {len(est.sources)} sources, {d['n_subsets']} subsets ({est.trained} trained now), "
               f"{est.estimator} estimate, {reliability_text(d)}, surrogate {d['surrogate']}, "
               f"cross-validated Spearman {fmt(d['spearman'])}, F1 {fmt(d['f1_transfer'])}")
    show_warnings(est.warnings)

@click.command()
@data_options
@estimate_options
@store_options
@train_options
@constraint_options
@click.option("--final-seeds", type=click.IntRange(1), default=3, show_default=True, help="Seeds per final model.")
@solver_option("selection")
@time_limit_option
@json_option
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for PNG plots (scores with intervals; predicted vs measured).")
@click.option("--instance-out", type=click.Path(dir_okay=False), default=None, help="Also write the selection instance.")
@click.option("--save-models", "models_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Save the plan's final models (one state dict per seed, and index.json) in DIR.")
@handle_errors
def plan(data_source, task_column, label_column, regression, seed, target, alpha, subsets, repeats, surrogate,
         n_boot, estimator, time_budget, store, executor, models_per_batch, train, max_size, min_size, must_include, exclude, final_seeds, solver, time_limit, as_json, out, plot_dir, instance_out, models_dir):
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
    from planner.io import check_outputs

    check_outputs({"-o": out, "--instance-out": instance_out}, {"--store": store, "--data": data_source})
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    show_notes(data)
    run_plan_command(data, target, _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch, estimator,
                                                   time_budget), config,
                     final_seeds, solver, store, cons, as_json, out, plot_dir, instance_out,
                     time_limit=time_limit, source_info={"source": data_source, "task_column": task_column, "label_column": label_column},
                     models_dir=models_dir)


def run_plan_command(data, target, settings, config, final_seeds, solver, store, cons, as_json, out, plot_dir,
                     instance_out, time_limit=DEFAULT_TIME_LIMIT, source_info=None, truth=None, models_dir=None):
    from planner.io import dumps_json, write_instance, write_json
    from planner.selection.plan import PlanSettings, comparison_table, run_plan

    bar = Progress("training models")
    try:
        report, est, _extras = run_plan(data, target, settings, config, PlanSettings(final_seeds=final_seeds, solver=solver,
                                                                                        time_limit=time_limit),
                                        store or ":memory:", cons or None, bar, bar.total,
                                        log=lambda s: None)
    finally:
        bar.close()
    if source_info:
        report["data"] = source_info
    if truth:
        report["truth"] = truth_check(report, truth)
    if models_dir:
        from planner.selection.plan import save_final_models

        report["saved_models"] = save_final_models(data, report, config, settings, final_seeds, models_dir)
    report["seconds"] = round(wall_seconds(), 3)  # the command's wall time, loading and set-up included
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
    show_warnings(report.get("warnings", []))
    if as_json:
        click.echo(dumps_json(report).strip())
    else:
        for line in comparison_table(report):
            click.echo(line)
        if truth:
            t = report["truth"]
            click.echo(f"truth: sources ranked by score against their true flip rates: Spearman "
                       f"{fmt(t['spearman_scores_vs_rates'])}; the plan kept {t['harmful_kept']} of "
                       f"{t['harmful']} harmful sources (rate >= 0.25) and {t['helpful_kept']} of {t['helpful']} "
                       "helpful ones")
            if t["harmful_kept"] and report.get("decision", "program") != "program":
                click.echo("truth: the ranking finds the noisy sources, but leaving them out did not beat the baseline "
                           "on validation by more than the noise of seeds and validation rows: with one head per "
                           "source, wrong labels reach "
                           "the target only through the shared encoder")
        click.echo(f"({report['seconds']:.1f} s)")


def _estimate_from_runs(runs_file, target, settings, out) -> None:
    from planner.io import write_instance
    from planner.selection.estimate import estimate_from_runs

    check_out_folder(out)
    from planner.io import check_outputs

    check_outputs({"-o": out}, {"--runs": runs_file})
    est = estimate_from_runs(runs_file, target, settings)
    instance = est.instance_dict(name=Path(out).stem)
    instance["meta"]["runs"] = str(runs_file)
    write_instance(out, instance)
    d = est.diagnostics
    click.echo(f"wrote {out}: {len(est.sources)} sources, {d['n_subsets']} subsets from {runs_file}, "
               f"{reliability_text(d)}, surrogate {d['surrogate']}, "
               f"cross-validated Spearman {fmt(d['spearman'])}, F1 {fmt(d['f1_transfer'])}")
    show_warnings(est.warnings)


def show_warnings(warnings) -> None:
    """Every reason not to trust the estimate, one plain line each, on stderr."""
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def truth_check(report: dict, rates: dict[str, float]) -> dict:
    """Hold a plan against known flip rates: rank agreement of the scores and what the plan kept."""
    from planner.reliability import spearman

    names = [t for t in rates if t in report["scores"]]
    chosen = set(report["selected"])
    return {"noise_rates": rates,
            "spearman_scores_vs_rates": spearman([report["scores"][t] for t in names], [rates[t] for t in names]),
            "harmful": sum(rates[t] >= 0.25 for t in names),
            "harmful_kept": sum(rates[t] >= 0.25 and t in chosen for t in names),
            "helpful": sum(rates[t] < 0.25 for t in names),
            "helpful_kept": sum(rates[t] < 0.25 and t in chosen for t in names)}
