"""Your own model: a user's ``torch.nn.Module`` trained on subsets exactly as the built-in network is.

The contract ("Your own model"): ``FUNCTION(in_dim, n_tasks, out_dim) -> torch.nn.Module`` whose
``forward(x, task)`` takes float ``x (n, in_dim)`` and long ``task (n,)`` (each row's head slot in
``0..n_tasks-1``; slot 0 is the target) and returns ``(n, out_dim)`` (logits, or values for
regression). It is named ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``
(:func:`load_user_model`).

:func:`train_subsets_user` trains one module per subset with the schedule of
:mod:`planner_models.train` (per-model seed: the module is built under ``torch.manual_seed(seed)``, epoch
``e`` uses the ``e``-th permutation of ``numpy.random.default_rng(seed)``, the same step budget,
Adam, per-epoch early stopping on the target's validation training loss, the best state kept) and
returns the same :class:`planner_models.train.SubsetResult` objects. Two paths give the same models:

* **batched** (``torch.func``): the modules of a group (equal number of heads) are stacked with
  ``stack_module_state`` and stepped together with ``vmap(grad_and_value(functional_call))`` and
  an Adam update on the stacked tensors; mini-batches are padded with zero-weight rows;
* **loop**: one module and one ``torch.optim.Adam`` after another (the reference, and the fallback).

Whether the batched path applies is probed once per head count (:func:`probe_vmap`): modules whose
buffers change in training (BatchNorm running statistics), that draw random numbers (dropout),
whose forward has data-dependent control flow (``.item()``, ``unique``) or whose output for a row
depends on the other rows of the batch use the loop. Every problem with the user's code is a
:class:`UserModelError` naming the model and what is wrong.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import inspect
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from torch import nn

from .model_spec import model_fingerprint

__all__ = ["UserModelError", "UserModel", "load_user_model", "as_user_model", "model_fingerprint",
           "check_module", "probe_vmap", "train_subsets_user"]


class UserModelError(ValueError):
    """A user's model cannot be used: one line naming the model (``FILE.py:FUNCTION``) and why."""

    def __init__(self, model: str, why: str):
        self.model = model
        self.why = why
        super().__init__(f"model {model}: {why}")

    def __reduce__(self):  # pickled across processes (Ray workers) with both of its arguments
        return (type(self), (self.model, self.why))


class UserModel:
    """A loaded model builder: ``spec`` (how it was named) and ``fn``, the function itself.

    Calling it builds one module (checked to be an ``nn.Module``). Pickles by ``spec`` when it was
    loaded from one (a Ray worker loads the file again), else by the function itself.
    """

    def __init__(self, spec: str, fn: Callable[..., Any], source: str | None = None):
        self.spec = spec
        self.fn = fn
        self.source = source          # the file the function came from, when known
        self._probes: dict[tuple, tuple[bool, str]] = {}
        self._checked: set[tuple] = set()

    def __repr__(self) -> str:
        return f"UserModel({self.spec!r})"

    def __reduce__(self):
        if self._from_spec:
            return (load_user_model, (self.spec,))
        return (UserModel, (self.spec, self.fn, self.source))

    _from_spec = False

    def fingerprint(self) -> str:
        """sha256 of the source file (or of the spec when there is none): part of a store key, so
        runs of an edited model are never mistaken for runs of the old one."""
        if self._from_spec:
            return model_fingerprint(self.spec)
        h = hashlib.sha256(self.spec.encode())
        if self.source and os.path.isfile(self.source):
            h.update(Path(self.source).read_bytes())
        return h.hexdigest()

    def build(self, in_dim: int, n_tasks: int, out_dim: int, seed: int) -> nn.Module:
        """One module, built under ``torch.manual_seed(seed)`` (the global CPU generator is restored)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            try:
                module = self.fn(int(in_dim), int(n_tasks), int(out_dim))
            except UserModelError:
                raise
            except Exception as exc:
                raise UserModelError(self.spec, f"{_fn_name(self.fn)}({in_dim}, {n_tasks}, {out_dim}) raised "
                                                f"{_exc(exc)}") from None
        if not isinstance(module, nn.Module):
            raise UserModelError(self.spec, f"{_fn_name(self.fn)} returned {type(module).__name__}, "
                                            "not a torch.nn.Module")
        if not any(p.requires_grad for p in module.parameters()):
            raise UserModelError(self.spec, "the module has no trainable parameters")
        return module


def _fn_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _exc(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:200]}" if msg else type(exc).__name__


# ---------------------------------------------------------------------------- loading
def load_user_model(spec: str) -> UserModel:
    """``FILE.py:FUNCTION`` (a path; its folder is importable while it loads) or
    ``package.module:FUNCTION``; checks that FUNCTION exists and takes ``(in_dim, n_tasks, out_dim)``."""
    spec = str(spec).strip()
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise UserModelError(spec, "expected FILE.py:FUNCTION or package.module:FUNCTION")
    if not name.isidentifier():
        raise UserModelError(spec, f"{name!r} is not a function name")
    is_file = where.endswith(".py") or os.sep in where or "/" in where
    if is_file:
        path = Path(where).expanduser()
        if not path.is_file():
            raise UserModelError(spec, f"no such file: {where}")
        path = path.resolve()
        mod_name = "_mtl_user_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        imp = importlib.util.spec_from_file_location(mod_name, path)
        if imp is None or imp.loader is None:
            raise UserModelError(spec, f"{where} cannot be imported as a Python file")
        module = importlib.util.module_from_spec(imp)
        sys.path.insert(0, str(path.parent))
        try:
            sys.modules[mod_name] = module      # dataclasses and pickling look modules up by name
            imp.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(mod_name, None)
            raise UserModelError(spec, f"importing {where} failed: {_exc(exc)}") from None
        finally:
            try:
                sys.path.remove(str(path.parent))
            except ValueError:
                pass
        source: str | None = str(path)
    else:
        if not all(part.isidentifier() for part in where.split(".")):
            raise UserModelError(spec, f"{where!r} is neither a .py file nor a module name")
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise UserModelError(spec, f"no module named {exc.name or where!r}") from None
        except (Exception, SystemExit) as exc:
            raise UserModelError(spec, f"importing {where} failed: {_exc(exc)}") from None
        source = getattr(module, "__file__", None)
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items()
                       if inspect.isfunction(v) and not k.startswith("_") and v.__module__ == module.__name__)
        hint = f" (functions there: {', '.join(found[:8])})" if found else ""
        raise UserModelError(spec, f"{where} has no function {name!r}{hint}")
    fn = getattr(module, name)
    out = UserModel(spec, _check_signature(spec, fn), source)
    out._from_spec = True
    return out


def _check_signature(spec: str, fn) -> Callable:
    if not callable(fn):
        raise UserModelError(spec, f"{_fn_name(fn)} is a {type(fn).__name__}, not a function")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn  # builtins without a signature: found out when called
    try:
        sig.bind(1, 1, 1)
    except TypeError:
        raise UserModelError(spec, f"{_fn_name(fn)}{sig} must take (in_dim, n_tasks, out_dim)") from None
    return fn


def as_user_model(builder) -> UserModel:
    """A :class:`UserModel` from one, from a spec string, or from a plain callable."""
    if isinstance(builder, UserModel):
        return builder
    if isinstance(builder, (str, os.PathLike)):
        return load_user_model(os.fspath(builder))
    if callable(builder):
        spec = f"{getattr(builder, '__module__', '?')}:{getattr(builder, '__qualname__', _fn_name(builder))}"
        try:
            source = inspect.getsourcefile(builder)
        except TypeError:
            source = None
        return UserModel(spec, _check_signature(spec, builder), source)
    raise TypeError(f"builder must be a UserModel, FILE.py:FUNCTION or a callable, not {type(builder).__name__}")


# ---------------------------------------------------------------------------- checks and probe
def check_module(model: UserModel, module: nn.Module, X: torch.Tensor, n_tasks: int, out_dim: int) -> None:
    """One forward of ``module`` on a few rows ``X`` (one per slot, cycling): a float tensor of
    shape ``(n, out_dim)``, finite. Raises :class:`UserModelError`."""
    n = X.shape[0]
    task = torch.arange(n, device=X.device) % n_tasks
    module.eval()
    try:
        with torch.no_grad():
            out = module(X, task)
    except Exception as exc:
        raise UserModelError(model.spec, f"forward(x, task) raised {_exc(exc)} on x of shape "
                                         f"({n}, {X.shape[1]}) and task of shape ({n},)") from None
    finally:
        module.train()
    if not isinstance(out, torch.Tensor):
        raise UserModelError(model.spec, f"forward(x, task) returned {type(out).__name__}, not a tensor")
    if tuple(out.shape) != (n, out_dim):
        raise UserModelError(model.spec, f"forward(x, task) returned shape {tuple(out.shape)}; expected "
                                         f"({n}, {out_dim}) = (rows, out_dim)")
    if not out.is_floating_point():
        raise UserModelError(model.spec, f"forward(x, task) returned {out.dtype}, not floating-point values")
    if not torch.isfinite(out).all():
        raise UserModelError(model.spec, "forward(x, task) returned NaN or infinite values at initialisation")


def _row_loss(out: torch.Tensor, y: torch.Tensor, classification: bool) -> torch.Tensor:
    if classification:
        return F.cross_entropy(out, y, reduction="none")
    return (out.squeeze(-1) - y) ** 2


def _batched_fns(base: nn.Module, classification: bool):
    """``step(params, buffers, x, slot, y, w) -> (grads, loss)`` and ``shared(params, buffers, x, slot)``
    over stacked models (``torch.func``)."""
    from torch.func import functional_call, grad_and_value, vmap

    def loss_one(params, buffers, x, slot, y, w):
        out = functional_call(base, (params, buffers), (x, slot))
        return (_row_loss(out, y, classification) * w).sum()

    step = vmap(grad_and_value(loss_one), in_dims=(0, 0, 0, 0, 0, 0), randomness="error")

    def out_one(params, buffers, x, slot):
        return functional_call(base, (params, buffers), (x, slot))

    shared = vmap(out_one, in_dims=(0, 0, None, None), randomness="error")
    per_model = vmap(out_one, in_dims=(0, 0, 0, 0), randomness="error")
    return step, shared, per_model


def _meta_copy(module: nn.Module) -> nn.Module:
    base = copy.deepcopy(module)
    return base.to("meta")


def probe_vmap(model: UserModel, modules: Sequence[nn.Module], X: torch.Tensor, y: torch.Tensor,
               n_tasks: int, classification: bool) -> tuple[bool, str]:
    """Whether ``torch.func`` can train these (equal) modules together with the same results as one
    at a time: ``(True, "")`` or ``(False, why)``. Tried on a padded mini-batch of rows ``X``, ``y``:
    gradients and losses (training mode) and shared-row outputs (evaluation mode) against eager ones."""
    from torch.func import stack_module_state

    mods = list(modules)
    n = X.shape[0]
    task = torch.arange(n, device=X.device) % n_tasks
    # buffers that change in a training forward (BatchNorm running statistics) cannot be batched
    probe = copy.deepcopy(mods[0]).train()
    before = {k: v.detach().clone() for k, v in probe.named_buffers()}
    with torch.no_grad():
        probe(X, task)
    for k, v in probe.named_buffers():
        if k in before and not torch.equal(before[k], v):
            return False, f"buffer {k!r} changes in training (e.g. BatchNorm running statistics)"
    try:
        eager_g, eager_l = [], []
        for m in mods:
            m.train()
            m.zero_grad(set_to_none=True)
            loss = _row_loss(m(X, task), y, classification).mean()
            loss.backward()
            eager_l.append(float(loss.detach()))
            eager_g.append({k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                            for k, p in m.named_parameters()})
            m.zero_grad(set_to_none=True)
        with torch.no_grad():
            eager_out = []
            for m in mods:
                m.eval()
                eager_out.append(m(X, torch.zeros_like(task)))
                m.train()
        params, buffers = stack_module_state(mods)
        params = {k: v.detach() for k, v in params.items()}
        base = _meta_copy(mods[0]).train()
        step, shared, _ = _batched_fns(base, classification)
        M, pad = len(mods), 3
        xb = torch.cat([X, X[:pad]]).expand(M, -1, -1)
        sb = torch.cat([task, task[:pad]]).expand(M, -1)
        yb = torch.cat([y, y[:pad]]).expand(M, -1)
        wb = torch.cat([torch.full((n,), 1.0 / n, device=X.device), torch.zeros(pad, device=X.device)]).expand(M, -1)
        grads, losses = step(params, buffers, xb, sb, yb, wb)
        base.eval()
        with torch.no_grad():
            out = shared(params, buffers, X, torch.zeros_like(task))
    except Exception as exc:
        return False, f"torch.func cannot batch it ({_exc(exc)})"
    for m in range(M):
        if not math.isclose(float(losses[m]), eager_l[m], rel_tol=1e-4, abs_tol=1e-5):
            return False, "batched losses differ from one-at-a-time ones (rows depend on each other?)"
        for k, g in eager_g[m].items():
            if not torch.allclose(grads[k][m], g, rtol=1e-3, atol=1e-5):
                return False, f"batched gradients of {k!r} differ from one-at-a-time ones"
        if not torch.allclose(out[m], eager_out[m], rtol=1e-4, atol=1e-5):
            return False, "batched outputs differ from one-at-a-time ones"
    return True, ""


# ---------------------------------------------------------------------------- training
def _auto_chunk(device: torch.device) -> int:
    return 1024 if device.type == "cuda" else 64


def train_subsets_user(data, target, subsets: Sequence[Sequence[int]], config, seeds: Sequence[int], builder,
                       progress: Callable[[int], None] | None = None, mode: str = "auto") -> list:
    """:func:`planner_models.train.train_subsets` with the user's module instead of the built-in network
    (``config.hidden`` is not used): one module per subset (slot 0 the target, then the sources in
    increasing order), the same schedule, the same :class:`planner_models.train.SubsetResult` objects in
    input order. ``builder``: a :class:`UserModel`, ``FILE.py:FUNCTION`` / ``package.module:FUNCTION``,
    or a callable. ``mode``: ``auto`` (batched with ``torch.func`` where :func:`probe_vmap` allows,
    else the loop), ``vmap`` (batched, or :class:`UserModelError` saying why not) or ``loop``."""
    from .schedule import _prepare, _specs

    if mode not in ("auto", "vmap", "loop"):
        raise ValueError(f"mode must be auto, vmap or loop, not {mode!r}")
    model = as_user_model(builder)
    prep = _prepare(data, target, config)
    specs = _specs(prep, subsets, seeds, config)
    if not specs:
        return []
    chunk = config.chunk_size or _auto_chunk(prep.device)
    order = sorted(range(len(specs)), key=lambda i: (len(specs[i].subset), specs[i].steps_per_epoch, i))
    results: list = [None] * len(specs)
    start = 0
    while start < len(order):
        K = len(specs[order[start]].subset)
        end = start
        while end < len(order) and end - start < chunk and len(specs[order[end]].subset) == K:
            end += 1
        group = [specs[i] for i in order[start:end]]
        use_vmap = _decide(model, prep, K, mode)
        if use_vmap:
            res = _train_group_vmap(model, prep, group, config)
        else:
            res = []
            for spec in group:
                res.append(_train_one_loop(model, prep, spec, config))
        for spec, r in zip(group, res):
            results[spec.index] = r
        if progress is not None:
            progress(len(group))
        start = end
    return results


def _probe_rows(prep, n: int = 8):
    rows = np.concatenate([r for r in prep.train_rows if len(r)])[:n]
    idx = torch.as_tensor(rows, device=prep.device)
    return prep.X[idx], prep.y[idx]


def _decide(model: UserModel, prep, K: int, mode: str) -> bool:
    """Check the module for ``K`` heads (once) and whether the batched path applies (once)."""
    in_dim, C, dev = prep.data.n_features, prep.out_dim, prep.device
    key = (in_dim, K, C, str(dev), bool(prep.data.n_classes))
    Xp, yp = _probe_rows(prep)
    if key not in model._checked:
        module = model.build(in_dim, K, C, 0).to(dev)
        check_module(model, module, Xp, K, C)
        model._checked.add(key)
    if mode == "loop":
        return False
    if key not in model._probes:
        mods = [model.build(in_dim, K, C, s).to(dev) for s in (0, 1)]
        model._probes[key] = probe_vmap(model, mods, Xp, yp, K, bool(prep.data.n_classes))
    ok, why = model._probes[key]
    if mode == "vmap" and not ok:
        raise UserModelError(model.spec, f"cannot be trained batched: {why}")
    return ok


def _nan_error(model: UserModel, prep, spec, epoch: int, what: str = "training loss") -> UserModelError:
    names = [prep.data.task_names[t] for t in spec.subset]
    return UserModelError(model.spec, f"the {what} became NaN or infinite in epoch {epoch} "
                                      f"(tasks {', '.join(names)}; seed {spec.seed}); try a smaller lr")


def _rng_devices(dev: torch.device) -> list[int]:
    return [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []


def _train_one_loop(model: UserModel, prep, spec, config):
    """One module, one ``torch.optim.Adam``: the reference path (and the fallback)."""
    from .schedule import SubsetResult, _early_stop_loss

    t0 = time.perf_counter()
    dev = prep.device
    p, C, B = prep.data.n_features, prep.out_dim, config.batch_size
    net = model.build(p, len(spec.subset), C, spec.seed).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
                           weight_decay=config.weight_decay)
    slot_of_task = np.zeros(prep.data.n_tasks, dtype=np.int64)
    slot_of_task[list(spec.subset)] = np.arange(len(spec.subset))
    slot_all = torch.from_numpy(slot_of_task[prep.data.task]).to(dev)
    rng = np.random.default_rng(spec.seed)
    remaining = spec.budget
    best_val, bad, best_epoch, epochs_run = math.inf, 0, 0, 0
    best_state = copy.deepcopy(net.state_dict())
    patience = config.patience or 0
    zeros_v = torch.zeros(len(prep.yv), dtype=torch.long, device=dev)
    epoch = 0
    with torch.random.fork_rng(devices=_rng_devices(dev)):
        torch.manual_seed(spec.seed)   # dropout and other random layers: a function of the seed
        while True:
            steps = min(spec.steps_per_epoch, remaining)
            if steps > 0:
                net.train()
                perm = torch.from_numpy(rng.permutation(spec.rows)[:steps * B]).to(dev)
                for s in range(steps):
                    b = perm[s * B:(s + 1) * B]
                    out = net(prep.X[b], slot_all[b])
                    loss = _row_loss(out, prep.y[b], bool(prep.data.n_classes)).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if not math.isfinite(float(loss.detach())):
                    raise _nan_error(model, prep, spec, epoch + 1)
                remaining -= steps
                epochs_run += 1
            net.eval()
            with torch.no_grad():
                val = float(_early_stop_loss(net(prep.Xv, zeros_v).unsqueeze(0), prep.yv, prep)[0])
            if not math.isfinite(val):
                raise _nan_error(model, prep, spec, epoch + 1, "validation loss")
            if val < best_val:
                best_val, bad, best_epoch = val, 0, epoch + 1
                best_state = copy.deepcopy(net.state_dict())
            else:
                bad += 1
            if config.keep == "last":  # report the final state; early stopping still decides when to stop
                best_epoch, best_state = epoch + 1, copy.deepcopy(net.state_dict())
            epoch += 1
            if remaining == 0 or (patience and bad >= patience):
                break
    net.load_state_dict(best_state)
    net.eval()
    f, val_losses, test, rows = _evaluate_one(net, prep, spec)
    return SubsetResult(subset=spec.subset, f=f, val_losses=val_losses, test=test,
                        seconds=time.perf_counter() - t0, device=str(dev), seed=spec.seed, epochs=epochs_run,
                        best_epoch=best_epoch, n_train=len(spec.rows), rows=rows)


@torch.no_grad()
def _evaluate_one(net: nn.Module, prep, spec):
    from .schedule import _metric_dict, _per_row, target_rows

    dev = prep.device
    loss_name = prep.loss

    def run(rows, k):
        x = prep.X[rows]
        return net(x, torch.full((len(rows),), k, dtype=torch.long, device=dev))

    vr = torch.as_tensor(prep.val_rows[prep.target], device=dev)
    out_v = run(vr, 0).unsqueeze(0)
    f = float(_metric_dict(out_v, prep.yv, prep, loss_name)["loss"][0])
    val_losses = {}
    for k, t in enumerate(spec.subset[1:], start=1):
        r = torch.as_tensor(prep.val_rows[t], device=dev)
        if len(r) == 0:
            val_losses[t] = float("nan")
            continue
        val_losses[t] = float(_per_row(run(r, k), prep.y[r], prep, loss_name).double().mean())
    val_losses[prep.target] = f
    tr = torch.as_tensor(prep.test_rows, device=dev)
    out_t = run(tr, 0).unsqueeze(0) if len(tr) else None
    test = ({k: float(v[0]) for k, v in _metric_dict(out_t, prep.y[tr], prep, loss_name).items()}
            if len(tr) else {})
    rows = target_rows(out_v, out_t, prep, loss_name, prep.y[tr])[0]
    return f, {t: val_losses[t] for t in spec.subset}, test, rows


def _train_group_vmap(model: UserModel, prep, specs: list, config) -> list:
    """Models of equal head count stacked and stepped together (``torch.func``)."""
    from torch.func import stack_module_state

    from .schedule import SubsetResult, _early_stop_loss, early_stop_update

    t0 = time.perf_counter()
    dev = prep.device
    M, C, K = len(specs), prep.out_dim, len(specs[0].subset)
    p = prep.data.n_features
    classification = bool(prep.data.n_classes)
    mods = [model.build(p, K, C, s.seed).to(dev) for s in specs]
    params, buffers = stack_module_state(mods)
    params = {k: v.detach().clone() for k, v in params.items()}
    buffers = {k: v.detach().clone() for k, v in buffers.items()}
    base = _meta_copy(mods[0])
    del mods
    step_fn, shared_fn, _ = _batched_fns(base, classification)
    b1, b2 = config.betas
    m1 = {k: torch.zeros_like(v) for k, v in params.items()}
    m2 = {k: torch.zeros_like(v) for k, v in params.items()}
    best = {k: v.clone() for k, v in params.items()}
    final = {k: torch.empty_like(v) for k, v in params.items()}
    n_steps = np.zeros(M, dtype=np.int64)
    best_val = np.full(M, np.inf)
    bad = np.zeros(M, dtype=np.int64)
    best_epoch = np.zeros(M, dtype=np.int64)
    epochs_run = np.zeros(M, dtype=np.int64)
    remaining = np.array([s.budget for s in specs], dtype=np.int64)
    spe = np.array([s.steps_per_epoch for s in specs], dtype=np.int64)
    rngs = [np.random.default_rng(s.seed) for s in specs]
    slot_table = np.zeros((M, prep.data.n_tasks), dtype=np.int64)
    for m, s in enumerate(specs):
        slot_table[m, list(s.subset)] = np.arange(len(s.subset))
    task_np = prep.data.task
    patience = config.patience or 0
    Bc = config.batch_size
    zeros_v = torch.zeros(len(prep.yv), dtype=torch.long, device=dev)
    alive = np.arange(M)
    cur = params  # the alive models' parameters (rows of `alive`)
    bufs = buffers
    epoch = 0
    while len(alive):
        A = len(alive)
        s_m = np.minimum(spe[alive], remaining[alive])
        S = int(s_m.max())
        if S > 0:
            base.train()
            n_j = np.zeros(A, dtype=np.int64)
            flat = np.zeros((A, S * Bc), dtype=np.int64)
            for j, m in enumerate(alive):
                if s_m[j]:
                    perm = rngs[m].permutation(specs[m].rows)
                    n_j[j] = min(len(perm), int(s_m[j]) * Bc)
                    flat[j, :n_j[j]] = perm[:n_j[j]]
                    flat[j, n_j[j]:] = perm[0]          # padding rows (weight 0): any real row
            cnt = np.clip(n_j[None, :] - np.arange(S)[:, None] * Bc, 0, Bc)          # (S, A)
            w_all = (np.arange(Bc)[None, None, :] < cnt[:, :, None]).astype(np.float32)
            w_all /= np.maximum(cnt, 1)[:, :, None].astype(np.float32)
            flat_d = torch.from_numpy(flat).to(dev)
            slots_d = torch.from_numpy(slot_table[alive][np.arange(A)[:, None], task_np[flat]]).to(dev)
            w_d = torch.from_numpy(w_all).to(dev)
            loss_ok = torch.ones((), dtype=torch.bool, device=dev)
            for s in range(S):
                active = cnt[s] > 0
                idx = flat_d[:, s * Bc:(s + 1) * Bc]
                grads, losses = step_fn(cur, bufs, prep.X[idx], slots_d[:, s * Bc:(s + 1) * Bc], prep.y[idx], w_d[s])
                n_steps[alive[active]] += 1
                loss_ok &= torch.isfinite(losses[torch.from_numpy(active).to(dev)]).all()
                _adam(cur, grads, m1, m2, n_steps[alive], active, config, b1, b2)
            if not bool(loss_ok):
                raise _nan_error(model, prep, specs[int(alive[0])], epoch + 1)
            remaining[alive] -= s_m
        epochs_run[alive] += (s_m > 0)
        base.eval()
        with torch.no_grad():
            out = shared_fn(cur, bufs, prep.Xv, zeros_v)
            val = _early_stop_loss(out, prep.yv, prep).double().cpu().numpy()
        if not np.isfinite(val).all():
            raise _nan_error(model, prep, specs[int(alive[np.flatnonzero(~np.isfinite(val))[0]])], epoch + 1,
                             "validation loss")
        take, done = early_stop_update(val, alive, best_val, best_epoch, bad, remaining, epoch, config.keep, patience)
        if take.any():
            imp = torch.from_numpy(take).to(dev)
            for k in best:
                best[k] = torch.where(imp.view(-1, *([1] * (best[k].dim() - 1))), cur[k], best[k])
        if done.any():
            d_idx = torch.from_numpy(np.flatnonzero(done)).to(dev)
            d_orig = torch.from_numpy(alive[done]).to(dev)
            keep = torch.from_numpy(np.flatnonzero(~done)).to(dev)
            for k in final:
                final[k].index_copy_(0, d_orig, best[k].index_select(0, d_idx))
            cur = {k: v.index_select(0, keep) for k, v in cur.items()}
            best = {k: v.index_select(0, keep) for k, v in best.items()}
            for st in (m1, m2):
                for k in st:
                    st[k] = st[k].index_select(0, keep)
            bufs = {k: v.index_select(0, keep) for k, v in bufs.items()}
            alive = alive[~done]
        epoch += 1
    base.eval()
    evals = _evaluate_vmap(base, final, buffers, prep, specs)
    seconds = (time.perf_counter() - t0) / M
    return [SubsetResult(subset=s.subset, f=f, val_losses=vl, test=te, seconds=seconds, device=str(dev),
                         seed=s.seed, epochs=int(epochs_run[m]), best_epoch=int(best_epoch[m]),
                         n_train=len(s.rows), rows=rows)
            for m, (s, (f, vl, te, rows)) in enumerate(zip(specs, evals))]


@torch.no_grad()
def _adam(params: dict, grads: dict, m1: dict, m2: dict, steps: np.ndarray, active: np.ndarray, config,
          b1: float, b2: float) -> None:
    """``torch.optim.Adam`` (L2 ``weight_decay``) on stacked tensors; each model has its own step
    count; models not ``active`` in this step keep everything."""
    lr, eps, wd = config.lr, config.eps, config.weight_decay
    st = np.maximum(steps, 1).astype(np.float64)
    dev = next(iter(params.values())).device
    step_size = torch.from_numpy((lr / (1.0 - b1 ** st)).astype(np.float32)).to(dev)
    bc2_sqrt = torch.from_numpy(np.sqrt(1.0 - b2 ** st).astype(np.float32)).to(dev)
    all_active = bool(active.all())
    act = None if all_active else torch.from_numpy(active).to(dev)
    for k, p in params.items():
        g = grads[k]
        shape = (-1,) + (1,) * (p.dim() - 1)
        if wd:
            g = g.add(p, alpha=wd)
        m = m1[k].lerp(g, 1 - b1)
        v = m2[k].mul(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(eps)
        new = p - step_size.view(shape) * m / denom
        if all_active:
            m1[k], m2[k] = m, v
            p.copy_(new)
        else:
            a = act.view(shape)
            m1[k] = torch.where(a, m, m1[k])
            m2[k] = torch.where(a, v, m2[k])
            p.copy_(torch.where(a, new, p))


@torch.no_grad()
def _evaluate_vmap(base: nn.Module, params: dict, buffers: dict, prep, specs: list):
    from .schedule import _metric_dict, member_val_losses, target_rows

    dev = prep.device
    loss = prep.loss
    _, shared_fn, per_model = _batched_fns(base, bool(prep.data.n_classes))
    zeros_v = torch.zeros(len(prep.yv), dtype=torch.long, device=dev)
    out_v = shared_fn(params, buffers, prep.Xv, zeros_v)
    tv = _metric_dict(out_v, prep.yv, prep, loss)["loss"].double().cpu().numpy()
    td: dict[str, np.ndarray] = {}
    out_t, yt = None, None
    if len(prep.test_rows):
        tr = torch.as_tensor(prep.test_rows, device=dev)
        out_t, yt = shared_fn(params, buffers, prep.X[tr], torch.zeros(len(tr), dtype=torch.long, device=dev)), prep.y[tr]
        td = {k: v.double().cpu().numpy() for k, v in _metric_dict(out_t, yt, prep, loss).items()}
    target_per_row = target_rows(out_v, out_t, prep, loss, yt)
    member = member_val_losses(
        prep, specs, lambda a, b, idx, slot: per_model({k: v[a:b] for k, v in params.items()},
                                                       {k: v[a:b] for k, v in buffers.items()}, prep.X[idx], slot),
        piece_rows=1 << (21 if dev.type == "cuda" else 16), pad_first=True)
    res = []
    for m, s in enumerate(specs):
        vl = {t: float(member[m, k]) for k, t in enumerate(s.subset)}
        vl[prep.target] = float(tv[m])
        res.append((float(tv[m]), vl, {k: float(v[m]) for k, v in td.items()}, target_per_row[m]))
    return res
