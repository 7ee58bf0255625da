"""``planner runs list|export STORE``: the trained runs of a store as data.

``list`` prints one line per study (key prefix, data fingerprint prefix, target or label, seed, the
settings in brief, how many runs); ``export`` writes one row per run (CSV or JSON, atomically), the
same rows as :func:`planner.store.runs_table` returns to Python.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import click

from planner.cli.options import check_out_folder, handle_errors, json_option

KEY_CHARS = 10  # enough to name a study in --study, short enough to read
SHOWN_FIRST = ("kind", "method", "hidden", "epochs", "lr", "loss", "model", "train_fraction", "epoch_fraction",
               "batch_size", "patience")


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def settings_summary(settings: dict, width: int = 70) -> str:
    """``key=value`` pairs of the study's settings (nested keys dotted), cut at ``width`` characters."""
    parts = []
    items = sorted(_flat(settings), key=lambda kv: (SHOWN_FIRST.index(kv[0].split(".")[-1])
                                                    if kv[0].split(".")[-1] in SHOWN_FIRST else len(SHOWN_FIRST)))
    for k, v in items:
        if isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        parts.append(f"{k.split('.')[-1] if k.startswith('train.') else k}={v}")
    text = " ".join(parts)
    return text if len(text) <= width else text[:width - 3] + "..."


@click.group("runs")
def runs() -> None:
    """The trained runs of a --store file as data: list its studies, export its runs."""


@runs.command("list")
@click.argument("store", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def list_command(store, as_json):
    """One line per study: key (for --study), data fingerprint, target, seed, settings, runs."""
    from planner.store import list_studies

    studies = list_studies(store)
    if as_json:
        click.echo(json.dumps({"store": str(store), "studies": studies}, allow_nan=False))
        return
    if not studies:
        click.echo(f"{store}: no studies")
        return
    click.echo(f"{'study':<{KEY_CHARS}}  {'data':<8}  {'target':<20}  {'seed':>6}  {'runs':>6}  settings")
    for s in studies:
        click.echo(f"{s['key'][:KEY_CHARS]:<{KEY_CHARS}}  {s['data'][:8]:<8}  {s['target'][:20]:<20}  {s['seed']:>6}  "
                   f"{s['runs']:>6}  {settings_summary(s['settings'])}")


def _finite(x):
    """A number as JSON can hold it (non-finite values as null)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    return x


def runs_csv(rows: list[dict]) -> str:
    """CSV text, one line per run; subset, val_losses and test are JSON text in their cells."""
    from planner.store import RUN_COLUMNS

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RUN_COLUMNS)
    for r in rows:
        writer.writerow([json.dumps(r[c], sort_keys=True) if isinstance(r[c], (list, dict)) else r[c]
                         for c in RUN_COLUMNS])
    return buf.getvalue()


@runs.command("export")
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--study", default=None, metavar="KEY", help="Only this study (its key or a unique prefix; see runs list).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="Default: json for a .json OUT, else csv.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Write here (atomically); without it, print on stdout.")
@handle_errors
def export_command(store, study, fmt, out):
    """One row per run: study, target, subset, replicate, seed, f, val_losses, test metrics, seconds, device."""
    from planner.io import atomic_write_text
    from planner.store import runs_table

    if fmt is None:
        fmt = "json" if out and Path(out).suffix.lower() == ".json" else "csv"
    if out:
        check_out_folder(out)
    rows = runs_table(store, study)
    if fmt == "json":
        text = json.dumps({"store": str(store), "runs": [_finite(r) for r in rows]}, allow_nan=False, indent=1) + "\n"
    else:
        text = runs_csv(rows)
    if out:
        atomic_write_text(out, text)
        click.echo(f"wrote {out}: {len(rows)} runs", err=True)
    else:
        click.echo(text, nl=False)

