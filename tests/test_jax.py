"""The jax backend, plugins/optbench-jax: agreement with torch and autograd on every built-in
problem, the compiled whole loop (one XLA loop), float32 kept, the command line, divergence.

Needs the distribution installed (the module is skipped otherwise):

    pip install -e plugins/optbench-jax

Correctness only: the timing targets of the compiled mode (the tutorial's 1000 NAdam steps, end
to end with compilation no slower than the tutorial's torch loop, the loop itself <= 0.1x) are
shown by plugins/optbench-jax/benchmarks/whole_loop.py, not asserted here; what is compiled, and
with which options, is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed: pip install -e plugins/optbench-jax")
pytest.importorskip("optbench_jax",
                    reason="optbench-jax is not installed: pip install -e plugins/optbench-jax")

from click.testing import CliRunner

import optbench
from optbench import api
from optbench.cli.main import cli
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.plugins import get_registry
from optbench.problems.ml_data import missing_reason as ml_missing
from optbench.problems.nist import folders as nist_folders
from optbench.runner import stopping
from optbench.runner.loop import optimize
from optbench.testing._common import MODEL_PARAMS

TOL = 1e-12  # relative, float64: the same arithmetic as torch and autograd, up to rounding
EXACT = ("torch", "autograd")

# Every built-in problem, with the variants whose data differ in kind: the puzzle as a matrix
# (linear) and as compiled equations kept in the data (nonlinear), expr with functions.
PROBLEMS = [
    ("regression", {}),
    ("regression", {"degree": 4, "n_samples": 50, "x_scale": 1.5}),
    ("puzzle", {}),
    ("puzzle", {"equations": "x*y = 6; x + y = 5"}),
    ("puzzle", {"equations": "x^2 + y^2 = 4; exp(x/4) - y = 0; x*z = 1"}),
    ("rosenbrock", {"n": 5}),
    ("beale", {}),
    ("booth", {}),
    ("himmelblau", {}),
    ("quadratic", {"n": 8, "kappa": 50.0}),
    ("expr", {"objective": "(1-x)^2 + 100*(y-x^2)^2"}),
    ("expr", {"objective": "exp(x/3) + sin(y)*x + sqrt(x^2 + y^2 + 1) - log(2 + cos(z)) "
                           "+ tanh(x*z) + cosh(y/4) + abs(z - 3)"}),
    ("model", MODEL_PARAMS),
    ("mgh", {"number": 7}),  # helical valley: a step in its angle
    ("mgh", {"number": 35, "start": 10.0}),
    ("nist", {"dataset": "DanWood", "start": 1}),  # skipped where the data is absent
    ("ml-logistic", {}),  # the ml problems: skipped without scikit-learn
    ("ml-ridge", {}),
    ("ml-softmax", {}),
    ("ml-tanh-net", {}),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(PROBLEMS)]
# Chebyquad (n = 8) compiles a larger program than the rest: ~10 s of XLA per optimizer.
# softmax (649 unknowns over 1797 samples) and the tanh network (2410) cost seconds per run
# on each backend: slow too (test_ml checks their jax gradients with its slow tests).
SLOW = {"ml-softmax", "ml-tanh-net"}
CASES = [pytest.param(name, params, id=i, marks=pytest.mark.slow)
         if (name == "mgh" and params.get("number") == 35) or name in SLOW
         else pytest.param(name, params, id=i)
         for (name, params), i in zip(PROBLEMS, IDS, strict=True)]
# Final points after 200 steps agree to 1e-12 only where rounding is not amplified: lbfgs's
# ~90 steps on softmax end 5.5e-9 apart on jax and torch, and the nonconvex tanh network's
# runs 1e-3 apart (measured). Their values and gradients agree to 1e-12 (the test above);
# test_ml checks what each backend reaches.
FINAL_CASES = [c for c in CASES if c.values[0] not in SLOW]


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def instance(name, params, seed=0):
    if name == "nist" and not nist_folders():
        pytest.skip("../shared/data/nist* is not beside this checkout")
    if name.startswith("ml-") and ml_missing():
        pytest.skip(ml_missing())
    registry = get_registry()
    problem = registry.get("problem", name)
    return problem, problem.make(resolve(problem.params, params, name), seed)


def evaluate(backend_name, problem, inst, point, dtype="float64"):
    backend = get_registry().get("backend", backend_name)
    obj = backend.prepare(problem, inst.data, dtype=dtype, device="cpu")
    f, g = obj.value_and_grad(obj.from_numpy(point))
    return float(f), np.asarray(obj.to_numpy(g), dtype=np.float64)


@pytest.fixture(scope="module")
def exact_backends():
    registry = get_registry()
    names = [n for n in EXACT if registry.get("backend", n).available("cpu") is None]
    if not names:
        pytest.skip("neither torch nor autograd is installed")
    return names


def test_registered_as_a_plugin():
    registry = get_registry()
    assert "jax" in registry.names("backend")
    backend = registry.get("backend", "jax")
    assert backend.available("cpu") is None and backend.compiles
    assert backend.dtypes == ("float64", "float32")
    assert isinstance(backend.available("cuda"), (str, type(None)))


def test_the_problem_list_covers_every_built_in_problem():
    registry = get_registry()
    built_in = {name for name in registry.names("problem")
                if registry.owner[("problem", name)].startswith("optbench.")}
    assert built_in <= {name for name, _ in PROBLEMS}, built_in - {n for n, _ in PROBLEMS}


# ---------------------------------------------------------------------------------------
# Acceptance 1a: agreement with torch and autograd to 1e-12 on every built-in problem
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), CASES)
def test_value_and_gradient_agree(name, params, exact_backends):
    problem, inst = instance(name, params)
    rng = np.random.default_rng(1)
    for point in (inst.x0, inst.x0 + rng.standard_normal(inst.x0.shape)):
        f_jax, g_jax = evaluate("jax", problem, inst, point)
        assert np.isfinite(f_jax) and np.all(np.isfinite(g_jax))
        for other in exact_backends:
            f, g = evaluate(other, problem, inst, point)
            assert abs(f_jax - f) <= TOL * abs(f), (other, f_jax, f)
            assert rel(g_jax, g) <= TOL, (other, g_jax, g)


@pytest.mark.parametrize(("name", "params"), FINAL_CASES)
@pytest.mark.parametrize(("optimizer", "steps"), [("nadam", 200), ("lbfgs", 200)])
def test_final_points_agree(name, params, optimizer, steps, exact_backends):
    # L-BFGS runs to its own stop here (under 60 steps): stopped half-way along Rosenbrock's
    # valley (5-D, 30 steps) torch and autograd themselves differ by 2e-10, rounding amplified.
    # abs(z - 3) has a kink that L-BFGS reaches exactly, where it stalls; the backends'
    # derivatives of abs at 0 differ (torch's sign(0) = 0), so lbfgs's restart from there
    # takes them apart: compare torch's own iteration, which stops there (on_stall=stop).
    kink = optimizer == "lbfgs" and "abs(" in str(params.get("objective", ""))
    runs = {b: optbench.solve(name, b, optimizer, problem_params=params, steps=steps, tol=0,
                              optimizer_params={"on_stall": "stop"} if kink else None)
            for b in ("jax", *exact_backends)}
    jax_run = runs["jax"]
    assert jax_run.status in ("max_steps", "converged", "stalled"), jax_run.message
    assert jax_run.n_evals >= jax_run.steps
    for other in exact_backends:
        assert jax_run.status == runs[other].status and jax_run.steps == runs[other].steps
        assert rel(jax_run.x, runs[other].x) <= TOL, (other, jax_run.x, runs[other].x)


# ---------------------------------------------------------------------------------------
# Acceptance 1b: the whole loop compiled, the tutorial's regression, 1000 NAdam steps
# ---------------------------------------------------------------------------------------


def test_compiled_tutorial_matches_step_by_step_and_torch(exact_backends):
    compiled = optbench.solve("regression", "jax", compile=True)  # the tutorial's defaults
    stepwise = optbench.solve("regression", "jax")
    assert compiled.optimizer_params["lr"] == 0.01 and compiled.dtype == "float64"
    assert compiled.status == "max_steps" and compiled.steps == 1000
    assert compiled.n_evals == 1000  # counted in Python, steps per call
    assert compiled.time_s > 0 and compiled.setup_s > 0  # compile time is set-up time
    assert rel(compiled.x, stepwise.x) <= TOL
    for other in exact_backends:
        assert rel(compiled.x, optbench.solve("regression", other).x) <= TOL, other
    # The trace: f at sampled steps from the compiled loop's f values, ending at the final f.
    steps = [e[0] for e in compiled.trace]
    assert steps[0] == 0 and steps[-1] == 1000 and steps == sorted(set(steps))
    assert compiled.trace[0][2] == pytest.approx(stepwise.trace[0][2], rel=1e-14)
    assert compiled.trace[-1][2] == pytest.approx(compiled.f, rel=1e-12)
    assert abs(compiled.f - stepwise.f) <= TOL * stepwise.f


def test_compiled_tutorial_float32():
    compiled = optbench.solve("regression", "jax", compile=True, dtype="float32")
    stepwise = optbench.solve("regression", "jax", dtype="float32")
    assert compiled.status == "max_steps" and compiled.dtype == "float32"
    # float32 rounding differs a little (the momentum schedule is carried in float32 there).
    assert rel(compiled.x, stepwise.x) <= 1e-5
    assert rel(compiled.x, optbench.solve("regression", "jax").x) <= 1e-4


METHODS = [
    ("nadam", {}),
    ("nadam", {"weight_decay": 0.01}),
    ("nadam", {"weight_decay": 0.01, "decoupled_weight_decay": True}),
    ("adam", {}),
    ("adam", {"amsgrad": True, "weight_decay": 0.01}),
    ("adamw", {}),
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("sgd", {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
]


def loops(optimizer, hp, dtype, problem_name="rosenbrock", params=None, steps=150, lr=1e-3):
    """(x, fs) of the compiled loop and of the runner's step-by-step loop, same objective."""
    p = api.plan(problem_name, "jax", optimizer, optimizer_params=hp, lr=lr, steps=steps,
                 dtype=dtype, problem_params=params)
    obj = p.backends[0].prepare(p.problem, p.instance.data, dtype=dtype, device="cpu")
    x0 = obj.from_numpy(p.instance.x0)
    x_c, fs = obj.compiled_loop(p.method, steps, x0)()
    assert obj.n_evals == steps
    result = optimize(obj, p.method, x0, steps=steps, criteria=stopping.criteria(None, None, None),
                      per_decade=0)
    return x_c, fs, result.x


@pytest.mark.parametrize(("optimizer", "hp"), METHODS,
                         ids=[f"{o}-{'-'.join(hp) or 'defaults'}" for o, hp in METHODS])
def test_every_first_order_method_traces_and_matches_step_by_step(optimizer, hp):
    x_c, fs, x_s = loops(optimizer, hp, "float64")
    assert x_c.dtype == np.float64 and fs.dtype == np.float64 and fs.shape == (150,)
    assert np.all(np.isfinite(np.asarray(fs)))
    assert rel(x_c, x_s) <= TOL, (np.asarray(x_c), np.asarray(x_s))


@pytest.mark.parametrize(("optimizer", "hp"), METHODS,
                         ids=[f"{o}-{'-'.join(hp) or 'defaults'}" for o, hp in METHODS])
def test_float32_keeps_float32_in_both_modes(optimizer, hp):
    evaluate("jax", *instance("regression", {}), np.ones(3))  # x64 on: float32 must hold anyway
    lr = 1e-5 if optimizer == "sgd" else 0.01  # plain gradient steps diverge from 1e-3 here
    x_c, fs, x_s = loops(optimizer, hp, "float32", "regression", {}, steps=100, lr=lr)
    assert np.all(np.isfinite(np.asarray(fs)))
    assert x_c.dtype == np.float32 and fs.dtype == np.float32 and x_s.dtype == np.float32
    assert rel(x_c, x_s) <= 1e-5


@pytest.mark.parametrize(("name", "params"), [p for p in PROBLEMS if p[0] in ("expr", "puzzle")],
                         ids=[i for i in IDS if i.startswith(("expr", "puzzle"))])
def test_compiled_loop_with_non_array_data(name, params):
    # Compiled expressions stay in the data under "_..." keys and reach the objective by closure.
    compiled = optbench.solve(name, "jax", problem_params=params, steps=200, compile=True)
    stepwise = optbench.solve(name, "jax", problem_params=params, steps=200)
    assert compiled.status == stepwise.status == "max_steps"
    assert rel(compiled.x, stepwise.x) <= TOL


# ---------------------------------------------------------------------------------------
# Compile time of --compile: what is compiled, with which options
# ---------------------------------------------------------------------------------------


@pytest.fixture
def compiled_programs():
    """The names of the programs XLA compiles meanwhile (JAX's own compile events)."""
    import jax

    unregister = getattr(jax.monitoring, "unregister_event_duration_listener", None)
    if unregister is None:
        pytest.skip("this jax cannot unregister a monitoring listener")
    names: list[str] = []

    def listen(event, seconds, **kw):
        if event.endswith("backend_compile_duration"):
            names.append(kw.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield names
    unregister(listen)


def test_a_compiled_run_compiles_value_and_grad_and_one_loop(compiled_programs):
    # A shape no other test uses, so that no cache answers: converting the data and x0
    # compiles nothing, the loop is one program (primed with 0 steps, no lax.cond), and the
    # record's final f and gradient reuse value_and_grad's program (no recompile for the
    # loop's output).
    record = optbench.solve("regression", "jax", compile=True, steps=50,
                            problem_params={"degree": 3, "n_samples": 37})
    assert record.status == "max_steps" and record.n_evals == 50
    assert sorted(compiled_programs) == ["jit(f)", "jit(run)"], compiled_programs


def test_quick_compile_only_for_small_runs(monkeypatch):
    import optbench_jax

    seen = []
    real = optbench_jax._compiler_options

    def spy(platform, quick=None):
        if quick is not None:  # the compiled loop's call
            seen.append(quick)
        return real(platform, bool(quick))

    monkeypatch.setattr(optbench_jax, "_compiler_options", spy)
    for params, steps in (({}, 1000), ({"n_samples": 100_000}, 10)):
        p = api.plan("regression", "jax", "nadam", steps=steps, problem_params=params)
        obj = p.backends[0].prepare(p.problem, p.instance.data, dtype="float64", device="cpu")
        obj.compiled_loop(p.method, steps, obj.from_numpy(p.instance.x0))
    assert seen == [True, False]
    assert real("cpu", True)["xla_backend_optimization_level"] == 0
    assert "xla_backend_optimization_level" not in real("cpu", False)


def test_a_fully_optimized_compiled_loop_matches_step_by_step_too(monkeypatch):
    import optbench_jax

    monkeypatch.setattr(optbench_jax, "QUICK_COMPILE_WORK", 0)  # no quick compile
    x_c, fs, x_s = loops("nadam", {}, "float64")
    assert np.all(np.isfinite(np.asarray(fs))) and rel(x_c, x_s) <= TOL


def test_compile_options_this_jaxlib_lacks_fall_back_to_its_defaults(monkeypatch):
    import optbench_jax

    monkeypatch.setitem(optbench_jax.CPU_COMPILER_OPTIONS, "xla_cpu_no_such_option", True)
    monkeypatch.setattr(optbench_jax, "_options_ok", {})
    compiled = optbench.solve("regression", "jax", compile=True, steps=100)
    assert optbench_jax._options_ok == {"cpu": False}
    stepwise = optbench.solve("regression", "jax", steps=100)
    assert compiled.status == stepwise.status == "max_steps"
    assert rel(compiled.x, stepwise.x) <= TOL


def test_converted_data_are_copies():
    # Later changes to the caller's arrays change nothing. On the CPU, jax.device_put aliases
    # a 64-byte aligned numpy array (even with may_alias=False), so one point here is aligned.
    problem, inst = instance("regression", {})
    obj = get_registry().get("backend", "jax").prepare(problem, inst.data, dtype="float64",
                                                       device="cpu")
    buffer = np.zeros(16)
    start = (-buffer.ctypes.data % 64) // 8
    aligned = buffer[start:start + inst.x0.size]
    aligned[:] = inst.x0
    points = [obj.from_numpy(inst.x0), obj.from_numpy(aligned)]
    before = [float(obj.value_and_grad(x)[0]) for x in points]
    inst.data["y"][:] += 1.0
    inst.x0[:] += 1.0
    aligned[:] += 1.0
    assert [float(obj.value_and_grad(x)[0]) for x in points] == before


def test_compiled_mode_refuses_line_search_methods():
    with pytest.raises(UsageError, match="compiled loop"):
        api.plan("regression", "jax", "lbfgs", compile=True)


def test_data_are_arguments_not_constants():
    # 10^5 samples: passed to the compiled functions, not baked into them.
    problem, inst = instance("regression", {"n_samples": 100_000})
    obj = get_registry().get("backend", "jax").prepare(problem, inst.data, dtype="float64",
                                                       device="cpu")
    assert set(obj._arrays) == {k for k, v in inst.data.items() if isinstance(v, np.ndarray)}
    text = obj._vg_jit.lower(obj.from_numpy(inst.x0), obj._arrays).as_text()
    assert len(text) < 50_000


def test_warm_up_is_uncounted_and_changes_nothing():
    p = api.plan("regression", "jax", "nadam", steps=50)
    obj = p.backends[0].prepare(p.problem, p.instance.data, dtype="float64", device="cpu")
    x0 = obj.from_numpy(p.instance.x0)
    obj.warm_up(p.method, x0)
    assert obj.n_evals == 0 and obj.n_fevals == 0
    crit = stopping.criteria(None, None, None)
    x = optimize(obj, p.method, x0, steps=50, criteria=crit).x
    assert obj.n_evals == 50
    assert rel(x, optbench.solve("regression", "jax", steps=50).x) == 0.0


# ---------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def test_list_backends_shows_jax():
    assert "jax" in invoke("list", "backends").stdout
    rows = json.loads(invoke("list", "backends", "--format", "json").stdout)
    (row,) = [r for r in rows if r["name"] == "jax"]
    assert row["plugin"] == "jax" and row["available"] and row["reason"] is None


def test_run_all_includes_jax():
    result = invoke("run", "--backend", "all", "--steps", "30", "--format", "json")
    assert result.exit_code == 0, result.output
    records = {r["backend"]: r for r in json.loads(result.stdout)}
    assert "jax" in records
    r = records["jax"]
    assert r["status"] == "max_steps" and r["steps"] == r["n_evals"] == 30
    for other in set(EXACT) & set(records):
        assert rel(r["x"], records[other]["x"]) <= TOL


@pytest.mark.slow  # compiles the whole loop in a subprocess (~8 s)
def test_run_compile_on_the_command_line():
    for dtype in ("float64", "float32"):
        result = invoke("run", "--backend", "jax", "--compile", "--steps", "1000", "--dtype",
                        dtype, "--format", "json")
        assert result.exit_code == 0, result.output
        (r,) = json.loads(result.stdout)
        assert r["backend"] == "jax" and r["dtype"] == dtype and r["status"] == "max_steps"
        assert r["steps"] == r["n_evals"] == 1000 and r["setup_s"] > 0
    # --backend all --compile keeps the backends that compile, jax among them.
    result = invoke("run", "--backend", "all", "--compile", "--steps", "10", "--format", "json")
    assert result.exit_code == 0, result.output
    assert "jax" in {r["backend"] for r in json.loads(result.stdout)}


# ---------------------------------------------------------------------------------------
# Divergence
# ---------------------------------------------------------------------------------------


def test_divergence_in_compiled_mode_names_the_step():
    options = {"optimizer_params": {}, "lr": 1e3, "steps": 200}
    compiled = optbench.solve("regression", "jax", "sgd", compile=True, **options)
    stepwise = optbench.solve("regression", "jax", "sgd", **options)
    assert compiled.status == stepwise.status == "diverged"
    assert f"at step {stepwise.steps}" in compiled.message, (compiled.message, stepwise.message)
    assert "compiled loop" in compiled.message


# ---------------------------------------------------------------------------------------
# Chunks: --max-time honoured, no buffer that grows with the step count, one program
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", ["20000000", str(10**12)])
def test_compile_honours_max_time_whatever_the_step_count(steps):
    """`jax --compile --steps 20000000 --max-time 0.5` ran all its steps (64 s, with a
    160 MB buffer of f values); 10^12 steps overflowed the int32 trip count. In a subprocess,
    with a timeout as hang detector."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "optbench", "run", "--backend", "jax",
                           "--compile", "--steps", steps, "--max-time", "0.5", "--tol", "0",
                           "--format", "json"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    (r,) = json.loads(done.stdout)
    assert r["status"] == "timeout", r["message"]
    assert 0 < r["steps"] == r["n_evals"] < int(steps)
    assert 0.5 <= r["time_s"] < 60  # the upper bound: a hang detector
    assert all(np.isfinite(f) for _, _, f in r["trace"])


def test_a_loop_in_chunks_is_the_loop_in_one_go():
    x_one, fs_one, _ = loops("nadam", {}, "float64", steps=150)
    p = api.plan("rosenbrock", "jax", "nadam", lr=1e-3, steps=150)
    obj = p.backends[0].prepare(p.problem, p.instance.data, dtype="float64", device="cpu")
    loop = obj.compiled_loop(p.method, 150, obj.from_numpy(p.instance.x0))
    parts = [loop(n) for n in (1, 49, 7, 100)]  # the last asks for more than is left
    assert [len(fs) for _, fs in parts] == [1, 49, 7, 93] and obj.n_evals == 150
    assert np.array_equal(np.concatenate([fs for _, fs in parts]), np.asarray(fs_one))
    assert np.array_equal(np.asarray(parts[-1][0]), np.asarray(x_one))
    assert len(loop(10)[1]) == 0  # nothing left


def test_huge_step_counts_allocate_one_chunk(monkeypatch):
    import optbench_jax

    monkeypatch.setattr(optbench_jax, "CHUNK", 64)
    p = api.plan("rosenbrock", "jax", "adam", lr=1e-3, steps=10**15)
    obj = p.backends[0].prepare(p.problem, p.instance.data, dtype="float64", device="cpu")
    loop = obj.compiled_loop(p.method, 10**15, obj.from_numpy(p.instance.x0))
    x, fs = loop(200)  # more than a chunk: several calls of the one program
    assert fs.shape == (200,) and np.all(np.isfinite(fs)) and obj.n_evals == 200
    x_ref, fs_ref, _ = loops("adam", {}, "float64", steps=200)
    # Not bit for bit: a loop this long is compiled fully optimized, the reference quickly.
    assert rel(fs, fs_ref) <= TOL and rel(x, x_ref) <= TOL


def test_a_time_limited_run_still_compiles_one_loop(compiled_programs):
    # Chunks of 1, 2, 4, ... steps: the trip count is an argument, so one program serves all.
    record = optbench.solve("regression", "jax", compile=True, steps=10**7, max_time=0.2, tol=0,
                            problem_params={"degree": 3, "n_samples": 41})
    assert record.status == "timeout"
    assert sorted(compiled_programs) == ["jit(f)", "jit(run)"], compiled_programs
