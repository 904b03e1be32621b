"""Many fits of one model at once (issue 16): `optbench fit --group COL`,
`optbench.fit(..., groups=...)`.

The groups (fitting/groups.py) become columns of shape (fits, points); the fits run in
chunks (bounded memory), each chunk ONE batched Levenberg–Marquardt solve on the backend
(optimizers/batch_lm.py) over the backend's batched residuals and Jacobian
(Objective.batched_residuals_and_jacobian). Fits that stop are retired by halves: their
statistics are computed on the device from their final Jacobian (fitting/batch_stats.py),
copied to the host, and the still-running fits go on in smaller arrays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench import memory
from optbench.errors import UsageError
from optbench.fitting import DEFAULT_STEPS
from optbench.fitting.batch_result import BatchFit
from optbench.fitting.groups import Grouped, load
from optbench.optimizers import batch_lm as blm
from optbench.optimizers import least_squares as ls
from optbench.problems.model import Model, ModelProblem, build_model, column_key

MAX_CHUNK = 1 << 16  # fits per chunk at most, whatever the memory
# On a CPU a chunk's arrays should stay near the caches: 8192 fits of 64 points are 4 MB an
# array, and 10^5 fits took 72 µs a fit in chunks of 8192 against 116 µs in chunks of 65536
# (torch, 2-core EPYC). A GPU wants its chunks as large as its memory allows.
CPU_CHUNK = 1 << 13
COMPACT_MIN = 32  # below this many fits the arrays are not worth compacting


@dataclass
class BatchPlan:
    model: Model
    problem: ModelProblem
    grouped: Grouped
    weights: np.ndarray | None  # (F, m): mask / σ; None when every point counts as 1
    x0: np.ndarray  # (F, p)
    backend: Any
    dtype: str
    device: str
    ftol: float
    xtol: float
    steps: int
    chunk: int
    seed: int


def bytes_per_fit(m: int, p: int, n_columns: int, nodes: int, dtype: str) -> int:
    """What one fit holds at once, generously: its columns and weights, r and the trial's,
    J, the trial's J and the broadcast parameters with their gradient (4·p·m), the
    expression's intermediate results and their gradients (2 per node), the host's float64
    copies (columns, results)."""
    size = np.dtype(dtype).itemsize
    return size * (m * (n_columns + 3 + 4 * p + 2 * nodes) + 8 * p * p) \
        + 8 * (m * (n_columns + 1) + 8 * p * p)


def nodes_of(model: Model) -> int:
    def count(node: Any) -> int:
        return 1 + sum(count(a) for a in node.args)
    return count(model.residual.tree)


def chunk_size(model: Model, grouped: Grouped, dtype: str, device: str,
               chunk: int | None) -> int:
    """Fits per chunk: as given, else as many as take a quarter of the memory available
    (the device's own on CUDA), at most MAX_CHUNK on a GPU and CPU_CHUNK on a CPU."""
    need = bytes_per_fit(grouped.n_points, len(model.parameters), len(model.columns),
                         nodes_of(model), dtype)
    if chunk is not None:
        memory.require(need * min(chunk, grouped.n_fits), f"--chunk {chunk}")
        return chunk
    room = memory.available()
    if device.startswith("cuda"):
        import torch

        room = min(room, torch.cuda.mem_get_info()[0])
    most = MAX_CHUNK if device.startswith("cuda") else CPU_CHUNK
    return int(max(1, min(most, room // 4 // need)))


def start_block(x0: Any, parameters: tuple[str, ...], n_fits: int, seed: int) -> np.ndarray:
    """(F, p): x0 as {name: number or one per fit} (others drawn as a single fit draws
    them), an array (p,) or (F, p), or None."""
    p = len(parameters)
    drawn = np.random.default_rng(seed).uniform(0.5, 1.5, p)
    X = np.tile(drawn, (n_fits, 1))
    if x0 is None:
        return X
    if isinstance(x0, Mapping):
        for name, value in x0.items():
            if name not in parameters:
                raise UsageError(f"--x0 names {name!r}, which is not a parameter of the "
                                 f"model; its parameters: {', '.join(parameters)}")
            column = np.asarray(value, dtype=np.float64)
            if column.shape not in ((), (n_fits,)) or not np.all(np.isfinite(column)):
                raise UsageError(f"x0 {name}: expected a finite number or one per fit "
                                 f"({n_fits})")
            X[:, parameters.index(name)] = column
        return X
    block = np.asarray(x0, dtype=np.float64)
    if block.shape not in ((p,), (n_fits, p)) or not np.all(np.isfinite(block)):
        raise UsageError(f"x0 of shape {block.shape} is not accepted: expected {p} finite "
                         f"numbers ({', '.join(parameters)}) or an array ({n_fits}, {p})")
    return np.broadcast_to(block, (n_fits, p)).copy()


def plan_batch(equation: str, data: Any, groups: Any, x0: Any = None, *,
               parameters: Any = None, sigma: str | None = None, method: str = "lm",
               backend: Any = "torch", dtype: str = "float64", device: str = "cpu",
               steps: int | None = None, seed: int = 0, tol: float | None = None,
               method_params: Mapping[str, Any] | None = None, chunk: int | None = None,
               registry: Any = None) -> BatchPlan:
    from optbench import api
    from optbench.plugins import get_registry
    from optbench.problems.model import parameter_list

    if method != "lm":
        raise UsageError(f"method {method!r} is not accepted with groups: batched fits run "
                         "lm (Levenberg-Marquardt)")
    if not isinstance(backend, str) or backend == "all" or "," in backend:
        raise UsageError(f"backend={backend!r} is not accepted with groups: expected one "
                         "backend (the batch runs as one solve on it)")
    hp = dict(method_params or {})
    unknown = sorted(set(hp) - {"ftol", "xtol"})
    if unknown:
        raise UsageError(f"method parameter {unknown[0]!r} is not accepted with groups: "
                         "expected ftol, xtol")
    for name in ("ftol", "xtol"):
        value = hp.get(name, tol if tol is not None else ls.FTOL)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{name}={value!r} is not accepted: expected a number >= 0")
        hp[name] = float(value)
    steps = DEFAULT_STEPS if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UsageError(f"steps={steps!r} is not accepted: expected an integer >= 1")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                              or chunk < 1):
        raise UsageError(f"chunk={chunk!r} is not accepted: expected an integer >= 1")
    registry = registry or get_registry()
    chosen, _ = api.select_backends(registry, backend, dtype, device)
    grouped = load(data, groups)
    model = build_model(equation, grouped.names, grouped.source,
                        parameter_list(parameters, "parameters"), sigma)
    p = len(model.parameters)
    few = np.flatnonzero(grouped.counts < p)
    if few.size:
        key = grouped.keys[few[0]]
        raise UsageError(f"{grouped.source}: group {key} has {grouped.counts[few[0]]} points, "
                         f"fewer than the {p} parameters ({', '.join(model.parameters)}); "
                         f"expected at least {p} points per group ({few.size} groups have "
                         "fewer)")
    mask = grouped.mask()
    weights = None if mask.all() else mask.astype(np.float64)
    if sigma is not None:
        values = grouped.columns[sigma]
        bad = np.argwhere(mask & ~(values > 0))
        if bad.size:
            g, i = bad[0]
            raise UsageError(f"{grouped.source}: sigma column {sigma!r} is {values[g, i]:g} "
                             f"at point {i} of group {grouped.keys[g]}; expected standard "
                             "deviations > 0")
        weights = np.where(mask, 1.0 / np.where(mask, values, 1.0), 0.0)
    X0 = start_block(x0, model.parameters, grouped.n_fits, seed)
    return BatchPlan(model, ModelProblem(), grouped, weights, X0, chosen[0], dtype, device,
                     hp["ftol"], hp["xtol"], steps,
                     chunk_size(model, grouped, dtype, device, chunk), seed)


def chunk_data(bp: BatchPlan, rows: slice) -> dict[str, Any]:
    data: dict[str, Any] = {"_model": bp.model}
    for name in bp.model.columns:
        data[column_key(name)] = np.ascontiguousarray(bp.grouped.columns[name][rows])
    if bp.weights is not None:
        data["_weights"] = np.ascontiguousarray(bp.weights[rows])
    return data


def solve_chunk(bp: BatchPlan, objective: Any, X0: np.ndarray, data: Mapping[str, Any],
                retire: Callable[[Any, Any, np.ndarray], None]) -> int:
    """One batched solve; `retire(xp, batch, ids)` receives the fits as they stop (ids
    their rows in X0). Returns the number of iterations."""
    from optbench.core.batch import take

    X = objective.from_numpy(X0)
    xp = np if isinstance(X, np.ndarray) else objective.xp
    eye = objective.from_numpy(np.eye(X0.shape[1]))
    eps = float(np.finfo(np.dtype(bp.dtype)).eps)
    b = blm.init(objective, xp, X, data)
    ids = np.arange(X0.shape[0])
    iteration = 0
    # A backend that compiles per shape (jax) keeps one: fits are retired only at the end.
    compact = not getattr(objective, "static_shapes", False)
    while True:
        running = b.status == blm.RUNNING
        n_running = int(xp.sum(running))
        if n_running == 0 or (compact and n_running <= ids.size // 2
                              and ids.size >= COMPACT_MIN):
            keep = np.asarray(objective.to_numpy(running), dtype=bool)
            retire(xp, b.select(xp.logical_not(running)), ids[~keep])
            if n_running == 0:
                return iteration
            data = take(data, running, ids.size)
            b, ids = b.select(running), ids[keep]
        iteration += 1
        b = blm.step(objective, xp, b, data, eye, iteration, ftol=bp.ftol, xtol=bp.xtol,
                     eps=eps, max_steps=bp.steps)


def run_batch(bp: BatchPlan, progress: Callable[[int], None] | None = None) -> BatchFit:
    from optbench.fitting.batch_stats import retire_stats

    out = BatchFit.empty(bp)
    n = bp.grouped.n_fits
    for start in range(0, n, bp.chunk):
        rows = slice(start, min(n, start + bp.chunk))
        t0 = time.perf_counter()
        objective = bp.backend.prepare(bp.problem, chunk_data(bp, rows), dtype=bp.dtype,
                                       device=bp.device)
        t1 = time.perf_counter()

        def retire(xp: Any, done: Any, ids: np.ndarray, offset: int = start,
                   objective: Any = objective) -> None:
            if ids.size:
                retire_stats(out, xp, objective, done, ids + offset)
                if progress is not None:
                    progress(int(ids.size))

        iterations = solve_chunk(bp, objective, bp.x0[rows], objective.data, retire)
        objective.synchronize()
        out.setup_s += t1 - t0
        out.time_s += time.perf_counter() - t1
        out.iterations = max(out.iterations, iterations)
        out.chunks += 1
    return out


def fit_batch(equation: str, data: Any, groups: Any, x0: Any = None,
              progress: Callable[[int], None] | None = None, **options: Any) -> BatchFit:
    """optbench.fit(..., groups=...): one fit per group, as one batched solve per chunk."""
    return run_batch(plan_batch(equation, data, groups, x0, **options), progress)
