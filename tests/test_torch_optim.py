"""The optimizers added for issue 17 (adagrad, adadelta, adamax, asgd, radam, rmsprop, rprop)
and the learning-rate schedules, against torch.optim and torch.optim.lr_scheduler themselves.

Trajectories: 1000 steps of the tutorial's regression (test_optimizers.task) in float64, every
iterate compared with torch.optim's, |ours - torch| <= 1e-12·max(1, |torch|) on the exact
backends (torch, autograd): the same arithmetic in the same order up to a few roundings.
fd's gradient is exact only up to rounding (~4e-8 at the start, see test_optimizers), so fd is
compared with the same optimizer on the torch backend, as test_optimizers does. jax (plugin) is
held to the same 1e-12 as torch and autograd, in the slow suite.

Agreement is to rounding, not to the bit: torch's CPU kernels compute add(alpha=), addcmul and
lerp with fused multiply-adds (one rounding; measured: 14k of 20k random 3-vectors differ from
x + a*g in the last bit), which numpy cannot express. The cases are therefore runs that do not
amplify rounding: ones that reach f's rounding floor (the gradient then is noise, and a
normalized step such as rmsprop's turns it into steps of size lr) or oscillate without
contracting (adadelta at lr=1 from its defaults) do, and between torch on two CPUs as well.
Measured on the cases below: at most 2e-15 relative (torch, autograd) and 1e-10 for fd.

Schedules: the lr of each of 1000 steps equals, to the bit, the lr torch's scheduler sets in the
loop `optimizer.step(); scheduler.step()` (ReduceLROnPlateau: `scheduler.step(loss)`); and a
trajectory under each schedule equals torch's with the same scheduler, to 1e-12 relative.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np
import pytest
import torch

from clitools import assert_usage_error, run_main
from optbench.optimizers import schedules
from optbench.plugins import get_registry
from trajectories import STEPS, case_id, frozen, optbench_run, task, torch_iterates

RTOL = 1e-12
ATOL_FD = 1e-7

NEW = ["adagrad", "adadelta", "adamax", "asgd", "radam", "rmsprop", "rprop"]
TORCH_OPTIM = {
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
    "asgd": torch.optim.ASGD,
    "radam": torch.optim.RAdam,
    "rmsprop": torch.optim.RMSprop,
    "rprop": torch.optim.Rprop,
    # for the schedules' trajectories
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "nadam": torch.optim.NAdam,
}

# Each optimizer's branches (weight decay, centering, momentum, ...), on hyperparameters that
# move the run > 0.8 from x0 and keep it finite; sgd-like first steps (asgd, radam before its
# rectification starts) need a small lr (the largest Hessian eigenvalue is ~2.5e3).
CASES = [
    ("adagrad", {"lr": 0.5, "lr_decay": 1e-3, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.1}),
    ("adadelta", {"lr": 1.0, "rho": 0.99, "eps": 1e-5, "weight_decay": 0.1}),
    ("adamax", {"lr": 0.003, "betas": (0.8, 0.99), "weight_decay": 0.1, "eps": 1e-6}),
    ("asgd", {"lr": 1e-4, "t0": 100, "weight_decay": 0.1, "lambd": 1e-2}),
    ("radam", {"lr": 1e-3, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("rmsprop", {"lr": 1e-3, "centered": True, "momentum": 0.5}),
    ("rprop", {"etas": (0.3, 1.5), "step_sizes": (1e-4, 1.0)}),
    # More of each optimizer's branches, in the slow suite (the fast one has a time budget).
    *[pytest.param(case, marks=pytest.mark.slow, id=case_id(case)) for case in [
        ("adagrad", {"lr": 0.5}),
        ("adadelta", {"lr": 3.0, "rho": 0.99}),
        ("adadelta", {"lr": 0.3, "weight_decay": 0.1}),
        ("adamax", {"lr": 0.01}),
        ("asgd", {"lr": 1e-4}),
        ("radam", {"lr": 1e-3}),
        ("radam", {"lr": 1e-3, "weight_decay": 0.1}),
        ("rmsprop", {"lr": 1e-3}),
        ("rmsprop", {"lr": 1e-3, "weight_decay": 0.1, "momentum": 0.9}),
        ("rprop", {}),
    ]],
]
# jax (its plugin): eager jax.numpy steps are slow, so in the slow suite.
BACKENDS = ["torch", "autograd", "fd", pytest.param("jax", marks=pytest.mark.slow)]

# One trajectory per schedule, each on another optimizer; torch's scheduler keyword arguments.
SCHEDULE_CASES = [
    ("nadam", {"lr": 0.05}, "cosine", {"T_max": 300, "eta_min": 1e-3}),
    ("sgd", {"lr": 1e-4, "momentum": 0.9}, "step", {"step_size": 100, "gamma": 0.5}),
    ("adam", {"lr": 0.05}, "multistep", {"milestones": (100, 300, 300, 700), "gamma": 0.5}),
    ("rmsprop", {"lr": 3e-3}, "exponential", {"gamma": 0.995}),
    ("adamax", {"lr": 0.05}, "cosine_restarts", {"T_0": 50, "T_mult": 2, "eta_min": 1e-4}),
    ("radam", {"lr": 1e-3}, "linear", {"start_factor": 0.1, "total_iters": 200}),
    ("adam", {}, "onecycle", {"max_lr": 0.1, "total_steps": STEPS}),
    ("sgd", {"lr": 1e-4}, "plateau", {"factor": 0.5, "patience": 5, "threshold": 1e-2,
                                      "cooldown": 3, "min_lr": 1e-5}),
]
TORCH_SCHEDULER = {
    "step": torch.optim.lr_scheduler.StepLR,
    "multistep": torch.optim.lr_scheduler.MultiStepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "cosine_restarts": torch.optim.lr_scheduler.CosineAnnealingWarmRestarts,
    "linear": torch.optim.lr_scheduler.LinearLR,
    "onecycle": torch.optim.lr_scheduler.OneCycleLR,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
}
# torch's OneCycleLR cycles beta1/momentum by default; optbench's schedules set lr only.
TORCH_ONLY = {"onecycle": {"cycle_momentum": False}}


def torch_scheduler(schedule: str, opt: Any, kw: dict[str, Any]) -> Any:
    kw = {**kw, **TORCH_ONLY.get(schedule, {})}
    if "milestones" in kw:
        kw["milestones"] = list(kw["milestones"])
    return TORCH_SCHEDULER[schedule](opt, **kw)


@functools.cache
def torch_run(name: str, hp: tuple, schedule: str | None = None, skw: tuple = ()
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """torch.optim's iterates and final state (trajectories.torch_iterates), stepping the
    schedule's torch scheduler after each step (plateau's with the loss)."""
    def scheduler(opt: Any) -> Any:
        sched = torch_scheduler(schedule, opt, dict(skw))
        return sched.step if schedule == "plateau" else lambda _loss: sched.step()

    return torch_iterates(TORCH_OPTIM[name], dict(hp), scheduler if schedule else None)


def relative_error(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per step: max over coordinates of |ours - ref| / max(1, |ref|)."""
    return (np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))).max(axis=-1)


def assert_same_trajectory(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    _, inst = task()
    assert np.all(np.isfinite(ref))
    # The comparison means something only if the run goes somewhere.
    assert np.linalg.norm(ref[-1] - inst.x0) > 0.5
    err = relative_error(ours, ref)
    first = int(np.argmax(err > RTOL))
    assert err.max() <= RTOL, (f"{what}: differs from torch by {err.max():.3g} relative "
                               f"(first above {RTOL:g} at step {first + 1})")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_trajectory_matches_torch_optim(case, backend):
    name, hp = case
    ours, _ = optbench_run(name, frozen(hp), backend)
    if backend == "fd":
        # fd's gradient is approximate: compare with the same optimizer on exact gradients.
        exact, _ = optbench_run(name, frozen(hp), "torch")
        err = np.abs(ours - exact).max()
        assert err <= ATOL_FD, f"fd drifts {err:.3g} from the torch backend"
    else:
        ref, _ = torch_run(name, frozen(hp))
        assert_same_trajectory(ours, ref, f"{name} on {backend}")


def test_asgd_average_matches_torch():
    """ASGD's average (torch's state["ax"]), which starts at t0, is carried in the state."""
    name, hp = CASES[3]  # asgd with t0=100: 900 steps of averaging
    assert name == "asgd"
    _, theirs = torch_run("asgd", frozen(hp))
    _, ours = optbench_run("asgd", frozen(hp), "torch")
    ax = ours.ax.numpy()
    assert np.linalg.norm(ax - optbench_run("asgd", frozen(hp), "torch")[0][-1]) > 1e-3
    assert np.all(np.abs(ax - theirs["ax"]) <= RTOL * np.maximum(1, np.abs(theirs["ax"])))
    assert ours.mu == theirs["mu"].item() and ours.eta == theirs["eta"].item()


@pytest.mark.parametrize("name", NEW)
def test_declared_defaults_are_torch_defaults(name):
    declared = {p.name: p.default for p in get_registry().get("optimizer", name).hyperparams
                if p.name not in schedules.NAMES}
    defaults = TORCH_OPTIM[name]([torch.zeros(1)]).defaults
    for key, value in declared.items():
        assert key in defaults, f"{name}: {key} is not a torch.optim hyperparameter"
        expected = defaults[key]
        assert (tuple(expected) if isinstance(value, tuple) else expected) == value, key


@pytest.mark.parametrize("schedule", sorted(schedules.ACCEPTS))
def test_schedule_defaults_are_torch_defaults(schedule):
    signature = inspect.signature(TORCH_SCHEDULER[schedule]).parameters
    for key, value in schedules.ACCEPTS[schedule].items():
        assert key in signature, f"{schedule}: {key} is not a torch scheduler argument"
        default = signature[key].default
        if value is None:  # required here: torch has no default either (or one that
            # optbench cannot take: OneCycleLR's total_steps=None means epochs*steps_per_epoch)
            assert default is inspect.Parameter.empty or key == "total_steps", key
        else:
            assert default == value, key


def all_settings(schedule: str, kw: dict[str, Any]) -> dict[str, Any]:
    return schedules.settings({"schedule": schedule, **kw})


# Metric sequences for the plateau schedule's lr test: a decrease, a flat stretch, noise.
PLATEAU_F = np.concatenate([np.linspace(10, 1, 100), np.full(200, 1.0),
                            1 + 0.1 * np.sin(np.arange(700) * 0.7)])

LR_CASES = [
    *[(s, kw) for _, _, s, kw in SCHEDULE_CASES],
    ("step", {"step_size": 7}),
    ("cosine", {"T_max": 17}),  # restarts past T_max: torch's recursion goes back up
    ("cosine_restarts", {"T_0": 10}),
    ("linear", {}),
    ("linear", {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 800}),
    ("onecycle", {"max_lr": 1.0, "total_steps": STEPS, "anneal_strategy": "linear",
                  "three_phase": True, "pct_start": 0.25}),
    ("plateau", {}),
    ("plateau", {"threshold_mode": "abs", "threshold": 0.05, "patience": 0}),
]


@pytest.mark.parametrize("case", LR_CASES, ids=lambda c: c if isinstance(c, str) else None)
def test_lr_sequence_matches_torch(case):
    schedule, kw = case
    base = 0.1
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
        sched = torch_scheduler(schedule, opt, kw)
        theirs = []
        for k in range(STEPS):
            theirs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step(PLATEAU_F[k]) if schedule == "plateau" else sched.step()
    finally:
        torch.set_default_dtype(previous)
    s = schedules.make(all_settings(schedule, kw), base)
    state, ours = s.start(), []
    for k in range(STEPS):
        ours.append(state.lr)
        state = s.advance(state, PLATEAU_F[k])
    theirs, ours = np.array(theirs, dtype=float), np.array(ours)
    assert len(set(theirs)) > 2, "the schedule should change the lr"
    # Both sides are the same Python float arithmetic (torch's recursive formulas, math.cos):
    # equal to the bit, on any machine — stricter than the 1e-12.
    differ = np.flatnonzero(ours != theirs)
    assert differ.size == 0, (f"lr differs from step {differ[0] + 1} on: "
                              f"{ours[differ[0]]!r} != {theirs[differ[0]]!r}")


def schedule_id(case: tuple) -> str:
    return f"{case[2]}-{case[0]}"


@pytest.mark.parametrize("case", [
    pytest.param(case, id=schedule_id(case), marks=() if i == 0 else pytest.mark.slow)
    for i, case in enumerate(SCHEDULE_CASES)])
def test_scheduled_trajectory_matches_torch(case):
    """Each schedule on an optimizer, on the torch backend (the first in the fast suite; the
    same one runs on autograd through the command line below)."""
    name, hp, schedule, kw = case
    ours, _ = optbench_run(name, frozen({**hp, "schedule": schedule, **kw}), "torch")
    ref, state = torch_run(name, frozen(hp), schedule, frozen(kw))
    lrs = state["lrs"]
    assert len(set(lrs)) > 2, "the schedule should change the lr of this run"
    assert_same_trajectory(ours, ref, f"{name} with schedule={schedule}")


@pytest.mark.parametrize("args, fragments", [
    (["-O", "T_max=100"], ["T_max=100", "schedule=cosine"]),
    (["-O", "schedule=cosine"], ["schedule=cosine needs T_max", "eta_min"]),
    (["-O", "schedule=step", "-O", "step_size=10", "-O", "T_max=5"],
     ["T_max=5", "schedule=step", "step_size, gamma"]),
    (["-O", "schedule=warmup"], ["schedule=warmup", "cosine_restarts", "plateau"]),
    (["-O", "schedule=multistep", "-O", "milestones=10,2.5"], ["milestones=10,2.5",
                                                              "integers"]),
    (["-O", "schedule=onecycle", "-O", "max_lr=1", "-O", "total_steps=2",
      "-O", "pct_start=0.5"], ["pct_start=0.5", "total_steps=2"]),
    (["--optimizer", "rprop", "-O", "etas=2,3"], ["etas=2,3", "0 < etaminus < 1 < etaplus"]),
])
def test_bad_schedule_is_a_usage_error(capsys, args, fragments):
    if "--optimizer" not in args:
        args = ["--optimizer", "adam", *args]
    code, out, err = run_main(capsys, "run", "--backend", "torch", "--steps", "3", *args)
    assert_usage_error(code, out, err, *fragments)


def test_compiled_loop_refuses_a_schedule(capsys):
    code, out, err = run_main(capsys, "run", "--backend", "torch", "--steps", "3", "--compile",
                              "-O", "schedule=exponential", "-O", "gamma=0.9")
    assert_usage_error(code, out, err, "compiled loop", "schedule=", "constant lr")


def test_schedule_from_the_command_line(capsys):
    """-O schedule=... reaches the run: the record's x is torch's under the same schedule."""
    import json

    code, out, _ = run_main(capsys, "run", "--backend", "autograd", "--optimizer", "nadam",
                            "--lr", "0.05", "--steps", str(STEPS), "--tol", "0",
                            "-O", "schedule=cosine", "-O", "T_max=300", "-O", "eta_min=1e-3",
                            "--format", "json")
    assert code == 0
    record = json.loads(out)[0]
    ref, _ = torch_run("nadam", frozen({"lr": 0.05}), "cosine",
                       frozen({"T_max": 300, "eta_min": 1e-3}))
    assert record["steps"] == STEPS
    assert relative_error(np.array(record["x"]), ref[-1]) <= RTOL
    assert record["optimizer_params"]["schedule"] == "cosine"


def test_unset_schedule_stays_out_of_the_record(capsys):
    """Runs without a schedule are recorded as before schedules existed (same optimizer_params,
    hence the same run key for --resume); a schedule's set parameters are recorded."""
    import json

    code, out, _ = run_main(capsys, "run", "--backend", "torch", "--steps", "3",
                            "--format", "json")
    assert code == 0
    assert sorted(json.loads(out)[0]["optimizer_params"]) == sorted(
        ["lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"])
    code, out, _ = run_main(capsys, "run", "--backend", "torch", "--steps", "3",
                            "--optimizer", "sgd", "-O", "schedule=step", "-O", "step_size=2",
                            "--format", "json")
    assert code == 0
    params = json.loads(out)[0]["optimizer_params"]
    assert {k: params[k] for k in params if k in schedules.NAMES} == {
        "schedule": "step", "step_size": 2}
