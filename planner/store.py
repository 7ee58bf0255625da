"""The evaluation store: an embedded SQLite database with one row per trained subset model.

* A *study* is one (data fingerprint, target, model and training settings, seed). Its key is a hash
  of those settings; the settings are stored as JSON beside it.
* A *run* is one trained model: study, subset (source ids), replicate, f(S), every member's
  validation loss, test metrics, seconds, device; for some runs (the plan's final models) also the
  target's loss on each validation and test row (table ``run_rows``, written in the same transaction),
  for comparisons that count the rows' own noise.
* WAL journal; each finished batch is written in one transaction (``INSERT OR IGNORE`` on the
  unique (study, subset, replicate) key), so a run killed at any moment leaves whole batches only,
  and a rerun trains exactly what is missing.
* Opening a study whose data and target match a stored study but whose settings differ is refused,
  naming the settings that differ: rows trained under other settings never mix.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from planner.status import PlannerError

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    target TEXT NOT NULL,
    seed INTEGER NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    study TEXT NOT NULL REFERENCES studies(key),
    subset TEXT NOT NULL,
    replicate INTEGER NOT NULL DEFAULT 0,
    seed INTEGER NOT NULL,
    f REAL NOT NULL,
    val_losses TEXT NOT NULL,
    test TEXT NOT NULL,
    seconds REAL NOT NULL,
    device TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (study, subset, replicate)
);
CREATE TABLE IF NOT EXISTS run_rows (
    study TEXT NOT NULL,
    subset TEXT NOT NULL,
    replicate INTEGER NOT NULL,
    rows TEXT NOT NULL,
    PRIMARY KEY (study, subset, replicate)
);
"""


class StoreError(PlannerError):
    """The store cannot be used as asked (not a store, other settings): an input problem."""

    exit_code = 2


class StoreWriteError(StoreError):
    """Writing failed (disk full, read-only, locked): a runtime error."""

    exit_code = 1


class NonFiniteLoss(PlannerError):
    """A trained model's loss is NaN or infinite: nothing is stored, and the run stops with this line."""

    exit_code = 1


@dataclass(frozen=True)
class RunRecord:
    subset: tuple[str, ...]
    replicate: int
    seed: int
    f: float
    val_losses: dict[str, float]
    test: dict[str, float]
    seconds: float
    device: str
    # the target's per-row losses ({"val": [...], "test": [...], "test_error": [...]}), kept for some runs
    rows: dict[str, list[float]] | None = None


def study_key(data_fingerprint: str, target: str, seed: int, settings: dict[str, Any]) -> str:
    blob = json.dumps({"data": data_fingerprint, "target": target, "seed": seed, "settings": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def subset_key(subset: Iterable[str]) -> str:
    return json.dumps(sorted(subset))


class Store:
    """One SQLite file; use as a context manager or call close()."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            parent = Path(self.path).resolve().parent
            if not parent.is_dir():
                raise StoreError(f"{self.path}: store folder {parent} does not exist")
        # Two processes opening a new store at once: switching to WAL and creating the tables can meet the
        # other's lock without SQLite's busy wait ("database is locked" at once), so the opening is retried
        # for up to a minute, as every other statement waits through `timeout`.
        deadline = time.monotonic() + 60.0
        delay = 0.01
        while True:
            try:
                self.conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(SCHEMA)
                break
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                try:
                    self.conn.close()
                except Exception:
                    pass
                if not busy or time.monotonic() > deadline:
                    raise StoreError(f"{self.path}: not a usable store ({exc})") from None
                time.sleep(delay)
                delay = min(0.5, delay * 2)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: not a usable store ({exc})") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- studies ------------------------------------------------------------
    def open_study(self, data_fingerprint: str, target: str, seed: int, settings: dict[str, Any]) -> str:
        """Register (or find) a study; refuse when the same data, target and seed were stored with other settings."""
        key = study_key(data_fingerprint, target, seed, settings)
        try:
            rows = self.conn.execute(
                "SELECT key, settings FROM studies WHERE data = ? AND target = ? AND seed = ?",
                (data_fingerprint, target, int(seed)),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable store ({exc})") from None
        for other_key, other_settings in rows:
            if other_key == key:
                return key
            try:
                old = json.loads(other_settings)
                if not isinstance(old, dict):
                    raise ValueError("not an object")
            except (TypeError, ValueError) as exc:
                raise StoreError(f"{self.path}: not a usable store (studies row {other_key!r}: settings are not "
                                 f"a JSON object: {exc})") from None
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if self.count(other_key):
                details = ", ".join(f"{k}: stored {old.get(k)!r}, now {settings.get(k)!r}" for k in diff[:4])
                raise StoreError(
                    f"{self.path}: holds runs for this data and target trained with other settings ({details}); "
                    "use another --store file or the stored settings"
                )
        self.conn.execute(
            "INSERT OR IGNORE INTO studies (key, data, target, seed, settings, created) VALUES (?, ?, ?, ?, ?, ?)",
            (key, data_fingerprint, target, int(seed), json.dumps(settings, sort_keys=True), time.time()),
        )
        return key

    # -- runs ---------------------------------------------------------------
    def done(self, study: str) -> set[tuple[str, int]]:
        """(subset key, replicate) of every stored run of the study."""
        try:
            return {(s, r) for s, r in self.conn.execute("SELECT subset, replicate FROM runs WHERE study = ?", (study,))}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable store ({exc})") from None

    def count(self, study: str) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM runs WHERE study = ?", (study,)).fetchone()[0])

    def add_batch(self, study: str, records: list[RunRecord]) -> int:
        """Write one finished batch in a single transaction; rows already present are kept as they are."""
        for r in records:  # SQLite stores NaN as NULL: such a row would vanish (INSERT OR IGNORE), not fail
            values = [r.f, r.seconds, *r.val_losses.values()]
            if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in values):
                raise NonFiniteLoss(
                    f"training the model on {list(r.subset) or 'the target alone'} (replicate {r.replicate}) gave a "
                    f"non-finite loss ({r.f}); the data or the settings make training diverge (try a smaller --lr)")
        now = time.time()
        rows = [
            (study, subset_key(r.subset), r.replicate, r.seed, float(r.f), json.dumps(r.val_losses, sort_keys=True),
             json.dumps(r.test, sort_keys=True), float(r.seconds), r.device, now)
            for r in records
        ]
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO runs (study, subset, replicate, seed, f, val_losses, test, seconds, device, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            added = self.conn.total_changes - before
            with_rows = [(study, subset_key(r.subset), r.replicate, json.dumps(r.rows, sort_keys=True))
                         for r in records if r.rows is not None]
            if with_rows:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO run_rows (study, subset, replicate, rows) VALUES (?, ?, ?, ?)", with_rows)
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass
            if isinstance(exc, sqlite3.OperationalError):
                raise StoreWriteError(f"{self.path}: cannot write ({exc})") from None
            raise StoreError(f"{self.path}: not a usable store ({exc})") from None
        return added

    def runs(self, study: str, known: Iterable[str] | None = None) -> list[RunRecord]:
        """Every stored run of the study, each row checked (a store edited by hand or by another
        program: text in a number column, bad JSON, a task the data does not have): a bad row is a
        :class:`StoreError` naming it, never an internal error later. ``known``: the task names a
        subset may hold."""
        known = set(known) if known is not None else None
        out = []
        try:
            rows = self.conn.execute(
                "SELECT rowid, subset, replicate, seed, f, val_losses, test, seconds, device FROM runs WHERE study = ?"
                " ORDER BY subset, replicate",
                (study,),
            ).fetchall()
            per_row = {(subset, rep): (rowid, text) for rowid, subset, rep, text in self.conn.execute(
                "SELECT rowid, subset, replicate, rows FROM run_rows WHERE study = ?", (study,))}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable store ({exc})") from None
        for rowid, subset, rep, seed, f, val, test, secs, device in rows:
            try:
                rec = _record(subset, rep, seed, f, val, test, secs, device, known)
            except _BadRow as exc:
                raise StoreError(f"{self.path}: not a usable store (runs row {rowid}: {exc})") from None
            if (subset, rep) in per_row:
                rows_id, text = per_row[(subset, rep)]
                try:
                    rec = dataclasses.replace(rec, rows=_row_losses(text))
                except _BadRow as exc:
                    raise StoreError(f"{self.path}: not a usable store (run_rows row {rows_id}: {exc})") from None
            out.append(rec)
        return out


class _BadRow(Exception):
    pass


def _number(value: Any, column: str, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadRow(f"{column} is {type(value).__name__} {str(value)[:40]!r}, not a number")
    if finite and not math.isfinite(value):
        raise _BadRow(f"{column} is {value}, not a finite number")
    return float(value)


def _json(text: Any, column: str) -> Any:
    if not isinstance(text, str):
        raise _BadRow(f"{column} is {type(text).__name__}, not JSON text")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _BadRow(f"{column} is not valid JSON ({exc})") from None


def _record(subset, rep, seed, f, val, test, secs, device, known) -> RunRecord:
    members = _json(subset, "subset")
    if not isinstance(members, list) or not all(isinstance(t, str) for t in members):
        raise _BadRow("subset is not a list of task names")
    if len(set(members)) != len(members):
        raise _BadRow("subset names a task twice")
    if known is not None:
        for t in members:
            if t not in known:
                raise _BadRow(f"subset holds the unknown task {t[:80]!r}")
    for value, column in ((rep, "replicate"), (seed, "seed")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadRow(f"{column} is {type(value).__name__} {str(value)[:40]!r}, not a whole number")
    if rep < 0:
        raise _BadRow(f"replicate is {rep}, below 0")
    val_losses = _json(val, "val_losses")
    if not isinstance(val_losses, dict):
        raise _BadRow("val_losses is not a JSON object")
    for key, value in val_losses.items():
        _number(value, f"val_losses[{key[:40]!r}]")
    test_d = _json(test, "test")
    if not isinstance(test_d, dict):
        raise _BadRow("test is not a JSON object")
    for key, value in test_d.items():
        _number(value, f"test[{key[:40]!r}]", finite=False)
    if not isinstance(device, str):
        raise _BadRow(f"device is {type(device).__name__}, not text")
    return RunRecord(tuple(members), rep, seed, _number(f, "f"), val_losses, test_d, _number(secs, "seconds"), device)


def _row_losses(text: Any) -> dict[str, list[float]]:
    d = _json(text, "rows")
    if not isinstance(d, dict):
        raise _BadRow("rows is not a JSON object")
    for key, values in d.items():
        if not isinstance(values, list):
            raise _BadRow(f"rows[{key[:40]!r}] is not a list")
        for v in values:
            _number(v, f"rows[{key[:40]!r}]")
    return d


# -- reading a store as data (no Store object, nothing written) ----------------------------------------------
def _open_read_only(path: str | Path) -> sqlite3.Connection:
    """The store at ``path`` opened read-only: a missing file or a file that is not a store is a StoreError."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"{path}: no such store file")
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=60.0)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a usable store ({exc})") from None
    if not {"studies", "runs"} <= tables:
        conn.close()
        raise StoreError(f"{path}: not a planner store (no studies and runs tables)")
    return conn


def list_studies(path: str | Path) -> list[dict[str, Any]]:
    """One dict per study of the store: key, data (fingerprint), target (label), seed, settings (a
    mapping), created (epoch seconds) and runs (how many are stored), oldest study first."""
    conn = _open_read_only(path)
    try:
        rows = conn.execute(
            "SELECT s.key, s.data, s.target, s.seed, s.settings, s.created, COUNT(r.study)"
            " FROM studies s LEFT JOIN runs r ON r.study = s.key GROUP BY s.key ORDER BY s.created, s.key"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot read ({exc})") from None
    finally:
        conn.close()
    return [{"key": k, "data": d, "target": t, "seed": int(s), "settings": json.loads(st), "created": float(c),
             "runs": int(n)} for k, d, t, s, st, c, n in rows]


def resolve_study(path: str | Path, study: str) -> str:
    """The full key of the one study whose key starts with ``study``; a StoreError when none or several do."""
    keys = [s["key"] for s in list_studies(path) if s["key"].startswith(study)]
    if len(keys) != 1:
        why = "no study" if not keys else f"{len(keys)} studies"
        raise StoreError(f"{path}: {why} with a key starting {study!r} (see: planner runs list {path})")
    return keys[0]


RUN_COLUMNS = ("study", "target", "subset", "replicate", "seed", "f", "val_losses", "test", "seconds", "device")


def runs_table(path: str | Path, study: str | None = None) -> list[dict[str, Any]]:
    """Every stored run as one plain dict (the columns of :data:`RUN_COLUMNS`): study key, the study's
    target label, subset (list of task names), replicate, seed, f, val_losses and test (mappings),
    seconds, device. ``study``: only that study (a key or a unique prefix of one). Read-only."""
    key = resolve_study(path, study) if study else None
    conn = _open_read_only(path)
    try:
        sql = ("SELECT r.study, s.target, r.subset, r.replicate, r.seed, r.f, r.val_losses, r.test, r.seconds, r.device"
               " FROM runs r JOIN studies s ON s.key = r.study")
        args: tuple = ()
        if key is not None:
            sql += " WHERE r.study = ?"
            args = (key,)
        rows = conn.execute(sql + " ORDER BY s.created, r.study, r.subset, r.replicate", args).fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot read ({exc})") from None
    finally:
        conn.close()
    return [dict(zip(RUN_COLUMNS, (st, tgt, json.loads(sub), int(rep), int(seed), float(f), json.loads(val),
                                   json.loads(test), float(secs), dev)))
            for st, tgt, sub, rep, seed, f, val, test, secs, dev in rows]
