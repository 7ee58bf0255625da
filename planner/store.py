"""The evaluation store: an embedded SQLite database with one row per trained subset model.

* A *study* is one (data fingerprint, target, model and training settings, seed). Its key is a hash
  of those settings; the settings are stored as JSON beside it.
* A *run* is one trained model: study, subset (source ids), replicate, f(S), every member's
  validation loss, test metrics, seconds, device.
* WAL journal; each finished batch is written in one transaction (``INSERT OR IGNORE`` on the
  unique (study, subset, replicate) key), so a run killed at any moment leaves whole batches only,
  and a rerun trains exactly what is missing.
* Opening a study whose data and target match a stored study but whose settings differ is refused,
  naming the settings that differ: rows trained under other settings never mix.
"""
from __future__ import annotations

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
        try:
            self.conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
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
        rows = self.conn.execute(
            "SELECT key, settings FROM studies WHERE data = ? AND target = ? AND seed = ?",
            (data_fingerprint, target, int(seed)),
        ).fetchall()
        for other_key, other_settings in rows:
            if other_key == key:
                return key
            old = json.loads(other_settings)
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
        return {(s, r) for s, r in self.conn.execute("SELECT subset, replicate FROM runs WHERE study = ?", (study,))}

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
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass
            raise StoreWriteError(f"{self.path}: cannot write ({exc})") from None
        return added

    def runs(self, study: str) -> list[RunRecord]:
        out = []
        for subset, rep, seed, f, val, test, secs, device in self.conn.execute(
            "SELECT subset, replicate, seed, f, val_losses, test, seconds, device FROM runs WHERE study = ?"
            " ORDER BY subset, replicate",
            (study,),
        ):
            out.append(RunRecord(tuple(json.loads(subset)), rep, seed, f, json.loads(val), json.loads(test), secs, device))
        return out
