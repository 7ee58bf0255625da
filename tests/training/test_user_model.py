"""Your own model: loading and checking a user's builder, the torch.func batched path equal to the
plain loop, the fallback, determinism, and the routing through planner_models.train."""
import json
import pickle
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import assert_same_result
from planner_models.data import synthetic_classification, synthetic_linear
from planner_models.train import TrainConfig, train_pooled, train_single_task, train_subsets
from planner_models.user_model import (UserModel, UserModelError, as_user_model, load_user_model, model_fingerprint,
                               probe_vmap, train_subsets_user)

ROOT = Path(__file__).resolve().parents[2]
RESIDUAL = str(ROOT / "examples" / "user_model" / "layernorm_residual.py") + ":make_model"
CONV = str(ROOT / "examples" / "user_model" / "conv1d_model.py") + ":build"
SUBSETS = [[1, 2], [3], [], [2, 4, 5], [5, 1], [4], [1, 3]]
SEEDS = [11, 12, 13, 14, 15, 16, 17]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def binary():
    return synthetic_classification(k=5, p=4, n_per_task=[120, 90, 150, 60, 120, 100], seed=3)


def _write(tmp_path, body: str, name: str = "mymodel.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# ---------------------------------------------------------------------------- batched == loop
@pytest.mark.parametrize("kw", [
    dict(batch_size=32, epochs=4, patience=2),
    dict(batch_size=40, epochs=4, patience=1, train_fraction=0.5, epoch_fraction=0.6, loss="zero_one",
         weight_decay=1e-3),
])
def test_vmap_equals_loop_binary(binary, kw):
    cfg = TrainConfig(lr=1e-2, **kw)
    model = load_user_model(RESIDUAL)
    a = train_subsets_user(binary, 0, SUBSETS, cfg, SEEDS, model, mode="vmap")
    b = train_subsets_user(binary, 0, SUBSETS, cfg, SEEDS, model, mode="loop")
    for x, y in zip(a, b):
        assert_same_result(x, y)
    # the same result objects as the built-in trainer: slot 0 the target, every member's loss
    ref = train_subsets(binary, 0, SUBSETS, cfg, SEEDS)
    for x, r in zip(a, ref):
        assert x.subset == r.subset and x.val_losses.keys() == r.val_losses.keys() and x.test.keys() == r.test.keys()
        assert x.val_losses[0] == x.f and x.subset[0] == 0


def test_vmap_equals_loop_multiclass_and_regression():
    multi = synthetic_classification(k=3, p=4, n_per_task=80, n_classes=3, seed=4)
    reg = synthetic_linear(k=3, p=4, n_per_task=[80, 60, 100, 50], seed=5)
    model = load_user_model(CONV)
    for data, loss in ((multi, "ce"), (reg, "mse")):
        cfg = TrainConfig(lr=1e-2, batch_size=24, epochs=3, patience=2, loss=loss)
        a = train_subsets_user(data, 1, [[0, 2], [3], [], [0]], cfg, [1, 2, 3, 4], model, mode="vmap")
        b = train_subsets_user(data, 1, [[0, 2], [3], [], [0]], cfg, [1, 2, 3, 4], model, mode="loop")
        for x, y in zip(a, b):
            assert_same_result(x, y, tol=5e-5)
        if loss == "mse":
            assert set(a[0].test) == {"loss", "mse", "rmse", "mae"}


def test_deterministic_and_independent_of_grouping(binary):
    cfg = TrainConfig(lr=1e-2, batch_size=32, epochs=3, patience=2)
    model = load_user_model(RESIDUAL)
    a = train_subsets_user(binary, 0, SUBSETS, cfg, SEEDS, model)
    b = train_subsets_user(binary, 0, SUBSETS, cfg, SEEDS, load_user_model(RESIDUAL))
    assert [r.to_dict() | {"seconds": 0} for r in a] == [r.to_dict() | {"seconds": 0} for r in b]
    # a model trained alone, or in other groups, is the same model
    alone = train_subsets_user(binary, 0, [SUBSETS[3]], cfg, [SEEDS[3]], model)[0]
    assert_same_result(alone, a[3], tol=1e-6)
    chunked = train_subsets_user(binary, 0, SUBSETS, TrainConfig(lr=1e-2, batch_size=32, epochs=3, patience=2,
                                                                 chunk_size=1), SEEDS, model)
    for x, y in zip(chunked, a):
        assert_same_result(x, y, tol=1e-6)
    # another seed gives another model; the global generator is left alone
    state = torch.random.get_rng_state()
    other = train_subsets_user(binary, 0, [SUBSETS[3]], cfg, [99], model)[0]
    assert other.f != a[3].f and torch.equal(state, torch.random.get_rng_state())


def test_routing_through_models_train(binary, tmp_path):
    cfg = TrainConfig(lr=1e-2, batch_size=32, epochs=2, patience=None)
    direct = train_subsets_user(binary, 0, SUBSETS[:3], cfg, SEEDS[:3], RESIDUAL)
    via_arg = train_subsets(binary, 0, SUBSETS[:3], cfg, SEEDS[:3], builder=RESIDUAL)
    via_cfg = train_subsets(binary, 0, SUBSETS[:3], TrainConfig(lr=1e-2, batch_size=32, epochs=2, patience=None,
                                                                 model=RESIDUAL), SEEDS[:3])
    for x, y, z in zip(direct, via_arg, via_cfg):
        assert x.to_dict() | {"seconds": 0} == y.to_dict() | {"seconds": 0} == z.to_dict() | {"seconds": 0}
    stl = train_single_task(binary, 0, cfg, 11, builder=RESIDUAL)
    pooled = train_pooled(binary, 0, cfg, 11, builder=RESIDUAL)
    assert stl.subset == (0,) and pooled.subset == (0, 1, 2, 3, 4, 5)
    # the store key: unchanged without a model; with one, the spec and a hash of the file
    assert "model" not in cfg.to_dict() and "model_sha256" not in cfg.to_dict()
    src = _write(tmp_path, "from torch import nn\ndef build(i, k, c):\n    return nn.Linear(i, c)\n")
    with_model = TrainConfig(model=f"{src}:build")
    d = with_model.to_dict()
    assert json.loads(json.dumps(d)) == d and d["model"] == f"{src}:build" and len(d["model_sha256"]) == 64
    assert TrainConfig.from_dict(d) == with_model
    src.write_text(src.read_text() + "# edited\n")
    assert with_model.to_dict()["model_sha256"] != d["model_sha256"]
    assert model_fingerprint(RESIDUAL) == load_user_model(RESIDUAL).fingerprint()
    with pytest.raises(ValueError, match="model must be"):
        TrainConfig(model="no_colon")


def test_build_function_really_called(binary, tmp_path, monkeypatch):
    marker = tmp_path / "built.txt"
    monkeypatch.setenv("MTL_EXAMPLE_MARKER", str(marker))
    model = load_user_model(RESIDUAL)
    cfg = TrainConfig(lr=1e-2, batch_size=32, epochs=1, patience=None)
    train_subsets_user(binary, 0, [[1, 2], [3, 4]], cfg, [1, 2], model)
    lines = marker.read_text().splitlines()
    # one module per subset model, plus the check and the two probe modules for this head count
    assert lines.count("4 3 2") == 2 + 3 and len(lines) == 5
    assert model.fn.__globals__["BUILD_CALLS"] == 5
    # a second call probes nothing again
    train_subsets_user(binary, 0, [[1, 5]], cfg, [3], model)
    assert len(marker.read_text().splitlines()) == 6


def test_user_model_pickles_by_spec():
    model = load_user_model(RESIDUAL)
    again = pickle.loads(pickle.dumps(model))
    assert isinstance(again, UserModel) and again.spec == RESIDUAL
    m1, m2 = model.build(4, 2, 2, seed=5), again.build(4, 2, 2, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


# ---------------------------------------------------------------------------- fallback
class WithBatchNorm(nn.Module):
    def __init__(self, in_dim, n_tasks, out_dim):
        super().__init__()
        self.fc = nn.Linear(in_dim, 8)
        self.bn = nn.BatchNorm1d(8)
        self.heads = nn.Parameter(torch.randn(n_tasks, 8, out_dim) * 0.3)

    def forward(self, x, task):
        h = torch.relu(self.bn(self.fc(x)))
        return torch.einsum("nh,nhc->nc", h, self.heads[task])


class DataDependent(nn.Module):
    def __init__(self, in_dim, n_tasks, out_dim):
        super().__init__()
        self.a = nn.Linear(in_dim, out_dim)
        self.b = nn.Linear(in_dim, out_dim)

    def forward(self, x, task):
        if bool((task == 0).all()):          # Python control flow on the data: no vmap
            return self.a(x)
        return torch.where((task == 0).unsqueeze(1), self.a(x), self.b(x))


def test_fallback_for_batchnorm_and_data_dependent_flow(binary):
    cfg = TrainConfig(lr=1e-2, batch_size=32, epochs=2, patience=None)
    for cls, why in ((WithBatchNorm, "running"), (DataDependent, "torch.func")):
        model = as_user_model(cls)
        auto = train_subsets_user(binary, 0, SUBSETS[:4], cfg, SEEDS[:4], model)
        assert model._probes and not any(ok for ok, _ in model._probes.values())
        assert all(why in reason for _, reason in model._probes.values())
        loop = train_subsets_user(binary, 0, SUBSETS[:4], cfg, SEEDS[:4], model, mode="loop")
        assert [r.to_dict() | {"seconds": 0} for r in auto] == [r.to_dict() | {"seconds": 0} for r in loop]
        with pytest.raises(UserModelError, match="cannot be trained batched"):
            train_subsets_user(binary, 0, SUBSETS[:1], cfg, SEEDS[:1], model, mode="vmap")


def test_probe_accepts_the_examples(binary):
    X = torch.from_numpy(binary.X[:8])
    y = torch.from_numpy(binary.y[:8])
    for spec in (RESIDUAL, CONV):
        model = load_user_model(spec)
        mods = [model.build(4, 3, 2, seed=s) for s in (0, 1)]
        assert probe_vmap(model, mods, X, y, 3, True) == (True, "")


# ---------------------------------------------------------------------------- bad models
def _err(spec_or_fn, binary):
    with pytest.raises(UserModelError) as info:
        train_subsets(binary, 0, [[1]], TrainConfig(lr=1e-2, batch_size=32, epochs=3, patience=None), [0],
                      builder=spec_or_fn)
    return info.value


@pytest.mark.parametrize("body, fn, why", [
    ("import no_such_package_here\n", "build", "importing .* failed: ModuleNotFoundError"),
    ("raise RuntimeError('boom')\n", "build", "importing .* failed: RuntimeError: boom"),
    ("def build(in_dim, n_tasks, out_dim):\n    pass\n", "make", "has no function 'make' .*build"),
    ("def build(in_dim, n_tasks):\n    pass\n", "build", r"must take \(in_dim, n_tasks, out_dim\)"),
    ("build = 3\n", "build", "not a function"),
    ("def build(i, k, c):\n    return 'net'\n", "build", "returned str, not a torch.nn.Module"),
    ("def build(i, k, c):\n    raise ValueError('bad width')\n", "build", r"build\(4, 2, 2\) raised ValueError: bad width"),
    ("from torch import nn\ndef build(i, k, c):\n    return nn.ReLU()\n", "build", "no trainable parameters"),
    ("from torch import nn\nclass N(nn.Module):\n    def __init__(s, i, c):\n        super().__init__(); s.l = nn.Linear(i, c + 1)\n"
     "    def forward(s, x, task):\n        return s.l(x)\ndef build(i, k, c):\n    return N(i, c)\n",
     "build", r"returned shape \(8, 3\); expected \(8, 2\)"),
    ("from torch import nn\nclass N(nn.Module):\n    def __init__(s, i, c):\n        super().__init__(); s.l = nn.Linear(i, c)\n"
     "    def forward(s, x):\n        return s.l(x)\ndef build(i, k, c):\n    return N(i, c)\n",
     "build", r"forward\(x, task\) raised TypeError"),
    ("from torch import nn\nclass N(nn.Module):\n    def __init__(s, i, c):\n        super().__init__(); s.l = nn.Linear(i, c)\n"
     "    def forward(s, x, task):\n        return s.l(x) * float('nan')\ndef build(i, k, c):\n    return N(i, c)\n",
     "build", "NaN or infinite values at initialisation"),
    ("from torch import nn\nclass N(nn.Module):\n    def __init__(s, i, c):\n        super().__init__(); s.l = nn.Linear(i, c); s.calls = 0\n"
     "    def forward(s, x, task):\n        s.calls += s.training\n        out = s.l(x)\n"
     "        return out * float('nan') if s.calls > 3 else out\ndef build(i, k, c):\n    return N(i, c)\n",
     "build", "training loss became NaN or infinite in epoch 1 .*seed 0"),
])
def test_bad_models_say_what_is_wrong(binary, tmp_path, body, fn, why):
    path = _write(tmp_path, body)
    spec = f"{path}:{fn}"
    err = _err(spec, binary)
    assert isinstance(err, ValueError) and err.model == spec
    assert str(err).startswith(f"model {spec}: ") and "\n" not in str(err)
    assert __import__("re").search(why, err.why), err.why


def test_bad_specs(tmp_path, monkeypatch):
    for spec, why in (("nofunction", "expected FILE.py:FUNCTION"), (f"{tmp_path}/missing.py:build", "no such file"),
                      ("no_such_module_xyz.sub:build", "no module named 'no_such_module_xyz'"),
                      ("planner_models.losses:nothing_here", "has no function 'nothing_here'"),
                      ("planner_models.losses:2bad", "not a function name")):
        with pytest.raises(UserModelError, match=why):
            load_user_model(spec)
    with pytest.raises(UserModelError, match=r"cross_entropy\(logits.*must take \(in_dim, n_tasks, out_dim\)"):
        load_user_model("planner_models.losses:cross_entropy")
    # a package module works as well as a file
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _write(pkg, "from torch import nn\ndef build(i, k, c):\n    return nn.Linear(i, c)\n", "nets.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_user_model("userpkg.nets:build")
    assert model.fn.__name__ == "build" and model.source == str(pkg / "nets.py")
    assert model_fingerprint("userpkg.nets:build") == model.fingerprint()
