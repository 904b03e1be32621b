"""What the optimizer checks observe with: every iterate of a run, snapshots of (x, state)
compared bitwise, and a spy objective that notes what the optimizer asked of it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optbench.core import Backend, Method, Objective
from optbench.testing._common import host


def trajectory(method: Method, objective: Objective, x0: Any, steps: int
               ) -> tuple[list[np.ndarray], list[float], Any]:
    """Every iterate x_k (host float64) and the f returned with it; the last x (backend)."""
    x = objective.from_numpy(x0)
    state = method.init(x, objective.xp)
    xs, fs = [host(objective, x)], []
    for _ in range(steps):
        x, state, f, _g = method.step(objective, x, state)
        xs.append(host(objective, x))
        fs.append(float(host(objective, f)))
        if method.done is not None and method.done(state):
            break
    return xs, fs, x


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, type)


def snapshot(value: Any, objective: Objective, path: str = "state",
             out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every leaf of a pytree (NamedTuple, tuple, list, dict) by path; arrays as host copies."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            snapshot(item, objective, f"{path}[{key!r}]", out)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        for key in value._fields:
            snapshot(getattr(value, key), objective, f"{path}.{key}", out)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            snapshot(item, objective, f"{path}[{i}]", out)
    elif isinstance(value, (np.ndarray, np.generic)):
        out[path] = np.array(value, copy=True)
    elif _is_array(value):
        out[path] = np.array(objective.to_numpy(value), copy=True)
    elif value is None or isinstance(value, (bool, int, float, complex, str)):
        out[path] = value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The paths whose value differs (or that appeared or vanished)."""
    out = []
    for path in sorted(set(before) | set(after)):
        if path not in before or path not in after or not _same(before[path], after[path]):
            out.append(path)
    return out


def show_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value.ravel(), precision=12, threshold=6)
    return repr(value)


class SpyObjective(Objective):
    """Another backend's objective that notes the dtype of every x it is asked about, the
    largest first coordinate asked about, and the first x where f was not finite."""

    def __init__(self, inner: Objective) -> None:  # no super().__init__: counters delegate
        self._inner = inner
        self.xp, self.dtype = inner.xp, inner.dtype
        self.device, self.asynchronous = inner.device, inner.asynchronous
        self.seen: set[str] = set()
        self.max_first = -math.inf
        self.non_finite_at: np.ndarray | None = None

    n_evals = property(lambda self: self._inner.n_evals)
    n_fevals = property(lambda self: self._inner.n_fevals)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        x_host = np.asarray(self._inner.to_numpy(x))
        self.seen.add(str(x_host.dtype))
        if x_host.size:
            self.max_first = max(self.max_first, float(np.max(x_host[..., 0])))
        f, g = self._inner.value_and_grad(x)
        if self.non_finite_at is None and not np.all(np.isfinite(self._inner.to_numpy(f))):
            self.non_finite_at = x_host.astype(np.float64)
        return f, g

    def _note(self, x: Any, f: Any) -> None:
        x_host = np.asarray(self._inner.to_numpy(x))
        self.seen.add(str(x_host.dtype))
        if x_host.size:
            self.max_first = max(self.max_first, float(np.max(x_host[..., 0])))
        if self.non_finite_at is None and not np.all(np.isfinite(self._inner.to_numpy(f))):
            self.non_finite_at = x_host.astype(np.float64)

    def residuals(self, x: Any) -> Any:
        r = self._inner.residuals(x)
        self._note(x, r)
        return r

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        r, jac = self._inner.residuals_and_jacobian(x)
        self._note(x, r)
        return r, jac

    def from_numpy(self, array: Any) -> Any:
        return self._inner.from_numpy(array)

    def to_numpy(self, array: Any) -> Any:
        return self._inner.to_numpy(array)

    def synchronize(self) -> None:
        self._inner.synchronize()

    def __getattr__(self, name: str) -> Any:  # optional extras (hvp, ...) pass through
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)


class SpyBackend(Backend):
    """A backend under its own name whose objectives are `SpyObjective`s."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name, self.devices, self.dtypes = inner.name, inner.devices, inner.dtypes
        self.last: SpyObjective | None = None

    def available(self, device: str = "cpu") -> str | None:
        return self.inner.available(device)

    def prepare(self, problem, data, *, dtype, device):
        self.last = SpyObjective(self.inner.prepare(problem, data, dtype=dtype, device=device))
        return self.last


def drives_itself(method: Method) -> bool:
    """A whole-run driver (Method.run: scipy.optimize and the like) rather than steps."""
    return callable(getattr(method, "run", None))
