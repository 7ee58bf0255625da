"""The batched trainer: equal to a plain one-model-at-a-time loop, deterministic, independent of
how subsets are grouped; baselines; configuration; small and fast on the CPU."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import assert_same_result
from planner_models.data import synthetic_classification, synthetic_linear
from planner_models.mtl import BatchedMTL, MTLNet, init_params
from planner_models.train import (TrainConfig, resolve_device, train_pooled, train_single_task,
                          train_subsets, train_subsets_plain)

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def binary():
    return synthetic_classification(k=5, p=4, n_per_task=[120, 90, 150, 60, 120, 100], seed=3)


SUBSETS = [[1, 2], [3], [], [2, 4, 5], [5, 1], [4], [1, 2, 3, 4, 5]]


@pytest.mark.parametrize("kw", [
    dict(batch_size=32, epochs=4, patience=2),
    dict(batch_size=50, epochs=3, patience=None, loss="ce", weight_decay=1e-3, hidden=(8, 16)),
    dict(batch_size=40, epochs=5, patience=1, train_fraction=0.5, epoch_fraction=0.4, loss="zero_one"),
])
def test_batched_equals_plain_loop_binary(binary, kw):
    cfg = TrainConfig(lr=1e-2, **kw)
    seeds = [11, 12, 13, 14, 15, 16, 17]
    for a, b in zip(train_subsets(binary, 0, SUBSETS, cfg, seeds), train_subsets_plain(binary, 0, SUBSETS, cfg, seeds)):
        assert_same_result(a, b)


def test_batched_equals_plain_loop_multiclass_and_regression():
    multi = synthetic_classification(k=3, p=4, n_per_task=80, n_classes=3, seed=4)
    cfg = TrainConfig(batch_size=24, epochs=3, patience=2, lr=1e-2)
    subs, seeds = [[1], [2, 3], []], [0, 1, 2]
    for a, b in zip(train_subsets(multi, 0, subs, cfg, seeds), train_subsets_plain(multi, 0, subs, cfg, seeds)):
        assert_same_result(a, b)
    reg = synthetic_linear(k=3, p=4, n_per_task=80, seed=5)
    for a, b in zip(train_subsets(reg, 0, subs, cfg, seeds), train_subsets_plain(reg, 0, subs, cfg, seeds)):
        assert_same_result(a, b, tol=1e-4)
        assert set(a.test) == {"loss", "mse", "rmse", "mae"} and a.test["rmse"] == pytest.approx(a.test["mse"] ** 0.5)


def test_fixed_seed_identical_and_independent_of_grouping(binary):
    cfg = TrainConfig(batch_size=32, epochs=3, patience=2)
    seeds = list(range(len(SUBSETS)))
    ref = train_subsets(binary, 0, SUBSETS, cfg, seeds)
    again = train_subsets(binary, 0, SUBSETS, cfg, seeds)
    assert [r.to_dict() | {"seconds": 0} for r in ref] == [r.to_dict() | {"seconds": 0} for r in again]
    # other group sizes, other order, a resumed run that trains only some subsets: bitwise the same
    for chunk in (1, 2, 3):
        other = train_subsets(binary, 0, SUBSETS, TrainConfig(batch_size=32, epochs=3, patience=2, chunk_size=chunk), seeds)
        assert [(r.f, r.val_losses, r.test) for r in other] == [(r.f, r.val_losses, r.test) for r in ref]
    part = train_subsets(binary, 0, SUBSETS[::-2], cfg, seeds[::-2])
    assert [(r.f, r.test) for r in part] == [(r.f, r.test) for r in ref[::-2]]
    # a different seed gives a different model
    assert train_subsets(binary, 0, SUBSETS[:1], cfg, [99])[0].f != ref[0].f


def test_results_in_input_order_with_target_added(binary):
    cfg = TrainConfig(batch_size=32, epochs=1)
    res = train_subsets(binary, "target", [[3, 1], [0, 2, 2], []], cfg, [1, 2, 3])
    assert [r.subset for r in res] == [(0, 1, 3), (0, 2), (0,)]
    assert [r.seed for r in res] == [1, 2, 3]
    assert all(set(r.val_losses) == set(r.subset) for r in res)
    assert res[0].val_losses[0] == res[0].f
    assert set(res[0].test) == {"loss", "accuracy", "ce", "margin", "zero_one"}
    assert res[0].test["loss"] == res[0].test["margin"]  # default loss: negative margin
    assert res[0].device == str(resolve_device("auto")) and res[0].seconds > 0 and res[0].n_train > 0
    # other target: indices refer to the data's tasks
    r = train_subsets(binary, 2, [[0]], cfg, [0])[0]
    assert r.subset == (2, 0)


def test_losses_reported_match_their_definitions(binary):
    base = dict(batch_size=32, epochs=2, patience=None)
    m = train_subsets(binary, 0, [[1]], TrainConfig(loss="margin", **base), [0])[0]
    ce = train_subsets(binary, 0, [[1]], TrainConfig(loss="ce", **base), [0])[0]
    zo = train_subsets(binary, 0, [[1]], TrainConfig(loss="zero_one", **base), [0])[0]
    # the same model (loss only changes what is reported)
    assert m.test["ce"] == ce.test["ce"] == zo.test["ce"]
    assert -1 <= m.f <= 1 and ce.f > 0 and 0 <= zo.f <= 1
    assert zo.test["loss"] == pytest.approx(1 - zo.test["accuracy"])


def test_baselines_single_task_and_pooled(binary):
    cfg = TrainConfig(batch_size=32, epochs=2)
    stl = train_single_task(binary, 0, cfg, seed=4)
    pooled = train_pooled(binary, "target", cfg, seed=4)
    assert stl.subset == (0,) and pooled.subset == (0, 1, 2, 3, 4, 5)
    assert stl.f == train_subsets(binary, 0, [[]], cfg, [4])[0].f


def test_training_learns():
    d = synthetic_classification(k=2, p=4, n_per_task=400, sigma=0.1, seed=0)
    cfg = TrainConfig(batch_size=64, epochs=30, patience=5, lr=1e-2)
    untrained = train_subsets(d, 0, [[]], TrainConfig(epochs=1, lr=1e-9), [0])[0]
    r = train_subsets(d, 0, [[]], cfg, [0])[0]
    assert r.test["accuracy"] > 0.85 and r.f < untrained.f - 0.3 and r.f < -0.5


def test_early_stopping_and_fractions(binary):
    full = train_subsets(binary, 0, [[1, 2]], TrainConfig(batch_size=32, epochs=10, patience=None), [0])[0]
    assert full.epochs == 10
    short = train_subsets(binary, 0, [[1, 2]], TrainConfig(batch_size=32, epochs=10, patience=None, epoch_fraction=0.2), [0])[0]
    assert short.epochs == 2
    few = train_subsets(binary, 0, [[1, 2]], TrainConfig(batch_size=32, epochs=10, train_fraction=0.4), [0])[0]
    assert few.n_train == pytest.approx(0.4 * full.n_train, abs=3)
    stop = train_subsets(binary, 0, [[1, 2]], TrainConfig(batch_size=32, epochs=200, patience=1, lr=0.05), [0])[0]
    assert stop.epochs < 200 and stop.epochs == stop.best_epoch + 1


def test_progress_and_empty(binary):
    seen = []
    train_subsets(binary, 0, SUBSETS, TrainConfig(batch_size=32, epochs=1, chunk_size=3), list(range(7)), progress=seen.append)
    assert sum(seen) == len(SUBSETS)
    assert train_subsets(binary, 0, [], TrainConfig(), []) == []


def test_bad_arguments(binary):
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="seeds"):
        train_subsets(binary, 0, [[1]], cfg, [0, 1])
    with pytest.raises(ValueError, match="not a task index"):
        train_subsets(binary, 0, [[9]], cfg, [0])
    with pytest.raises(ValueError):
        train_subsets(binary, "nope", [[1]], cfg, [0])
    with pytest.raises(ValueError, match="regression"):
        train_subsets(binary, 0, [[1]], TrainConfig(loss="mse"), [0])
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(lr=-1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            train_subsets(binary, 0, [[1]], TrainConfig(device="cuda"), [0])


def test_config_dict_round_trip():
    cfg = TrainConfig(hidden=[16, 8], train_fraction=0.4, epoch_fraction=0.2, device="cpu", chunk_size=7)
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d and "device" not in d and "chunk_size" not in d
    assert TrainConfig.from_dict(d) == TrainConfig(hidden=(16, 8), train_fraction=0.4, epoch_fraction=0.2)
    assert TrainConfig().hidden == (32,) and TrainConfig().batch_size == 128


def test_batched_layout_round_trip_and_plain_module():
    params = init_params(5, 3, (4, 20), 3, 2)
    net = BatchedMTL(3, (4, 20), 3, 2)
    theta = net.pack([params, init_params(6, 3, (4, 20), 3, 2)])
    assert theta.shape[1] % 16 == 0
    for a, b in zip(net.unpack(theta[0], 3), params):
        assert torch.equal(a, b)
    module = MTLNet.from_params(params, 3, (4, 20))
    for a, b in zip(module.params_list(), params):
        assert torch.equal(a, b)
    x = torch.randn(16, 3)
    slot = torch.randint(0, 3, (16,))
    x1 = torch.cat([x, torch.ones(16, 1)], 1)
    batched = net.forward_rows(theta[:1], x1.unsqueeze(0), slot.unsqueeze(0))[0]
    assert torch.allclose(batched, module(x, slot), atol=1e-6)


def test_models_never_import_planner(tmp_path):
    code = ("import sys, planner_models.data, planner_models.mtl, planner_models.train, planner_models.losses; "
            "print(any(m == 'planner' or m.startswith('planner.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for f in (ROOT / "models").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) planner\b(?!_)", f.read_text(), re.M), f


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_plain(binary):
    cfg_c = TrainConfig(batch_size=32, epochs=3, patience=2, device="cuda")
    cfg_p = TrainConfig(batch_size=32, epochs=3, patience=2, device="cpu")
    seeds = list(range(len(SUBSETS)))
    gpu = train_subsets(binary, 0, SUBSETS, cfg_c, seeds)
    assert all(r.device.startswith("cuda") for r in gpu)
    for a, b in zip(gpu, train_subsets_plain(binary, 0, SUBSETS, cfg_c, seeds)):
        assert_same_result(a, b, tol=1e-4)
    for a, b in zip(gpu, train_subsets(binary, 0, SUBSETS, cfg_p, seeds)):
        assert_same_result(a, b, tol=1e-4)
    again = train_subsets(binary, 0, SUBSETS, TrainConfig(batch_size=32, epochs=3, patience=2, device="cuda", chunk_size=2), seeds)
    assert [r.f for r in again] == pytest.approx([r.f for r in gpu], abs=1e-6)


def test_keep_last_state_equals_plain_and_differs_from_best():
    data = synthetic_classification(k=4, p=5, n_per_task=120, seed=0)
    subsets = [[1, 2], [3], [1, 2, 3]]
    seeds = [5, 6, 7]
    last = TrainConfig(epochs=6, lr=2e-2, patience=None, keep="last", device="cpu")
    a = train_subsets(data, 0, subsets, last, seeds)
    b = train_subsets_plain(data, 0, subsets, last, seeds)
    for x, y in zip(a, b):
        assert x.best_epoch == x.epochs == 6 and y.best_epoch == 6
        assert x.f == pytest.approx(y.f, abs=1e-5)
    assert "keep" not in TrainConfig().to_dict() and last.to_dict()["keep"] == "last"
    with pytest.raises(ValueError):
        TrainConfig(keep="middle")
