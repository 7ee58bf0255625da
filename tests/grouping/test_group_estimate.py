"""Affinities estimated from training and ``planner group``."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from planner_models.data import TaskData, synthetic_classification
from planner_models.grouping import _Lookahead, _prepare, tag_affinities, train_groups
from planner_models.mtl import MTLNet, init_params
from planner_models.train import TrainConfig
from helpers import run_cli, write_tasks_csv

torch.set_num_threads(1)

CFG = TrainConfig(hidden=(16,), epochs=8, batch_size=64, loss="ce", device="cpu")


@pytest.fixture(scope="module")
def related():
    # target, s01 (close to the target), s02 and s03 (far from it)
    return synthetic_classification(k=3, p=6, n_per_task=300, n_good=1, a=0.1, b=3.0, seed=1)


def _pair(kind: str) -> TaskData:
    """Task "a" and a second task on the same inputs: same labels, or random labels."""
    d = synthetic_classification(k=1, p=6, n_per_task=400, seed=2)
    X, y, split = d.X[d.task == 0], d.y[d.task == 0], d.split[d.task == 0]
    y2 = y if kind == "same" else np.random.default_rng(0).integers(0, 2, len(y))
    return TaskData(X=np.vstack([X, X]), y=np.concatenate([y, y2]), task=np.repeat([0, 1], len(y)),
                    split=np.concatenate([split, split]), task_names=["a", kind], feature_names=d.feature_names,
                    n_classes=2)


# -- models.grouping ---------------------------------------------------------------------------
def test_train_groups_reports_every_member_and_is_deterministic(related):
    groups = [[2, 0], [1], [0, 1, 2, 3]]
    res = train_groups(related, groups, CFG, [5, 6, 7])
    again = train_groups(related, groups[::-1], CFG, [7, 6, 5])[::-1]
    for g, r, r2 in zip(groups, res, again):
        assert r.members == tuple(g)
        assert set(r.val_losses) == set(g) == set(r.test)
        assert all(math.isfinite(v) and v > 0 for v in r.val_losses.values())
        assert all(0 <= m["accuracy"] <= 1 and m["loss"] == m["ce"] for m in r.test.values())
        assert r.val_losses == r2.val_losses and r.test == r2.test     # a model depends on its seed only
        assert 1 <= r.best_epoch <= r.epochs <= CFG.epochs
    with pytest.raises(ValueError):
        train_groups(related, [[0, 0]], CFG, [0])
    with pytest.raises(ValueError):
        train_groups(related, [[9]], CFG, [0])


def test_lookahead_matches_a_manual_step_in_onto_orientation(related):
    prep = _prepare(related, CFG)
    members = (0, 1, 2)
    net = MTLNet.from_params(init_params(3, related.n_features, CFG.hidden, 3, 2), related.n_features, CFG.hidden)
    rows = np.concatenate([prep.train_rows[t][:20] for t in members])
    b = torch.as_tensor(rows)
    slots = torch.as_tensor(np.repeat([0, 1, 2], 20))
    hook = _Lookahead(prep, members, lr=0.5, every=1)
    hook(net, b, slots)
    Z = hook.sum / hook.cnt                              # Z[i, j] = Z[i -> j]

    def task_loss(model, k):
        sel = slots == k
        return torch.nn.functional.cross_entropy(model(prep.X[b][sel], slots[sel]), prep.y[b][sel]).item()

    for i in range(3):
        stepped = copy.deepcopy(net)
        loss_i = torch.nn.functional.cross_entropy(stepped(prep.X[b][slots == i], slots[slots == i]), prep.y[b][slots == i])
        enc = list(stepped.encoder.parameters())
        grads = torch.autograd.grad(loss_i, enc)
        with torch.no_grad():
            for p, g in zip(enc, grads):
                p -= 0.5 * g                             # the encoder only; heads stay
        for j in range(3):
            expected = 1 - task_loss(stepped, j) / task_loss(net, j)
            assert Z[i, j] == pytest.approx(expected, rel=1e-3, abs=1e-6)
    # tag_affinities returns the onto orientation: matrix[j][i] = Z[i -> j]
    res = tag_affinities(related, [0, 1, 2], CFG, seed=0, lookahead_lr=0.1, every=1000)   # first step only
    assert np.array(res.steps).max() == 1


def test_tag_affinity_positive_for_identical_tasks_lower_for_unrelated():
    same = np.array(tag_affinities(_pair("same"), [0, 1], CFG, seed=0, lookahead_lr=0.1).matrix)
    rand = np.array(tag_affinities(_pair("random"), [0, 1], CFG, seed=0, lookahead_lr=0.1).matrix)
    assert same[0, 1] > 0 and same[1, 0] > 0
    assert rand[0, 1] < same[0, 1] and rand[1, 0] < same[1, 0]


def test_tag_affinity_ranks_a_close_source_above_far_ones(related):
    M = np.array(tag_affinities(related, [0, 1, 2, 3], CFG, seed=0, lookahead_lr=0.1).matrix)
    assert M.shape == (4, 4)
    assert M[0, 1] > max(M[0, 2], M[0, 3])              # onto the target: the close source helps most
    assert M[1, 0] > max(M[1, 2], M[1, 3])
    assert all(M[i, i] > 0 for i in range(4))           # a step on a task's own loss lowers it


# -- planner.grouping.estimate --------------------------------------------------------------------
def test_hoa_matrix_holds_single_task_and_pair_losses(related):
    from planner.grouping.estimate import GroupSettings, _Models, affinity_hoa, _resolved
    from planner.jobs import JobRunner
    from planner.store import Store

    cfg = _resolved(TrainConfig(hidden=(8,), epochs=4, batch_size=64, device="cpu"), related)
    assert cfg.loss == "ce"
    tasks = [3, 0, 2]
    with Store(":memory:") as store:
        runner = JobRunner(store)
        models = _Models(runner, related, cfg, 0)
        M, info = affinity_hoa(models, tasks, GroupSettings(method="hoa", max_groups=2))
        assert runner.trained == 3 + 3 and info["models"] == 6
        runs = models.get([[0], [0, 3], [2, 3]])
        assert runner.trained == 6                      # all from the store
    names = related.task_names
    assert M.shape == (3, 3)
    assert M[1, 1] == runs[((0,), 0)].val_losses[names[0]]
    assert M[1, 0] == runs[((0, 3), 0)].val_losses[names[0]]      # onto: task 0's loss in the pair {0, 3}
    assert M[0, 1] == runs[((0, 3), 0)].val_losses[names[3]]
    assert M[2, 0] == runs[((2, 3), 0)].val_losses[names[2]]


class _FakeModels:
    """Losses L_a(S) = 1 - sum_{b in S, b != a} E[a][b] (known effects), no training."""

    def __init__(self, E):
        self.E = np.asarray(E)
        self.data = type("D", (), {"task_names": [f"t{i}" for i in range(len(E))]})()

    def get(self, groups, replicates=1):
        from planner.store import RunRecord

        out = {}
        for g in groups:
            key = tuple(sorted(g))
            vals = {f"t{a}": 1.0 - sum(self.E[a][b] for b in g if b != a) for a in g}
            out[(key, 0)] = RunRecord(tuple(f"t{a}" for a in key), 0, 0, 0.0, vals, {}, 0.0, "cpu")
        return out


def test_subsets_affinity_recovers_the_order_of_known_effects():
    from planner.grouping.estimate import GroupSettings, affinity_subsets

    rng = np.random.default_rng(0)
    E = rng.uniform(-0.05, 0.1, (6, 6))
    np.fill_diagonal(E, 0)
    M, info = affinity_subsets(_FakeModels(E), list(range(6)), GroupSettings(method="subsets", max_groups=2, alpha=3))
    assert info["n_subsets"] == 20 and info["pairs_never_together"] == 0
    assert np.all(np.diag(M) == 0)
    for a in range(6):
        others = [b for b in range(6) if b != a]
        # with every subset of size 3, mu_a - mu_ab is E[a][b] minus a constant of row a
        assert np.argsort(M[a, others]).tolist() == np.argsort(E[a, others]).tolist()
    with pytest.raises(Exception, match="alpha"):
        affinity_subsets(_FakeModels(E), list(range(6)), GroupSettings(method="subsets", max_groups=2, alpha=6))


def test_budget_parsing():
    from planner.grouping.estimate import GroupingError, parse_budget

    assert parse_budget(None, 100) is None
    assert parse_budget("250", 100) == 250
    assert parse_budget("1.5x", 100) == 150
    for bad in ("abc", "-1", "0x", "nan"):
        with pytest.raises(GroupingError):
            parse_budget(bad, 100)


# -- the command -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    d = synthetic_classification(k=3, p=5, n_per_task=150, n_good=1, a=0.2, b=3.0, seed=4)
    return write_tasks_csv(d, tmp_path_factory.mktemp("group") / "tasks.csv", "group", "label", ("no", "yes"))


def _run(*args):
    return run_cli(*args, catch_exceptions=False)


COMMON = ["--task-column", "group", "--label-column", "label", "--epochs", "4", "--hidden", "8", "--batch-size", "64"]


@pytest.mark.parametrize("method", ["hoa", "tag", "subsets"])
def test_cli_group_end_to_end_json(tmp_path, csv_path, method):
    inst = tmp_path / "inst.json"
    store = tmp_path / "store.db"
    args = ["group", "--data", csv_path, *COMMON, "--method", method, "--max-groups", "2",
            "--store", store, "--instance-out", inst, "--json"]
    res = _run(*args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    tasks = ["target", "s01", "s02", "s03"]
    assert sorted(report["tasks"]) == sorted(tasks)
    assert report["method"] == method and report["status"] == "optimal"
    assert report["mode"] == ("partition" if method == "subsets" else "cover")
    assert 1 <= len(report["groups"]) <= 2
    covered = {t for g in report["groups"] for t in g}
    assert covered == set(tasks)
    for key in ("plan", "stl", "all_in_one"):
        assert set(report["test"][key]) == set(tasks)
        assert all(0 <= v <= 1 for v in report["test"][key].values())
        assert report["aggregate"][key] == pytest.approx(np.mean(list(report["test"][key].values())))
    for t in tasks:
        assert t in report["groups"][report["served_by"][t]]
    assert report["seconds"] > 0 and report["metric"] == "accuracy"
    # the instance written is valid and gives the same groups when solved alone
    solved = _run("solve", inst, "--json")
    assert solved.exit_code == 0, solved.output
    assert sorted(map(sorted, json.loads(solved.stdout)["solution"]["groups"])) == sorted(map(sorted, report["groups"]))
    # a rerun with the same store trains nothing
    again = json.loads(_run(*args).stdout)
    assert again["models_trained"] == 0
    assert again["test"] == report["test"] and again["groups"] == report["groups"]


def test_cli_group_table_budget_and_tasks(tmp_path, csv_path):
    res = _run("group", "--data", csv_path, *COMMON, "--method", "hoa", "--max-groups", "3",
               "--tasks", "target,s01,s02", "--rows-budget", "1x")
    assert res.exit_code == 0, res.output
    assert "plan" in res.stdout and "single" in res.stdout and "all-in-one" in res.stdout
    assert "s03" not in res.stdout
    # a budget below any cover of the tasks: infeasible (exit 3), one line
    res = _run("group", "--data", csv_path, *COMMON, "--method", "hoa", "--max-groups", "2", "--rows-budget", "10")
    assert res.exit_code == 3
    assert res.stderr.strip().startswith("error:") and "budget" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1       # refused before any training


@pytest.mark.parametrize("extra,needle", [
    (["--method", "nope", "--max-groups", "2"], "nope"),
    (["--method", "hoa", "--max-groups", "2", "--tasks", "target,mars"], "mars"),
    (["--method", "hoa", "--max-groups", "2", "--rows-budget", "lots"], "budget"),
    (["--method", "subsets", "--max-groups", "2", "--alpha", "9"], "alpha"),
    (["--method", "hoa", "--max-groups", "2", "--tasks", "target"], "at least 2"),
])
def test_cli_group_bad_input_exit_2(csv_path, extra, needle):
    res = _run("group", "--data", csv_path, *COMMON, *extra)
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output


def test_cli_group_budget_is_respected(csv_path):
    res = _run("group", "--data", csv_path, *COMMON, "--method", "hoa", "--max-groups", "4", "--rows-budget", "1.3x", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    cost = report["cost"]
    assert cost["budget"] == pytest.approx(1.3 * cost["single_task_rows"])
    assert cost["single_task_rows"] <= cost["rows"] <= cost["budget"]


def test_regression_group_models_report_label_units():
    from planner_models.data import synthetic_linear

    d = synthetic_linear(k=2, p=4, n_per_task=200, seed=0)
    d.y = d.y * 10.0                                     # losses must follow the label's units
    cfg = TrainConfig(hidden=(8,), epochs=5, batch_size=64, loss="mse", device="cpu")
    (res,) = train_groups(d, [[0, 1]], cfg, [0])
    for t in (0, 1):
        m = res.test[t]
        assert set(m) == {"mse", "rmse", "mae", "loss"}
        assert m["rmse"] == pytest.approx(math.sqrt(m["mse"])) and m["loss"] == m["mse"]
        assert m["rmse"] > 1.0                          # in the scaled units, not standardised ones
    M = np.array(tag_affinities(d, [0, 1, 2], cfg, seed=0, lookahead_lr=0.1).matrix)
    assert M.shape == (3, 3) and np.isfinite(M).all()


def test_group_from_runs_recovers_planted_clusters(tmp_path):
    """`planner group --runs`: group runs from elsewhere whose losses fall with same-cluster partners and rise
    with the others come back as the two planted clusters; a line without every member's loss is exit 2."""
    import json as _json

    from click.testing import CliRunner

    from planner.cli import main

    rng = np.random.default_rng(5)
    tasks = [f"t{i}" for i in range(6)]
    cluster = {t: i // 3 for i, t in enumerate(tasks)}
    lines = []
    for r in range(120):
        g = sorted(rng.choice(6, size=3, replace=False).tolist())
        members = [tasks[i] for i in g]
        losses = {a: 0.5 + sum(-0.05 if cluster[a] == cluster[b] else 0.05 for b in members if b != a)
                  + float(rng.normal(0, 0.005)) for a in members}
        lines.append(_json.dumps({"subset": members, "loss": float(np.mean(list(losses.values()))), "seed": r,
                                  "losses": losses}))
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    inst = tmp_path / "g.json"
    res = CliRunner().invoke(main, ["group", "--runs", str(path), "--max-groups", "2", "--instance-out", str(inst), "--json"])
    assert res.exit_code == 0, res.output
    groups = sorted(sorted(g) for g in _json.loads(res.stdout)["solution"]["groups"])
    assert groups == [["t0", "t1", "t2"], ["t3", "t4", "t5"]]
    assert inst.exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_json.dumps({"subset": ["t0", "t1"], "loss": 0.5, "seed": 0, "losses": {"t0": 0.5}}) + "\n")
    res = CliRunner().invoke(main, ["group", "--runs", str(bad), "--max-groups", "2"])
    assert res.exit_code == 2 and "losses" in res.output and "Traceback" not in res.output


def test_group_subsets_affinities_from_the_gradient_estimate(tmp_path, csv_path):
    res = _run("group", "--data", csv_path, *COMMON, "--method", "subsets", "--estimator", "gradient",
               "--max-groups", "2", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["estimate"]["estimator"] == "gradient"
    M = np.array(report["affinity"]["matrix"])
    assert M.shape == (4, 4) and np.isfinite(M).all() and np.abs(M).sum() > 0
    bad = _run("group", "--data", csv_path, *COMMON, "--method", "hoa", "--estimator", "gradient", "--max-groups", "2")
    assert bad.exit_code == 2 and "--method subsets" in bad.output
