"""``planner batch``: solve every instance file under a folder."""
from __future__ import annotations

import json
import sys

import click

from planner.cli.options import CLIError, handle_errors, json_option, solver_option, time_limit_option
from planner.cli.output import Progress
from planner.status import printable


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "outdir", type=click.Path(), default=None, metavar="OUTDIR",
              help="Folder for the results and summaries (default: DIR itself).")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="Instances solved at once.")
@click.option("--executor", type=click.Choice(["local", "process", "ray"]), default=None,
              help="local: this process, one at a time (default for --jobs 1); process: a process pool "
                   "(default for --jobs > 1); ray: a Ray cluster (optional extra).")
@solver_option(help="Backend for every instance (auto picks per instance).")
@time_limit_option
@click.option("--force", is_flag=True, help="Solve every instance again, even those already finished.")
@json_option
@handle_errors
def batch(directory, outdir, jobs, executor, solver, time_limit, force, as_json):
    """Solve every instance file (JSON or YAML) under DIR, nested folders included.

    Writes one result per instance (its relative path, ending .result.json) as soon as it
    finishes, then summary.csv and summary.json. A broken instance is recorded as an error and
    the rest go on. A rerun over the same OUTDIR skips instances whose input and options have
    not changed. Exit 0 when every instance was solved (optimal or feasible), 1 otherwise."""
    from planner.batch import run_batch

    if executor == "local" and jobs > 1:
        raise CLIError("--executor local solves one instance at a time; use --executor process with --jobs", 2)
    from planner import interrupt

    bar = Progress("solving instances")
    try:
        with interrupt.catching():  # Ctrl-C: the instance being solved reports its best, the rest wait
            report = run_batch(directory, outdir, jobs=jobs, executor=executor, solver=solver, time_limit=time_limit,
                               force=force, on_total=bar.total, progress=bar)
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), allow_nan=False))
    else:
        for row in report.rows:
            if row["status"] not in ("optimal", "feasible"):
                why = f": {row['error']}" if row.get("error") else ""
                click.echo(printable(f"{row['instance']}: {row['status']}{why}"), err=True)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
        click.echo(f"{report.total} instances ({counts or 'none found'}); {report.skipped} unchanged and skipped; "
                   f"results and summary.csv in {report.outdir}")
    if report.total == 0:
        click.echo(f"note: no instance files (*.json, *.yaml, *.yml) under {directory}", err=True)
    sys.exit(report.exit_code)
