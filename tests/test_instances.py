"""Problem, Backend and Optimizer instances wherever the Python API takes a name:
optbench.solve and optbench.bench run them as they are, records carry their names, and
the process-wide registry never sees them.

Before: `optbench.solve(problem=MyProblem())` raised "unknown problem <...MyProblem object>",
and there was no `optbench.bench`.
"""

from __future__ import annotations

import numpy as np
import pytest

import optbench
from optbench.backends.hips_autograd import AutogradBackend
from optbench.core import Instance, Method, Optimizer, Param, Reference
from optbench.errors import UsageError
from optbench.plugins import get_registry
from records import read_records
from toyproblems import Bowl


class Shift(Bowl):
    """sum((x − c)²), c drawn from the seed: its minimum is c, f* = 0."""

    name = "shift"

    def reference(self, instance: Instance) -> Reference:
        return Reference(x=np.asarray(instance.data["c"]), f=0.0)


class Halving(Optimizer):
    """x ← x − lr·g. On sum((x − c)²), g = 2(x − c): lr 0.25 halves x − c each step."""

    name = "halving"
    hyperparams = (Param("lr", "float", 0.25, "step size", low=0),)

    def method(self, lr: float) -> Method:
        def step(objective, x, state):
            f, g = objective.value_and_grad(x)
            return x - lr * g, state + 1, f, g

        return Method(lambda x, xp: 0, step)


class Counted(AutogradBackend):
    """autograd under another name, counting the objectives it prepares: proof that the
    instance given is the one that ran."""

    name = "counted"

    def __init__(self) -> None:
        self.prepared = 0

    def prepare(self, problem, data, *, dtype, device):
        self.prepared += 1
        return super().prepare(problem, data, dtype=dtype, device=device)


def names() -> dict[str, list[str]]:
    registry = get_registry()
    return {kind: registry.names(kind) for kind in ("problem", "backend", "optimizer")}


def halved(problem: Shift, seed: int, steps: int, n: int = 3) -> np.ndarray:
    """Where Halving with lr 0.25 is after `steps` steps: c + (x0 − c)/2^steps."""
    inst = problem.make({"n": n}, seed)
    c = inst.data["c"]
    return c + (inst.x0 - c) / 2.0**steps


def test_solve_runs_instances_as_they_are():
    before = names()
    problem, backend, optimizer = Shift(), Counted(), Halving()
    record = optbench.solve(problem=problem, backend=backend, optimizer=optimizer, steps=10,
                            seed=4, tol=0)
    assert (record.problem, record.backend, record.optimizer) == ("shift", "counted",
                                                                  "halving")
    assert record.status == "max_steps" and record.steps == 10
    np.testing.assert_allclose(record.x, halved(problem, 4, 10), rtol=0, atol=1e-15)
    assert backend.prepared == 1
    assert names() == before  # nothing registered on the way


def test_solve_mixes_instances_and_names():
    record = optbench.solve(problem=Shift(), backend="fd", optimizer="lbfgs", seed=1)
    assert record.success, record.message
    np.testing.assert_allclose(record.x, Shift().make({"n": 3}, 1).data["c"], atol=1e-7)
    record = optbench.solve(problem="booth", backend=Counted(), optimizer=Halving(), lr=0.05,
                            steps=3, tol=0)
    assert (record.problem, record.backend, record.optimizer) == ("booth", "counted",
                                                                  "halving")
    assert record.optimizer_params == {"lr": 0.05}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"problem": object()}, "problem=<object object"),
    ({"backend": 3.5}, "backend=3.5 is not accepted"),
    ({"optimizer": [Halving()]}, "optimizer=[<"),
    ({"problem": type("Nameless", (Shift,), {"name": ""})()}, "has no valid name"),
    ({"backend": type("All", (Counted,), {"name": "all"})()}, "has no valid name"),
])
def test_what_is_neither_a_name_nor_an_instance_is_refused(kwargs, fragment):
    with pytest.raises(UsageError) as caught:
        optbench.solve(**{"problem": "booth", "backend": "fd", "optimizer": "lbfgs",
                          **kwargs})
    assert fragment in str(caught.value) and "\n" not in str(caught.value), caught.value


# -- bench -----------------------------------------------------------------------------------

def test_bench_runs_a_grid_of_instances_and_names_in_order():
    before = names()
    problem, backend = Shift(), Counted()
    records = optbench.bench(problems=[problem, "booth"], backends=[backend, "fd"],
                             optimizers=[Halving(), "lbfgs"], seeds=2, steps=8)
    assert names() == before
    grid = [(p, o, b, s) for p in ("shift", "booth") for o in ("halving", "lbfgs")
            for b in ("counted", "fd") for s in (0, 1)]
    assert [(r.problem, r.optimizer, r.backend, r.seed) for r in records] == grid
    assert all(r.status != "error" for r in records), [r.message for r in records]
    for r in records:
        if (r.problem, r.optimizer) == ("shift", "halving"):
            tol = 1e-15 if r.backend == "counted" else 1e-8  # fd's gradient is approximate
            np.testing.assert_allclose(r.x, halved(problem, r.seed, 8), rtol=0, atol=tol)
    # Warm-up runs (one per problem instance and backend) plus the grid's own runs.
    assert backend.prepared == 2 + 8


def test_bench_alternatives_of_an_instance_s_hyperparameter():
    records = optbench.bench(problems=Shift(), backends="autograd", optimizers=Halving(),
                             seeds=[3], lr=[0.25, 0.5], steps=4)
    assert [r.optimizer_params["lr"] for r in records] == [0.25, 0.5]
    problem = Shift()
    np.testing.assert_allclose(records[0].x, halved(problem, 3, 4), atol=1e-15)
    np.testing.assert_allclose(records[1].x, problem.make({"n": 3}, 3).data["c"], atol=1e-15)


def test_bench_writes_the_results_file_and_resumes(tmp_path):
    out = tmp_path / "results.jsonl"
    first = optbench.bench(problems=[Shift()], backends=[Counted()], optimizers=["lbfgs"],
                           seeds=[0], steps=50, output=str(out))
    (line,) = read_records(out)
    assert line["problem"] == "shift" and line["backend"] == "counted"
    assert line["x"] == first[0].x and "host" in line and "campaign" in line
    whole = optbench.bench(problems=[Shift()], backends=[Counted()], optimizers=["lbfgs"],
                           seeds=[0, 1], steps=50, output=str(out), resume=True)
    assert [r.seed for r in whole] == [0, 1] and whole[0] == first[0]
    assert len(read_records(out)) == 2
    with pytest.raises(UsageError, match="already holds 2 records: pass resume=True"):
        optbench.bench(problems=[Shift()], backends=["fd"], seeds=[0], steps=5,
                       output=str(out))
    assert len(read_records(out)) == 2


def test_bench_refuses_bad_grids_before_running():
    counted = Counted()
    cases = [
        (dict(problems=[Shift(), Shift()]), "two different problems are named 'shift'"),
        (dict(optimizers=[Halving(), "lbfgs"], optimizer_params={"momentum": 0.9}),
         "-O momentum: no optimizer of the campaign has it"),
        (dict(seeds=0), "seeds=0 is not accepted"),
        (dict(steps=-2), "steps=-2 is not accepted"),
        (dict(resume=True), "resume=True needs output"),
        (dict(problems=[42]), "problem=42 is not accepted"),
        (dict(problem_params=[1]), "problem_params=[1] is not accepted"),
    ]
    for kwargs, fragment in cases:
        args = {"problems": [Shift()], "backends": [counted], "optimizers": ["lbfgs"],
                **kwargs}
        with pytest.raises(UsageError) as caught:
            optbench.bench(**args)
        assert fragment in str(caught.value), (kwargs, str(caught.value))
    assert counted.prepared == 0


def test_the_same_instance_twice_is_one_run():
    shift = Shift()
    records = optbench.bench(problems=[shift, shift], backends="autograd",
                             optimizers="lbfgs", seeds=1, steps=20)
    assert len(records) == 1


def test_bench_problem_params_reach_an_instance():
    records = optbench.bench(problems=Shift(), backends="autograd", optimizers="lbfgs",
                             problem_params={"n": [2, 5]}, steps=50)
    assert [len(r.x) for r in records] == [2, 5]
    assert all(r.success for r in records), [r.message for r in records]
