"""Grouping commands for the ``planner`` CLI: ``planner convert standley|mtgnet|tag``.

``planner.cli`` calls :func:`register` with its click group. Each command parses, calls one
converter in :mod:`planner.convert`, validates the result as an instance, and writes it
atomically (JSON, or YAML for .yaml/.yml); without ``-o`` it prints the JSON on stdout.
Bad input is one line on stderr with exit code 2.
"""
from __future__ import annotations

import click


def _write(data: dict, out: str | None) -> None:
    from planner.instance import parse_instance
    from planner.io import dumps_json, write_instance

    problem = parse_instance(data, source=out or "<converted>")  # the converted file must be valid
    if out:
        write_instance(out, data)
        click.echo(f"wrote {out}: {problem.n} tasks, {len(problem.candidates or ())} candidates", err=True)
    else:
        click.echo(dumps_json(data), nl=False)


def register(main: click.Group) -> None:
    from planner.cli import handle_errors

    @main.group("convert")
    def convert() -> None:
        """Convert published task-grouping tables into grouping instance files."""

    out_option = click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), default=None,
                              help="Write the instance here (atomically; .yaml/.yml for YAML), else print JSON.")
    name_option = click.option("--name", default=None, help="Instance name (default: from the file name).")

    @convert.command("standley")
    @click.argument("results", type=click.Path(dir_okay=False))
    @click.option("--budget", type=click.FloatRange(min=0), required=True,
                  help="Inference-cost budget (a full network costs 1, a half-size single-task network 0.5).")
    @click.option("--tasks", default=None, help="Comma-separated task names for the columns (default s,d,n,k,e).")
    @name_option
    @out_option
    @handle_errors
    def standley(results, budget, tasks, name, out):
        """Standley et al. 2020 RESULTS table (tab separated) -> cover instance within a budget."""
        from planner.convert import standley_instance

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
        from planner.convert import mtgnet_instance

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
        from planner.convert import tag_instance

        _write(tag_instance(affinities, key, max_groups, sense=sense, rule=rule, name=name), out)
