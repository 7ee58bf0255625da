"""The ``planner`` command line: thin commands over the library.

Exit codes (contract): 0 solved, 1 runtime error, 2 usage error or invalid input,
3 proven infeasible or unbounded, 4 no solution within the limit.

Shared options live in :mod:`planner.cli.options`, the result tail and progress in
:mod:`planner.cli.output`; each command module holds the commands of one decision.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from planner import __version__
from planner.cli.batch import batch
from planner.cli.budget import budget_command, whatif_command
from planner.cli.core import solve, validate
from planner.cli.demo import demo
from planner.cli.output import mark_start, set_verbosity
from planner.cli.options import PlannerGroup, add_config_option
from planner.cli.grouping import convert, group
from planner.cli.runs import runs
from planner.cli.selection import estimate, plan


@click.group(cls=PlannerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="planner")
def main() -> None:
    """Plan multitask learning: which source tasks to train with a target, which tasks share a
    network, and how many labels to buy per task, with provably optimal answers."""
    # a process started as `planner ...` or `python -m planner ...` counts from its own start
    mark_start(process=Path(sys.argv[0]).name in ("planner", "__main__.py"))
    set_verbosity(1)


for _command in (solve, validate, estimate, plan, group, convert, budget_command, whatif_command, batch, demo, runs):
    add_config_option(_command)
    main.add_command(_command)
