"""The one tail every command shares (print a result, write -o, exit with the contract's code) and the
one progress helper."""
from __future__ import annotations

import json
import os
import sys
import time

import click

_started: float | None = None


def _process_age() -> float | None:
    """Seconds since this process started (Linux /proc), or None where that cannot be read."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = float(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return age if 0.0 <= age < 3600.0 else None


def mark_start(force: bool = True, process: bool = False) -> None:
    """Start the command's wall clock (the ``planner`` group does, before any option is parsed; a
    command run on its own starts it on entry). ``process``: count from the start of the process (the
    interpreter and the imports are part of what a user waits for), where it can be read."""
    global _started
    if force or _started is None:
        age = _process_age() if process else None
        _started = time.perf_counter() - (age or 0.0)


def end_command() -> None:
    global _started
    _started = None


def wall_seconds() -> float:
    """Seconds since the command began: what ``seconds`` in a command's report means."""
    if _started is None:
        mark_start()
    return time.perf_counter() - _started


def emit_result(result: dict, as_json: bool, out: str | None, summary_lines: list[str]) -> None:
    """Print a result (one JSON object with --json, else a summary) and write -o atomically on success."""
    from planner.io import write_json

    ok = result["status"] in ("optimal", "feasible")
    if out and ok:
        write_json(out, result)
    if as_json:
        click.echo(json.dumps(result, allow_nan=False))
    else:
        for line in summary_lines:
            click.echo(line)


class Progress:
    """A progress bar on stderr (click's), created once the total is known."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None

    def total(self, n: int) -> None:
        if n <= 0:
            return
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


