"""First-order optimizers against torch.optim, on every backend.

Each optbench optimizer is driven directly (init/step) on the tutorial's regression task and its
whole 1000-step trajectory is compared, iterate by iterate, with torch.optim's on a float64
tensor parameter:

- torch and autograd backends (exact gradients): <= 1e-12 absolute. The update rules are the
  same arithmetic in the same order, so only rounding (a few ulps) separates them; measured
  differences are below 2e-15.
- fd backend (central differences): its gradient differs from the exact one by rounding only
  (the objective is quadratic, so central differences have no truncation error): about
  eps·|f|/h ≈ 1.1e-16·2e3/6e-6 ≈ 4e-8 absolute at the start, where the gradient is ~1e3. Summed
  over 1000 steps without any contraction that moves x by at most ~lr_eff·4e-8·1000 ≈ 4e-8
  (sgd with momentum 0.9, lr_eff = 10·1e-4), so fd is compared with the same optimizer on the
  torch backend to 1e-7 absolute (measured: below 1e-10), seven orders of magnitude below the
  distance the runs move.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch

from optbench.optimizers import schedules
from optbench.plugins import get_registry
from trajectories import (
    backend_or_skip,
    case_id,
    frozen,
    method,
    optbench_run,
    task,
    torch_iterates,
)

ATOL_EXACT = 1e-12
ATOL_FD = 1e-7

TORCH_OPTIM = {
    "nadam": torch.optim.NAdam,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}

# (optimizer, hyperparameters given to both optbench and torch.optim; the rest are each one's
# own defaults, so that this also checks that optbench declares torch's defaults).
# sgd's lr is small because x ~ 5·N(0,1) makes the x² column large (largest Hessian
# eigenvalue ≈ 2.5e3 for this seed: lr·L ≈ 0.25).
CASES = [
    ("nadam", {"lr": 0.01}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.1}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("nadam", {"lr": 0.01, "betas": (0.8, 0.99), "momentum_decay": 0.01}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("adam", {"lr": 0.01, "amsgrad": True}),
    ("adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "eps": 1e-6}),
    ("adamw", {"lr": 0.01}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.5}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True}),
    ("sgd", {"lr": 1e-4}),
    ("sgd", {"lr": 1e-4, "momentum": 0.9, "dampening": 0.5}),
    ("sgd", {"lr": 1e-4, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 1e-4, "weight_decay": 0.1}),
    ("sgd", {"lr": 1e-4, "momentum": 0.5, "weight_decay": 0.1}),
]
BACKENDS = ["torch", "autograd", "fd"]


@functools.cache
def torch_trajectory(name: str, hp: tuple[tuple[str, Any], ...]) -> np.ndarray:
    """torch.optim's iterates x_1 ... x_STEPS on a float64 parameter."""
    return torch_iterates(TORCH_OPTIM[name], dict(hp))[0]


def optbench_trajectory(name: str, hp: tuple[tuple[str, Any], ...], backend: str
                        ) -> np.ndarray:
    return optbench_run(name, hp, backend)[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_trajectory_matches_torch_optim(case, backend):
    name, hp = case
    ours = optbench_trajectory(name, frozen(hp), backend)
    ref = torch_trajectory(name, frozen(hp))
    _, inst = task()
    assert np.all(np.isfinite(ref))
    # The comparison means something only if the run goes somewhere.
    assert np.linalg.norm(ref[-1] - inst.x0) > 0.5
    if backend == "fd":
        # fd's gradient is approximate: compare with the same optimizer on exact gradients.
        exact = optbench_trajectory(name, frozen(hp), "torch")
        err = np.abs(ours - exact).max()
        assert err <= ATOL_FD, f"fd drifts {err:.3g} from the torch backend"
    else:
        diff = np.abs(ours - ref).max(axis=1)
        first = int(np.argmax(diff > ATOL_EXACT))
        assert diff.max() <= ATOL_EXACT, (
            f"{backend}: differs from torch.optim by {diff.max():.3g} "
            f"(first above {ATOL_EXACT:g} at step {first + 1})")


@pytest.mark.parametrize("name", sorted(TORCH_OPTIM))
def test_declared_defaults_are_torch_defaults(name):
    # The learning-rate schedule's parameters are torch.optim.lr_scheduler's, not the
    # optimizer's (test_torch_optim checks them against the schedulers).
    declared = {p.name: p.default for p in get_registry().get("optimizer", name).hyperparams
                if p.name not in schedules.NAMES}
    defaults = TORCH_OPTIM[name]([torch.zeros(1)]).defaults
    for key, value in declared.items():
        assert key in defaults, f"{name}: {key} is not a torch.optim hyperparameter"
        if isinstance(value, tuple):
            assert tuple(defaults[key]) == value, key
        else:
            assert defaults[key] == value, key


def snapshot(obj, value: Any) -> Any:
    """A host copy of an array (or the value itself for Python scalars and None)."""
    if hasattr(value, "shape"):
        return np.array(obj.to_numpy(value), copy=True)
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


PURITY_CASES = [
    ("nadam", {"lr": 0.01, "weight_decay": 0.1}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01, "amsgrad": True}),
    ("sgd", {"lr": 1e-4, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("sgd", {"lr": 1e-4, "momentum": 0.9, "dampening": 0.3}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", PURITY_CASES, ids=case_id)
def test_step_is_pure(case, backend):
    """step never mutates the x or the state it is given, and depends on nothing else."""
    name, hp = case
    problem, inst = task()
    m = method(name, hp)
    obj = backend_or_skip(backend).prepare(problem, inst.data, dtype="float64", device="cpu")
    x = obj.from_numpy(inst.x0)
    state = m.init(x, obj.xp)
    for _ in range(5):
        x_before = snapshot(obj, x)
        state_before = [snapshot(obj, s) for s in state]
        x_new, state_new, _, _ = m.step(obj, x, state)
        assert same(snapshot(obj, x), x_before), "step mutated its input x"
        for i, (now, before) in enumerate(zip(state, state_before, strict=True)):
            assert same(snapshot(obj, now), before), f"step mutated state.{state._fields[i]}"
        # The same input gives the same output: no hidden state outside (x, state).
        x_again, state_again, _, _ = m.step(obj, x, state)
        assert same(snapshot(obj, x_again), snapshot(obj, x_new))
        for a, b in zip(state_again, state_new, strict=True):
            assert same(snapshot(obj, a), snapshot(obj, b))
        assert not same(snapshot(obj, x_new), x_before), "step did not move"
        x, state = x_new, state_new


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", PURITY_CASES, ids=case_id)
def test_float32_stays_float32(case, backend):
    name, hp = case
    problem, inst = task()
    m = method(name, hp)
    obj = backend_or_skip(backend).prepare(problem, inst.data, dtype="float32", device="cpu")
    x = obj.from_numpy(inst.x0)
    state = m.init(x, obj.xp)
    f0 = None
    for _ in range(50):
        x, state, f, g = m.step(obj, x, state)
        f0 = float(f) if f0 is None else f0
    f_end, _ = obj.value_and_grad(x)
    for what, value in [("x", x), ("f", f), ("g", g), *zip(state._fields, state, strict=True)]:
        if hasattr(value, "dtype"):
            assert str(value.dtype).endswith("float32"), f"{what} is {value.dtype}"
    if backend == "torch":
        assert x.dtype == torch.float32
    assert np.isfinite(float(f_end)) and float(f_end) < f0
