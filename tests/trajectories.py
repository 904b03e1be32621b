"""Whole optimizer trajectories on the tutorial's regression, optbench's and torch.optim's,
for the tests that compare them iterate by iterate (test_optimizers, test_torch_optim).

torch runs with float64 as its default dtype: torch keeps NAdam's step and mu_product (and
Adam's step) in the default dtype, float32 otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from optbench.core.params import resolve
from optbench.plugins import get_registry

STEPS = 1000
SEED = 0


def case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, hp = case
    return name + "".join(f"-{k}={v}" for k, v in hp.items()).replace(" ", "")


def frozen(hp: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(hp.items()))


@functools.lru_cache(maxsize=1)
def task():
    registry = get_registry()
    problem = registry.get("problem", "regression")
    params = resolve(problem.params, {}, "regression")
    return problem, problem.make(params, SEED)


def backend_or_skip(name: str):
    backend = get_registry().get("backend", name)
    reason = backend.available("cpu")
    if reason:
        pytest.skip(f"backend {name}: {reason}")
    return backend


def method(name: str, hp: dict[str, Any]):
    opt = get_registry().get("optimizer", name)
    return opt.method(**resolve(opt.hyperparams, hp, name))


@functools.cache
def optbench_run(name: str, hp: tuple[tuple[str, Any], ...], backend: str
                 ) -> tuple[np.ndarray, Any]:
    """optbench's iterates x_1 ... x_STEPS (init/step driven directly) and its final state."""
    problem, inst = task()
    m = method(name, dict(hp))
    obj = backend_or_skip(backend).prepare(problem, inst.data, dtype="float64", device="cpu")
    x = obj.from_numpy(inst.x0)
    state = m.init(x, obj.xp)
    out = np.empty((STEPS, len(inst.x0)))
    for k in range(STEPS):
        x, state, _, _ = m.step(obj, x, state)
        out[k] = obj.to_numpy(x)
    return out, state


def torch_iterates(optim: type, hp: dict[str, Any],
                   scheduler: Callable[[Any], Callable[[float], Any]] | None = None
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """torch.optim's iterates x_1 ... x_STEPS on a float64 tensor parameter, and the
    optimizer's final state (host copies) with "lrs", the lr of each step. `scheduler`, given
    the optimizer, returns what to call with the loss after each step."""
    _, inst = task()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        v = torch.as_tensor(inst.data["V"], dtype=torch.float64)
        y = torch.as_tensor(inst.data["y"], dtype=torch.float64)
        w = torch.tensor(inst.x0, dtype=torch.float64, requires_grad=True)
        opt = optim([w], **hp)
        after_step = scheduler(opt) if scheduler else None
        out, lrs = np.empty((STEPS, w.numel())), []
        for k in range(STEPS):
            opt.zero_grad()
            loss = torch.mean((y - v @ w) ** 2)
            loss.backward()
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if after_step is not None:
                after_step(loss.item())
            out[k] = w.detach().numpy()
        state = {k: (s.detach().numpy().copy() if torch.is_tensor(s) else s)
                 for k, s in opt.state[w].items()}
        state["lrs"] = lrs
    finally:
        torch.set_default_dtype(previous)
    return out, state
