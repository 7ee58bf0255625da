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
    from planner.io import finite_or_null, write_json
    from planner.status import printable

    ok = result["status"] in ("optimal", "feasible")
    if out and ok:
        write_json(out, result)
    if as_json:
        click.echo(json.dumps(finite_or_null(result), allow_nan=False))
    else:
        for line in summary_lines:
            click.echo(printable(line))


VERBOSITY = 1  # 0: --quiet (no progress), 1: default, 2: --verbose (a line for every finished batch)


def set_verbosity(level: int) -> None:
    global VERBOSITY
    VERBOSITY = int(level)


class Progress:
    """Progress of a long run on stderr, created once the total is known: on a terminal a bar with
    counts, rate and ETA (tqdm); otherwise (logs, pipes, CI) plain timestamped lines, at most one every
    10% or 30 s (every update with --verbose). Nothing with --quiet."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.bar = None
        self.n = self.length = 0
        self.t0 = time.perf_counter()
        self._last = (0.0, -1)  # time and tenth of the last plain line

    def total(self, n: int) -> None:
        if n <= 0 or VERBOSITY <= 0:
            return
        self.length, self.t0 = int(n), time.perf_counter()
        if _isatty(self.stream):
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - a dependency; plain lines without it
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=self.length, desc=self.label, file=self.stream, unit="model",
                                dynamic_ncols=True, leave=False)
                return
        self._line(f"{self.label}: 0/{self.length}")

    def __call__(self, k: int) -> None:
        if VERBOSITY <= 0 or not self.length:
            return
        self.n += int(k)
        if self.n > self.length:
            self.length = self.n
            if self.bar is not None:
                self.bar.total = self.length
        if self.bar is not None:
            self.bar.update(int(k))
            return
        now = time.perf_counter()
        tenth = int(10 * self.n / self.length)
        if VERBOSITY >= 2 or tenth > self._last[1] or now - self._last[0] >= 30.0 or self.n == self.length:
            elapsed = now - self.t0
            eta = elapsed / self.n * (self.length - self.n) if self.n else float("nan")
            self._line(f"{self.label}: {self.n}/{self.length} ({100 * self.n / self.length:.0f}%), "
                       f"{elapsed:.0f} s, about {eta:.0f} s left")
            self._last = (now, tenth)

    def _line(self, text: str) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
