"""Estimates that know their own noise: reliability from replicates, repeated cross-validation,
warnings, no fake intervals, the estimator choice and adaptive effort."""
from __future__ import annotations

import numpy as np
import pytest

from planner.sampling import design
from planner.selection.estimate import EstimateSettings, estimate, fit_estimate, gradient_usable


def _fit(f_of, k=8, n=56, reps=20, seed=0, sources=None, subsets=None):
    rng = np.random.default_rng(seed)
    subsets = subsets or design(k, 3, n, seed=seed)
    f = np.array([f_of(s, rng) for s in subsets])
    groups = {tuple(s): [f[i], f_of(s, rng)] for i, s in enumerate(subsets[:reps])}
    stl = [f_of((), rng) for _ in range(3)]
    return fit_estimate("T", sources or [f"s{i}" for i in range(k)], subsets, f, stl, groups,
                        EstimateSettings(n_boot=50, seed=seed, surrogate="linear"))


def test_pure_seed_noise_is_low_reliability_with_warnings_and_not_separable():
    est = _fit(lambda s, rng: 0.5 + rng.normal(0, 0.02))
    assert est.diagnostics["reliability"] < 0.5
    assert not est.separable
    assert any(w.startswith("low reliability") for w in est.warnings)
    assert any("does not predict held-out subsets" in w for w in est.warnings)


def test_a_planted_linear_truth_is_reliable_and_ranked():
    theta = np.linspace(-0.05, 0.05, 8)
    est = _fit(lambda s, rng: 0.5 + theta[list(s)].sum() + rng.normal(0, 0.002))
    assert est.diagnostics["reliability"] > 0.9 and est.separable and est.warnings == []
    assert est.diagnostics["spearman"] > 0.8 and est.diagnostics["cv"] == {"folds": 5, "repeats": 10}
    order = sorted(est.scores, key=est.scores.get)
    assert order == [f"s{i}" for i in range(8)]


def test_a_source_never_sampled_gets_no_interval_and_a_warning():
    subsets = [s for s in design(8, 3, 56, seed=1) if 7 not in s]  # s7 never appears
    est = _fit(lambda s, rng: 0.5 + 0.01 * len(s) + rng.normal(0, 0.001), subsets=subsets)
    assert est.interval["s7"] is None and est.sample_counts["s7"] == 0
    assert "s7" in est.uncertain
    assert any("never sampled" in w and "s7" in w for w in est.warnings)
    assert est.instance_dict()["meta"]["interval"]["s7"] is None


def test_gradient_applies_to_binary_and_regression_with_the_builtin_network_only():
    from planner_models.data import synthetic_classification
    from planner_models.train import TrainConfig

    binary = synthetic_classification(k=3, p=3, n_per_task=50, seed=0)
    three = synthetic_classification(k=3, p=3, n_per_task=50, n_classes=3, seed=0)
    assert gradient_usable(binary, TrainConfig())[0]
    assert not gradient_usable(three, TrainConfig())[0]
    assert not gradient_usable(binary, TrainConfig(model="x.py:f"))[0]


@pytest.fixture(scope="module")
def noise_case():
    from planner_models.noise import label_noise_case

    return label_noise_case("tv16", 8, seed=0, max_rows_per_task=200, min_rows_per_task=200)


def test_gradient_estimate_ranks_flipped_sources_by_noise_rate(noise_case):
    from planner.reliability import spearman
    from planner_models.train import TrainConfig

    data = noise_case.data
    est = estimate(data, data.task_names[0], EstimateSettings(estimator="gradient", n_subsets=40, n_boot=0,
                                                              gradient_seeds=2), TrainConfig(epochs=10))
    assert est.estimator == "gradient" and est.trained == 0
    rates = noise_case.rate_of()
    assert spearman([est.scores[t] for t in rates], list(rates.values())) >= 0.6
    assert 0.0 <= est.diagnostics["reliability"] <= 1.0


def test_auto_measures_both_and_says_which_it_used(noise_case):
    from planner_models.train import TrainConfig

    data = noise_case.data
    est = estimate(data, data.task_names[0], EstimateSettings(n_subsets=30, n_boot=0, gradient_seeds=2,
                                                              replicate_subsets=5),
                   TrainConfig(epochs=4, hidden=(8,)))
    choice = est.estimator_choice
    assert choice["asked"] == "auto" and est.estimator in ("gradient", "retrain")
    assert {"gradient_reliability", "retrain_reliability", "agreement_spearman", "why"} <= set(choice)
    assert choice["why"].startswith(est.estimator)
    # the gradient estimate only when one of its networks clears the bar and its mean beats retraining;
    # the kept one's single-network figure is the report's reliability
    g_one, g_mean, r = choice["gradient_reliability"], choice["gradient_reliability_of_mean"], choice["retrain_reliability"]
    assert est.estimator == ("gradient" if g_one >= 0.5 and not r > g_mean else "retrain")
    assert est.diagnostics["reliability"] == pytest.approx(g_one if est.estimator == "gradient" else r)


def test_adaptive_retraining_stops_and_says_why(noise_case):
    from planner_models.train import TrainConfig

    data = noise_case.data
    cfg = TrainConfig(epochs=3, hidden=(8,), patience=None)
    timed = estimate(data, data.task_names[0], EstimateSettings(estimator="retrain", n_boot=0, replicate_subsets=4,
                                                                time_budget=0.0), cfg)
    assert timed.stopped == "time_budget" and len(timed.subsets) == 4 * 8  # one round
    grown = estimate(data, data.task_names[0], EstimateSettings(estimator="retrain", n_boot=0, replicate_subsets=4),
                     cfg)
    assert grown.stopped in ("stable", "max_subsets") and len(grown.subsets) >= len(timed.subsets)
    fixed = estimate(data, data.task_names[0], EstimateSettings(estimator="retrain", n_boot=0, replicate_subsets=4,
                                                                n_subsets=20), cfg)
    assert fixed.stopped == "fixed" and len(fixed.subsets) == 20


def test_verdict_says_beats_ties_or_loses_beyond_the_seed_noise():
    from planner.selection.plan import verdict

    base = {"higher_is_better": True, "final_seeds": 3,
            "test": {"plan": 0.90, "pooled": 0.80, "stl": 0.899},
            "test_sd": {"plan": 0.01, "pooled": 0.01, "stl": 0.01}}
    text = verdict(base)
    assert "beats pooling by 0.1000" in text and "ties with the target alone" in text
    worse = dict(base, higher_is_better=False)  # rmse: lower is better, so the same numbers lose
    assert "loses to pooling by 0.1000" in verdict(worse)


def test_estimate_prints_reliability_and_every_warning_on_stderr(tmp_path):
    """`planner estimate` on runs that are pure seed noise: the summary names the reliability and the
    warnings reach stderr, one line each."""
    import json

    from click.testing import CliRunner

    from planner.cli import main

    rng = np.random.default_rng(3)
    lines = []
    for r, s in enumerate(design(8, 3, 56, seed=0)):
        for seed in (0, 1):
            lines.append({"subset": [f"s{i}" for i in s], "loss": 0.5 + float(rng.normal(0, 0.02)), "seed": 10 * r + seed})
    lines += [{"subset": [], "loss": 0.5 + float(rng.normal(0, 0.02)), "seed": 999 + i} for i in range(3)]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    res = CliRunner().invoke(main, ["estimate", "--runs", str(path), "--target", "T", "-o", str(tmp_path / "i.json"),
                                    "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    assert "reliability" in res.stdout
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert any("low reliability" in w for w in warnings)


def test_a_candidate_replaces_pooling_only_when_clearly_better():
    from planner.selection.plan import _clearly_better

    pooled = [-0.60, -0.61, -0.59]
    assert _clearly_better([-0.70, -0.71, -0.69], pooled)          # 16% lower, seeds agree
    assert not _clearly_better([-0.603, -0.604, -0.602], pooled)    # under 1%
    assert not _clearly_better([-0.50, -0.90, -0.70], pooled)       # lower on average, but within the seed noise


def test_reliability_interval_reported_and_warned_when_it_reaches_below_half():
    # planted truth with seed noise of the same size: reliability about 0.5-0.8 from 20 x 2 replicates,
    # an interval around it that holds the point estimate
    def f_of(s, rng):
        return 0.5 + 0.02 * sum(1 for i in s if i < 3) + rng.normal(0, 0.012)

    for seed in range(4):
        est = _fit(f_of, seed=seed)
        d = est.diagnostics
        lo, hi = d["reliability_of_f_interval"]
        assert lo <= d["reliability_of_f"] <= hi and hi - lo > 0.1
        flagged = any("is uncertain: its 90% interval reaches down to" in w for w in est.warnings)
        assert flagged == (d["reliability_of_f"] >= 0.5 and lo < 0.5)


def test_uncertain_reliability_warning_text():
    from planner.selection.evidence import warnings_for

    kw = dict(spearman_ceiling=0.6, cv_spearman=0.5, cv_spearman_sd=0.1, sample_counts={"a": 20}, uncertain=[],
              n_sources=1, surrogate_kind="linear", fixed_size=True, estimator="retrain")
    assert any("reaches down to 0.41" in w for w in warnings_for(reliability=0.7, reliability_interval=(0.41, 0.9), **kw))
    assert not any("uncertain" in w for w in warnings_for(reliability=0.7, reliability_interval=(0.55, 0.9), **kw))
    assert not any("uncertain" in w for w in warnings_for(reliability=0.3, reliability_interval=(0.1, 0.6), **kw))


def test_paired_se_matches_the_spread_of_repeated_draws():
    """Oracle: differences d[r, i] = mu + seed effect + row effect + residual, drawn many times; the
    standard error must match the spread of the mean difference over draws (it errs slightly high: the
    two terms share the residual), and the rows' term must be there (seed-only would be far too small)."""
    from planner.selection.evidence import paired_se

    rng = np.random.default_rng(0)
    R, n = 3, 40
    means, ses, seed_only, unpaired = [], [], [], []
    for _ in range(3000):
        hard = rng.normal(0, 1.0, n)        # rows both models find hard: they cancel in the difference
        gain = rng.normal(0, 0.3, n)        # rows where one model is better: they do not
        a = hard + gain + rng.normal(0, 0.05, (R, 1)) + rng.normal(0, 0.1, (R, n)) + 0.02
        b = hard + rng.normal(0, 0.05, (R, 1)) + rng.normal(0, 0.1, (R, n))
        means.append(float(np.mean(a - b)))
        ses.append(paired_se(a, b))
        seed_only.append(float(np.sqrt((np.var(a.mean(1), ddof=1) + np.var(b.mean(1), ddof=1)) / R)))
        unpaired.append(float(np.sqrt((np.var(a.mean(0), ddof=1) + np.var(b.mean(0), ddof=1)) / n)))
    truth = float(np.std(means))
    rms = float(np.sqrt(np.mean(np.square(ses))))
    assert 0.95 * truth < rms < 1.25 * truth
    assert float(np.sqrt(np.mean(np.square(seed_only)))) < 0.7 * truth   # seeds alone: far too confident
    assert float(np.mean(unpaired)) > 2 * truth                          # unpaired rows: far too timid
    assert paired_se(a, a.copy()) == 0.0
    with pytest.raises(ValueError):
        paired_se([1.0, 2.0], [1.0, 2.0])


def test_verdict_counts_the_test_rows_noise_when_the_report_has_it():
    from planner.selection.plan import verdict

    base = {"higher_is_better": True, "final_seeds": 3,
            "test": {"plan": 0.90, "pooled": 0.85, "stl": 0.95},
            "test_sd": {"plan": 0.001, "pooled": 0.001, "stl": 0.001}}
    assert "beats pooling by 0.0500" in verdict(base) and "loses to the target alone by 0.0500" in verdict(base)
    noisy = dict(base, test_noise={"basis": "seeds and test rows", "rows": 20, "metric": {"pooled": 0.03, "stl": 0.02},
                                   "loss": {}})
    text = verdict(noisy)
    assert "ties with pooling (+0.0500, within twice the noise of seeds and test rows 0.0600)" in text
    assert "loses to the target alone by 0.0500 (twice the noise of seeds and test rows 0.0400)" in text


def test_a_candidate_must_beat_pooling_beyond_the_validation_rows_noise():
    """Seeds that agree do not make a gap clear when the validation rows disagree."""
    from planner.selection.plan import _clearly_better

    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.5, (3, 9))           # 9 validation rows, large per-row differences
    default_rows = np.zeros((3, 9)) + 0.5
    cand_rows = default_rows - 0.1 + noise - noise.mean(axis=1, keepdims=True) + 0.0
    cand = list(cand_rows.mean(axis=1))
    default = list(default_rows.mean(axis=1))
    assert _clearly_better(cand, default)                    # the seeds alone: a clear 0.1 gap
    assert not _clearly_better(cand, default, cand_rows, default_rows)  # the rows: within their noise
    tight = default_rows - 0.1 + 0.01 * noise
    assert _clearly_better(list(tight.mean(axis=1)), default, tight, default_rows)


def test_test_noise_pairs_rows_and_maps_squared_errors_to_rmse():
    """Classification: the accuracy's error comes from each row's 0-1 error; regression: the RMSE's from the
    squared errors by the delta method; a model without stored rows gives no test_noise (seeds only)."""
    from planner.selection.evidence import paired_se
    from planner.selection.plan import _test_noise

    rng = np.random.default_rng(2)
    sq = {name: rng.gamma(2.0, 0.5, (3, 30)) for name in ("plan", "pooled", "stl")}
    rows = {name: [{"val": [0.0], "test": list(v[r])} for r in range(3)] for name, v in sq.items()}
    rmse = {name: list(np.sqrt(v.mean(axis=1))) for name, v in sq.items()}
    out = _test_noise(rows, rmse, "rmse", False)
    assert out["rows"] == 30
    for name in ("pooled", "stl"):
        assert out["loss"][name] == pytest.approx(paired_se(sq["plan"], sq[name]))
        assert out["metric"][name] == pytest.approx(out["loss"][name] / (np.mean(rmse["plan"]) + np.mean(rmse[name])))
    err = {name: (rng.random((3, 30)) < 0.2).astype(float) for name in sq}
    cls = {name: [{"val": [0.0], "test": list(sq[name][r]), "test_error": list(err[name][r])} for r in range(3)]
           for name in sq}
    out = _test_noise(cls, {n: list(1 - e.mean(axis=1)) for n, e in err.items()}, "accuracy", True)
    assert out["metric"]["stl"] == pytest.approx(paired_se(err["plan"], err["stl"]))
    rows["stl"][1] = None  # a final model stored before per-row losses were kept
    assert _test_noise(rows, rmse, "rmse", False) is None


def _fit_crossed(effect, noise, offset, seed=0, k=8, n=56):
    """Every subset measured by the same 4 measurers (as the gradient estimate's base networks): f is
    their mean; ``effect`` the spread of the sources' true scores, ``offset`` each measurer's own shift."""
    rng = np.random.default_rng(seed)
    subsets = design(k, 3, n, seed=seed)
    theta = np.linspace(-effect, effect, k)
    shift = rng.normal(0, offset, 4)
    runs = np.array([[0.5 + theta[list(s)].sum() + shift[r] + rng.normal(0, noise) for r in range(4)]
                     for s in subsets])
    stl = list(0.5 + shift + rng.normal(0, noise, 4))
    groups = {tuple(s): list(runs[i]) for i, s in enumerate(subsets)}
    return fit_estimate("T", [f"s{i}" for i in range(k)], subsets, runs.mean(axis=1), stl, groups,
                        EstimateSettings(n_boot=0, seed=seed, surrogate="linear"), estimator="gradient",
                        f_replicates=4, crossed=True)


def test_subset_effects_smaller_than_a_networks_seed_are_not_separable_however_repeatable_their_mean():
    """The measurers' offsets cancel between subsets, so the 4-measurer mean ranks subsets repeatably
    (reliability of f high), but the subsets move one measurement less than the measurer does: not
    separable, and the warning says both."""
    est = _fit_crossed(effect=0.01, noise=0.004, offset=0.05)
    d = est.diagnostics
    assert d["reliability_of_f"] > 0.8 and d["reliability"] < 0.5
    assert not est.separable
    low = [w for w in est.warnings if w.startswith("low reliability")]
    assert len(low) == 1 and "ranks subsets repeatably" in low[0] and "one base network's" in low[0]


def test_subset_effects_larger_than_a_networks_seed_are_separable():
    est = _fit_crossed(effect=0.05, noise=0.004, offset=0.005)
    assert est.diagnostics["reliability"] > 0.5 and est.diagnostics["reliability_of_f"] > 0.9
    assert est.separable and not any(w.startswith("low reliability") for w in est.warnings)
    assert sorted(est.scores, key=est.scores.get) == [f"s{i}" for i in range(8)]


def _inverted_sources(k=6, n=200, p=4, seed=0):
    """Sources that are all the target's rule with every label inverted: interchangeable (no subset of
    a fixed size differs from another but by noise), and every one harmful through a shared head."""
    from planner_models.data import TaskData, split_rows

    rng = np.random.default_rng(seed)
    w = rng.standard_normal(p)
    task = np.repeat(np.arange(k + 1), n)
    X = rng.standard_normal((len(task), p))
    y = (X @ w + 0.3 * rng.standard_normal(len(task)) > 0).astype(np.int64)
    y[task > 0] = 1 - y[task > 0]
    return TaskData(X=X.astype(np.float32), y=y, task=task, split=split_rows(task, k + 1, seed, 0.2, 0.2),
                    task_names=["target"] + [f"s{i}" for i in range(k)], feature_names=[f"x{j}" for j in range(p)],
                    n_classes=2, class_names=["0", "1"], source="test")


@pytest.mark.parametrize("estimator", ["auto", "retrain"])
def test_runs_that_cannot_separate_sources_still_drop_them_all_when_the_target_alone_is_clearly_better(estimator):
    """Not separable is not "pool regardless": whether sources help at all needs no ranking, and here
    pooling is far worse than the target alone (the models measure it, on test too)."""
    from planner.selection.evidence import POOLING_RECOMMENDATION
    from planner.selection.plan import PlanSettings, run_plan
    from planner_models.train import TrainConfig

    report, est, _ = run_plan(_inverted_sources(), "target", EstimateSettings(n_boot=20, estimator=estimator),
                              TrainConfig(heads="shared", epochs=20), PlanSettings())
    assert not est.separable and any(w.startswith("low reliability") for w in est.warnings)
    assert report["selected"] == [] and report["decision"].startswith("none: the runs cannot separate")
    assert POOLING_RECOMMENDATION not in report["warnings"]
    assert any("the target alone beat pooling on validation" in w for w in report["warnings"])
    assert report["test_loss"]["plan"] < report["test_loss"]["pooled"]
    assert "loses" not in report["verdict"]


def test_reliability_text_names_one_measurement_first_and_the_mean_where_it_differs():
    from planner.selection.evidence import reliability_text

    assert reliability_text({"reliability": 0.27, "reliability_interval": [0.15, 0.41], "reliability_of_f": 0.99}) == \
        "reliability 0.27 (90% 0.15-0.41; of f 0.99)"
    assert reliability_text({"reliability": 0.6, "reliability_interval": [None, None], "reliability_of_f": 0.6}) == \
        "reliability 0.60"
    assert reliability_text({"reliability": None, "reliability_of_f": None}) == "reliability n/a"
    from planner.selection.evidence import _pct

    assert (_pct(0.4988), _pct(0.5), _pct(0.27)) == ("49.9%", "50%", "27%")   # no "only 50%" under the bar


def test_spearman_ceiling_bounds_a_surrogate_that_pools_subsets():
    """Oracle: a planted linear truth F with one noisy run per subset at a known reliability 0.3. A
    perfect surrogate predicts F, which ranks the runs at (6/pi) asin(sqrt(0.3)/2) = 0.53; the fitted
    surrogate's held-out Spearman stays below that, and above what one run predicts of another run of the
    same subset ((6/pi) asin(0.3/2) = 0.29), which an earlier ceiling wrongly claimed as the most."""
    import math

    from planner.reliability import spearman_of_pearson

    k, true_rel = 10, 0.3
    held = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        subsets = design(k, 3, 120, seed=seed)
        theta = np.linspace(-0.03, 0.03, k)
        F = np.array([theta[list(s)].sum() for s in subsets])
        sd = math.sqrt(F.var() * (1 / true_rel - 1))
        f = F + rng.normal(0, sd, len(F))
        groups = {tuple(s): [f[i], F[i] + rng.normal(0, sd)] for i, s in enumerate(subsets[:40])}
        est = fit_estimate("T", [f"s{i}" for i in range(k)], subsets, f, list(rng.normal(0, sd, 3)), groups,
                           EstimateSettings(n_boot=0, seed=seed, surrogate="linear"))
        d = est.diagnostics
        assert d["spearman_ceiling"] == pytest.approx(spearman_of_pearson(math.sqrt(d["reliability_of_f"])))
        held.append(d["spearman"])
    assert max(held) <= spearman_of_pearson(math.sqrt(true_rel)) + 0.03
    assert np.mean(held) > spearman_of_pearson(true_rel) + 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_near_interchangeable_real_sources_read_as_such(seed):
    """Real TV16 states as they are (Nevada and 16 others, one head per state, default estimate): the
    runs must not claim to separate them. One network's reliability is at most 0.5, the report warns,
    and the plan would be pooling. (The gradient estimate's 4-network mean ranks these subsets almost
    perfectly repeatably; auto must not take that for a finding.)"""
    from planner_models.noise import label_noise_case
    from planner_models.train import TrainConfig

    case = label_noise_case("tv16", 16, seed=seed, rates=[0.0] * 16)
    est = estimate(case.data, case.data.task_names[case.target],
                   EstimateSettings(seed=seed, n_boot=0, n_subsets=40), TrainConfig())
    assert est.diagnostics["reliability"] <= 0.5 and not est.separable
    assert any(w.startswith("low reliability") for w in est.warnings)


def test_label_noise_sources_ranked_by_their_flip_rate_with_the_defaults():
    """The same states, 16 sources with labels flipped at rates 0-0.5: the default estimate separates
    them and ranks them by their flip rates (the truth) at Spearman >= 0.8."""
    from planner.reliability import spearman
    from planner_models.noise import label_noise_case
    from planner_models.train import TrainConfig

    case = label_noise_case("tv16", 16, seed=0)
    est = estimate(case.data, case.data.task_names[case.target], EstimateSettings(seed=0, n_boot=0), TrainConfig())
    rates = case.rate_of()
    assert est.separable and est.diagnostics["reliability"] > 0.5
    assert spearman([est.scores[t] for t in rates], list(rates.values())) >= 0.8
