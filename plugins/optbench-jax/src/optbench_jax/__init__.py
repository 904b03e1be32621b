"""optbench backend `jax`: jit-compiled `value_and_grad`, and the whole loop compiled.

Step by step (the default), the runner calls `value_and_grad`, a `jax.jit` of
`jax.value_and_grad(problem.objective)`, and the optimizer's pure step computes with
`jax.numpy` between calls. With `optbench run --compile`, `compiled_loop` traces the same
optax-style step (`method.init`, `method.step`) once, as the body of one `jax.lax.fori_loop`
whose trip count is an argument, and compiles it ahead of time (`jit(...).lower(...)
.compile()`): the compile time is set-up time (`setup_s`), the loop time is the calls of the
compiled executable, one per chunk of steps (one for a run of at most CHUNK steps without
--max-time).

Compile time: XLA:CPU compiles with CPU_COMPILER_OPTIONS (same arithmetic, about half the
compile time of these small programs), and the loop of a small run (QUICK_COMPILE_WORK) with
LLVM's optimizations off. Cold, the tutorial's `--compile` run then sets up in ~0.13 s after
`import jax` (value_and_grad ~60 ms: trace, lower, compile; the loop ~50 ms; the rest ~15 ms),
against ~0.23 s for the tutorial's own torch loop: benchmarks/whole_loop.py.

Data: only numpy arrays in the problem's data are converted (once, to the run's dtype) and
they are passed to the compiled functions as *arguments*, so that jit does not bake large data
sets into the executable as constants; anything else a problem keeps in its data (a compiled
expression under a key starting with "_") reaches the objective by closure.

float64: JAX computes in float32 unless `jax_enable_x64` is set. A float64 run sets it with
`jax.config.update("jax_enable_x64", True)` before it creates any array. The flag is
process-wide and stays on: other JAX code in the same process then gets 64-bit defaults too.
float32 runs remain float32 with the flag on, because their arrays are created float32 and
Python numbers mixed with them are weakly typed (they take the array's dtype).

Timing: JAX dispatches asynchronously, on the CPU too. `synchronize()` blocks until the
last result handed out (of `value_and_grad` or of the compiled loop) is ready, so that a
timer read next is true. On the CPU `asynchronous` is False: the runner reads f at every step,
so the stop rules act at exactly the step they do on torch and autograd, and on tiny problems
there is little execution to overlap with dispatch anyway (the fast path is `--compile`).
On a GPU it is True, as torch's CUDA objective is.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench import hookimpl
from optbench.core import Backend, Objective
from optbench.errors import UsageError

__version__ = "0.1.0"

_CUDA_PLUGINS = ("jax_cuda13_plugin", "jax_cuda12_plugin")

# XLA:CPU options for every executable this backend compiles (value_and_grad, the compiled
# loop). Both leave the generated arithmetic as it is (the same bits as XLA's defaults on the
# tutorial, step by step and compiled) and cut the compile time of these small programs by
# about half: the loop-fusion emitters of older XLA instead of the MLIR fusion emitters, and
# one LLVM module instead of one split for parallel code generation. Measured in
# benchmarks/whole_loop.py; a jaxlib that does not know one of them compiles with XLA's
# defaults instead (see `_compiler_options`).
CPU_COMPILER_OPTIONS: dict[str, Any] = {
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}
_options_ok: dict[str, bool] = {}  # platform -> whether its options were accepted

# The compiled loop of a small run is compiled with LLVM's optimizations off
# (xla_backend_optimization_level 0): on the tutorial that halves its compile time (~70 ->
# ~30 ms cold) for ~0.3 ms more loop time (0.7 -> 1.0 ms for 1000 steps). The loop's
# arithmetic then rounds a little differently (agreement with the step-by-step path stays at
# rounding level, 1e-12 relative in float64). Unoptimized code is ~2.5x slower per data
# element (10^5 samples: 0.55 -> 1.4 s for 1000 steps), so it is used only while the work,
# steps x (data elements + 100), is at most this: about 5 ms of extra loop time at most on
# a 2-core EPYC, against ~30-40 ms of compile time saved.
QUICK_COMPILE_WORK = 2_000_000

# The most steps one call of the compiled loop runs: its buffer of f values has this many
# entries at most (512 KiB in float64), however many steps the run takes (optbench's runner
# asks for chunks of up to optbench.runner.loop.CHUNK_MAX, the same number).
CHUNK = 1 << 16


def _find(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing_jax() -> str | None:
    if not _find("jax"):
        return "jax is not installed (pip install jax, or pip install -e plugins/optbench-jax)"
    return None


def _no_cuda() -> str | None:
    """Why jax cannot use CUDA here, looked up without importing jax."""
    if not any(_find(m) for m in _CUDA_PLUGINS):
        return "jax has no CUDA plugin installed (pip install 'jax[cuda12]')"
    if not os.path.exists("/proc/driver/nvidia/version") and not os.path.exists("/dev/nvidia0"):
        return "no NVIDIA driver or CUDA device on this machine"
    return None


def _compiler_options(platform: str, quick: bool = False) -> dict[str, Any] | None:
    if platform != "cpu" or not _options_ok.get(platform, True):
        return None
    options = dict(CPU_COMPILER_OPTIONS)
    if quick:
        options.setdefault("xla_backend_optimization_level", 0)
    return options


def _unknown_option(exc: Exception) -> bool:
    return "compile option" in str(exc)


# The jitted functions of recent objectives, shared by a new objective of the same problem
# with the same non-array data (the same compiled expression, say) on the same device: jit
# caches its executables per function, so a fit from another start, or by another
# least-squares method, of the same model reuses them instead of compiling again (NIST's
# datasets from two starts: one compilation per dataset instead of one per fit). The data's
# arrays are arguments, so they may differ. Entries keep what their key names alive (ids
# stay unique), and the oldest goes beyond FUNCTION_CACHE entries.
FUNCTION_CACHE = 32
_functions: dict[tuple[Any, ...], dict[str, Any]] = {}


def _identity(value: Any) -> Any:
    """A key for a non-array datum: plain values by value, anything else by identity."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    if isinstance(value, tuple) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return ("tuple", value)
    return ("id", id(value))


def _shared(key: tuple[Any, ...], keep: Any) -> dict[str, Any]:
    entry = _functions.pop(key, None)
    if entry is None:
        entry = {"keep": keep}
    _functions[key] = entry  # the most recent last
    while len(_functions) > FUNCTION_CACHE:
        del _functions[next(iter(_functions))]
    return entry


def enable_x64() -> None:
    """Let JAX create float64 arrays (process-wide; see the module's docstring)."""
    import jax

    if not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)


class _Traced:
    """The objective as the optimizer's step sees it inside the compiled loop: the plain
    (un-jitted) value_and_grad over traced data, counted outside (steps per call)."""

    def __init__(self, owner: JaxObjective, arrays: Mapping[str, Any]) -> None:
        self.xp = owner.xp
        self.dtype = owner.dtype
        self.device = owner.device
        self._vg = owner._vg
        self._arrays = arrays

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        return self._vg(x, self._arrays)


class JaxObjective(Objective):
    def __init__(self, problem: Any, data: Mapping[str, Any], dtype: str, device: str) -> None:
        super().__init__()
        if dtype == "float64":
            enable_x64()  # before the first array is created
        import jax
        import jax.numpy as jnp

        self._jax = jax
        self.xp = jnp
        self.dtype = dtype
        self.device = device
        self.asynchronous = device != "cpu"
        # Every new array shape compiles each operation again: batched fits keep theirs
        # (frozen fits ride along) instead of shrinking the batch as fits finish
        # (optbench.fitting.batch; compacting took 10^4 fits from 2 s to 13 s).
        self.static_shapes = True
        self._np_dtype = np.dtype(dtype)
        try:
            self._device = jax.devices(device)[0]
        except RuntimeError as exc:
            raise UsageError(f"--device {device}: jax has no such device here ({exc}); "
                             "accepted: cpu") from None
        self._default = self._device == jax.devices()[0]
        self._platform = self._device.platform
        self._last: Any = None
        self._warm: set[tuple[int, ...]] = set()
        self._pending: list[Any] = []  # points whose value_and_grad may be compiled ahead
        self._ready = False

        self.data = self.convert_data(data)
        # Arrays are arguments of the compiled functions; everything else is closed over.
        self._arrays = {k: v for k, v in self.data.items() if isinstance(v, jax.Array)}
        others = {k: v for k, v in self.data.items() if k not in self._arrays}
        fn = problem.objective

        def f(x: Any, arrays: Mapping[str, Any]) -> Any:
            # Full-precision products on every device (GPUs would take float32 matmuls in
            # TF32 by default, 10-bit mantissas); a no-op on the CPU.
            with jax.default_matmul_precision("highest"):
                return fn(x, {**others, **arrays}, jnp)

        key = (id(problem), self._platform, str(self._device),
               tuple(sorted((k, _identity(v)) for k, v in others.items())))
        self._shared = _shared(key, (problem, others))
        if "vg" not in self._shared:
            vg = jax.value_and_grad(f)
            self._shared.update(vg=vg, vg_jit=jax.jit(
                vg, compiler_options=_compiler_options(self._platform)))
        self._vg, self._vg_jit = self._shared["vg"], self._shared["vg_jit"]
        self.problem = problem
        self._others = others
        self._rj_jit: Any = None  # residuals and their Jacobian, compiled at first use
        self._r_jit: Any = None
        self._ready = True

    def _without_options(self, exc: Exception) -> bool:
        """After a compile that failed on an option this jaxlib lacks: drop the options
        (for this platform, process-wide) and say whether a retry may help."""
        if not _unknown_option(exc) or _compiler_options(self._platform) is None:
            return False
        _options_ok[self._platform] = False
        self._vg_jit = self._shared["vg_jit"] = self._jax.jit(self._vg)
        return True

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        try:
            result = self._vg_jit(x, self._arrays)
        except Exception as exc:
            if not self._without_options(exc):
                raise
            result = self._vg_jit(x, self._arrays)
        self._last = result
        return result

    def _least_squares(self) -> None:
        """jit-compiled r(x) and (r(x), jax.jacfwd(r)(x)) for a problem with residuals;
        compiled once per shape of x (the first call of a run: the runner's warm_up runs
        the optimizer's first steps in the set-up time)."""
        if self._rj_jit is not None:
            return
        jax, jnp = self._jax, self.xp
        problem, others = self.residual_problem(), self._others

        def residuals(x: Any, arrays: Mapping[str, Any]) -> Any:
            with jax.default_matmul_precision("highest"):
                return problem.residuals(x, {**others, **arrays}, jnp)

        def with_aux(x: Any, arrays: Mapping[str, Any]) -> tuple[Any, Any]:
            r = residuals(x, arrays)
            return r, r

        def residuals_and_jacobian(x: Any, arrays: Mapping[str, Any]) -> tuple[Any, Any]:
            jac, r = jax.jacfwd(with_aux, has_aux=True)(x, arrays)
            return r, jac

        # The compiler options are those value_and_grad compiled with (None once a jaxlib
        # refused them), with LLVM's optimizations off for small data (as the compiled loop
        # of a small run: about half the compile time, and these programs run a few dozen
        # times in a fit).
        elements = sum(int(a.size) for a in self._arrays.values())
        quick = elements <= QUICK_COMPILE_WORK // 100
        options = _compiler_options(self._platform, quick=quick)
        shared = self._shared.setdefault(("least squares", quick, options is None), {})
        if not shared:
            shared.update(r=jax.jit(residuals, compiler_options=options),
                          rj=jax.jit(residuals_and_jacobian, compiler_options=options))
        self._r_jit, self._rj_jit = shared["r"], shared["rj"]

    def residuals(self, x: Any) -> Any:
        self._least_squares()
        self.n_fevals += 1
        self._last = self._r_jit(x, self._arrays)
        return self._last

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        """(r, J) by jax.jacfwd (forward mode), jit-compiled with r as its auxiliary
        output: one compiled call per Jacobian."""
        self._least_squares()
        self.n_evals += 1
        self.n_fevals += 1
        result = self._rj_jit(x, self._arrays)
        self._last = result
        return result

    def batched_residuals_and_jacobian(self, X: Any, data: Any = None) -> tuple[Any, Any]:
        """(r, J) of F fits at once (optbench.core.batch), shapes (F, m) and (F, m, p): X
        broadcast to (p, F, m) and one reverse pass (jax.vjp) of the residuals, jit-compiled
        once per shape (a batch keeps its shape: static_shapes)."""
        from optbench.core import batch

        jax, jnp = self._jax, self.xp
        problem, data = self.batch_problem(data)
        self.n_evals += 1
        self.n_fevals += 1
        arrays = {k: v for k, v in data.items() if isinstance(v, jax.Array)}
        others = {k: v for k, v in data.items() if k not in arrays}
        key = ("batched", tuple(sorted((k, _identity(v)) for k, v in others.items())))
        fn = self._shared.get(key)
        if fn is None:
            def rj(X: Any, arrays: Mapping[str, Any]) -> tuple[Any, Any]:
                def residuals(z: Any) -> Any:
                    with jax.default_matmul_precision("highest"):
                        return problem.residuals(z, {**others, **arrays}, jnp)

                shape = jax.eval_shape(lambda x: residuals(batch.values(x)), X).shape
                wide = jnp.broadcast_to(X.T[:, :, None], (X.shape[1], *shape))
                r, pullback = jax.vjp(residuals, wide)
                (jac_t,) = pullback(jnp.ones_like(r))
                return r, jnp.moveaxis(jac_t, 0, -1)

            fn = self._shared[key] = jax.jit(rj)
        result = fn(X, arrays)
        self._last = result
        return result

    def _put(self, host: np.ndarray) -> Any:
        # On the default device, uncommitted arrays like every result of jax.numpy (eager
        # operations are compiled per committed-ness too: mixing both would double them).
        # device_put, not jnp.asarray: the latter compiles a small program per shape (~10 ms
        # each on a cold CPU) to stage the copy. On the CPU, device_put may alias a suitably
        # aligned numpy array (even with may_alias=False, jax 0.10), and the caller could then
        # change a jax array: it gets a private copy, made here, which jax may keep as it is.
        jax = self._jax
        if self._platform == "cpu":
            host = np.array(host, order="C", copy=True)
        return jax.device_put(host, None if self._default else self._device)

    def from_numpy(self, array: Any) -> Any:
        out = self._put(np.asarray(array, dtype=self._np_dtype))
        if out.dtype != self._np_dtype:
            raise RuntimeError(f"jax made a {out.dtype} array where {self.dtype} was asked for "
                               "(was jax_enable_x64 switched off meanwhile?)")
        if self._ready and out.ndim >= 1 and out.shape not in self._warm:
            # A point (x0): value_and_grad for its shape is compiled at the next
            # synchronize() (the runner's, in the set-up time) rather than inside the timed
            # loop at its first call, unless warm_up has meanwhile run the method's first
            # steps, which compile what it calls (lm and gn never call value_and_grad).
            self._warm.add(out.shape)
            self._pending.append(out)
        return out

    def _compile_pending(self) -> None:
        points, self._pending = self._pending, []
        for out in points:
            # Not a point after all if it fails: a real call with it would then report.
            try:
                self._jax.block_until_ready(self._vg_jit(out, self._arrays))
            except Exception as exc:
                if self._without_options(exc):
                    with contextlib.suppress(Exception):
                        self._jax.block_until_ready(self._vg_jit(out, self._arrays))

    def to_numpy(self, array: Any) -> Any:
        # A writable host copy. np.array reads a jax array through its buffer protocol:
        # 10 µs for a small array on a 2-core EPYC, against 57 µs through jax.device_get
        # (least-squares methods read r and J back at every step).
        return np.array(array)

    def synchronize(self) -> None:
        if self._pending:
            self._compile_pending()
        if self._last is not None:
            self._jax.block_until_ready(self._last)

    def warm_up(self, method: Any, x0: Any, steps: int = 2) -> None:
        """Take the method's first `steps` steps from `x0` now, untimed and uncounted.

        Step by step, the optimizer computes with eager jax.numpy operations, and JAX compiles
        each one at its first use in a process (tens of milliseconds each on the CPU, about a
        second for NAdam's). Called while setting up, this moves that cost out of the timed
        loop. Two steps, since some methods (L-BFGS) do more from their second step on.
        """
        if getattr(method, "run", None) is not None:
            return
        self._pending = []  # the steps below compile what the method calls
        xp, counts = self.xp, (self.n_evals, self.n_fevals)
        try:
            x, state = x0, method.init(x0, xp)
            for _ in range(steps):
                x, state, f, g = method.step(self, x, state)
                float(f), float(xp.sqrt(xp.sum(g * g)))  # as the runner reads them
            self._jax.block_until_ready(x)
        except Exception:  # the timed run meets it again and reports it
            pass
        finally:
            self.n_evals, self.n_fevals = counts

    def compiled_loop(self, method: Any, steps: int, x0: Any) -> Any:
        """`steps` steps of `method` from `x0` as one XLA loop, compiled now, run in chunks.

        One program, compiled once: a `jax.lax.fori_loop` whose body is the optimizer's step
        (traced once, value_and_grad inside it) and whose trip count is an argument, writing
        f of every step into a buffer of CHUNK steps at most. It takes x and the optimizer's
        state and returns them, so that each call `loop(n)` continues where the previous one
        stopped: the runner checks --max-time between calls, and no buffer grows with the
        step count. The initial state is made inside the same program (a `where` on a flag,
        once per call, not per step), and a first call with 0 steps, made here, computes it:
        that call also sets up the executable's buffers and dispatch path (~0.5 ms on a CPU),
        so it lands in the set-up time and a timed call is the loop alone, at no compile
        cost (no second program, no `lax.cond` around the loop).
        """
        if getattr(method, "done", None) is not None or getattr(method, "run", None) is not None:
            raise ValueError("this optimizer cannot run as a compiled loop (it needs values on "
                             "the host between steps)")
        jax, jnp = self._jax, self.xp
        if not (isinstance(x0, jax.Array) and x0.dtype == self._np_dtype):
            x0 = self._put(np.asarray(x0, dtype=self._np_dtype))
        size = max(1, min(steps, CHUNK))  # f values per call, at most

        def fixed(state: Any, like: Any) -> Any:
            # Python numbers in the initial state (a step count, a running product 1.0)
            # become arrays of a fixed dtype, so the carry's type is the same after a step:
            # floats take x's dtype (never a float64 carry in a float32 run).
            def leaf(v: Any) -> Any:
                if isinstance(v, bool):
                    return jnp.asarray(v)
                if isinstance(v, int):
                    return jnp.asarray(v, dtype=jnp.int32)
                if isinstance(v, float) or jnp.issubdtype(jnp.result_type(v), jnp.floating):
                    return jnp.asarray(v, dtype=like.dtype)
                return v
            return jax.tree_util.tree_map(leaf, state)

        def keep_types(new: Any, old: Any) -> Any:
            # The loop's carry must keep its dtypes; a step that promotes is cast back.
            return jax.tree_util.tree_map(
                lambda n, o: n if n.dtype == o.dtype else n.astype(o.dtype), new, old)

        def initial(x_start: Any) -> Any:
            return fixed(method.init(x_start, jnp), x_start)

        def run(x_start: Any, state_in: Any, arrays: Mapping[str, Any], n: Any, first: Any
                ) -> tuple[Any, Any, Any]:
            objective = _Traced(self, arrays)

            def body(k: Any, carry: Any) -> Any:
                x, st, fs = carry
                x_new, st_new, f, _g = method.step(objective, x, st)
                x_new, st_new = keep_types((x_new, st_new), (x, st))
                return x_new, st_new, fs.at[k].set(f.astype(fs.dtype))

            state = jax.tree_util.tree_map(lambda a, b: jnp.where(first, a, b),
                                           initial(x_start), state_in)
            # f at each step, in x's dtype (the objective's f is in it: data and x are).
            fs = jnp.zeros((size,), dtype=x_start.dtype)
            return jax.lax.fori_loop(0, n, body, (x_start, state, fs))

        arrays = self._arrays
        # Placeholders of the state's types for the first call, made on the host (tracing
        # only, no compilation): that call replaces them with `initial(x0)`.
        blank = jax.tree_util.tree_map(lambda a: self._put(np.zeros(a.shape, a.dtype)),
                                       jax.eval_shape(initial, x0))
        counts: dict[int, Any] = {}

        def count(k: int) -> Any:  # the trip count as a device scalar, made once per value
            if k not in counts:
                counts[k] = self._put(np.asarray(k, dtype=np.int32))
            return counts[k]

        yes, no = (self._put(np.asarray(flag)) for flag in (True, False))
        lowered = jax.jit(run).lower(x0, blank, arrays, count(size), yes)
        elements = x0.size + sum(a.size for a in jax.tree_util.tree_leaves(arrays))
        quick = steps * (elements + 100) <= QUICK_COMPILE_WORK
        try:
            compiled = lowered.compile(
                compiler_options=_compiler_options(self._platform, quick=quick))
        except Exception as exc:
            if not self._without_options(exc):
                raise
            compiled = lowered.compile()
        # The first call, with no steps to take: the initial state, and the executable's
        # set-up, here in the set-up time. A second one takes its arguments as every later
        # call will (a call's outputs, not host copies), so that the timed calls meet a
        # dispatch path already taken.
        x_start, state, _ = compiled(x0, blank, arrays, count(0), yes)
        x_start, state, _ = compiled(x_start, state, arrays, count(0), no)
        jax.block_until_ready(state)
        at = {"x": x_start, "state": state, "left": steps}

        def loop(n: int | None = None) -> tuple[Any, Any]:
            """The next n steps (None: all that are left): (x, their f values, on the host)."""
            todo = at["left"] if n is None else max(0, min(n, at["left"]))
            parts = [np.zeros(0, dtype=self._np_dtype)]
            while todo > 0:
                k = min(todo, size)
                x, state, fs = compiled(at["x"], at["state"], arrays, count(k), no)
                self._last = fs
                at.update(x=x, state=state, left=at["left"] - k)
                self.n_evals += k
                self.n_fevals += k
                parts.append(np.asarray(self._jax.device_get(fs))[:k])
                todo -= k
            return at["x"], parts[-1] if len(parts) == 2 else np.concatenate(parts)

        return loop


class JaxBackend(Backend):
    name = "jax"
    description = "JAX: jit-compiled value_and_grad; --compile runs the whole loop as one XLA loop"
    devices = ("cpu", "cuda")
    dtypes = ("float64", "float32")
    compiles = True
    differentiation = "exact"  # reverse mode: right to rounding (the kit's tight tolerance)
    heavy_modules = ("jax", "jaxlib")

    def available(self, device: str = "cpu") -> str | None:
        reason = _missing_jax()
        if reason is None and device == "cuda":
            reason = _no_cuda()
        return reason

    def prepare(self, problem, data, *, dtype, device):
        return JaxObjective(problem, data, dtype, device)


@hookimpl
def register_backends(register):
    register(JaxBackend())
