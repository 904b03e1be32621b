"""Accuracy: digits of agreement with NIST's certified regression coefficients.

LRE = -log10(|estimate - certified| / |certified|), capped at 15, minimum over the
coefficients (the NIST StRD measure; see ../shared/data/nist/README.md), for the winning
configuration `optbench run --problem regression -P data=... -P degree=... -P basis=orthogonal
--optimizer lbfgs -O tolerance_grad=0 -O tolerance_change=0 --dtype float64` (torch),
beside numpy.polyfit's, tracked side by side (track_lre_digits, track_polyfit_lre_digits)
and as their difference. Datasets with an intercept-free or multi-predictor model are not
polynomial fits and are left out (NoInt1, NoInt2, Longley).

The bar (issue 13): polyfit's digits + 1, or 13 where polyfit already has 13 — but no method
can promise more than the *attainable* digits: those of the exact least-squares solution of
the data as float64 reads them (decimal numbers such as Wampler2's 1.11111 are rounded on
reading), correctly rounded. It is computed here in rational arithmetic. optbench's float64
runs end on exactly that solution (polynomial_basis.refine_least_squares), whatever BLAS
and CPU code path computed the run; the digits of another method may land above it by luck
of its rounding (polyfit on Wampler2), not by design.

`python -m benchmarks.bench_accuracy` prints the table; `--paths` prints it once per forced
BLAS code path (PATHS: MKL_CBWR, MKL_ENABLE_INSTRUCTIONS, OPENBLAS_CORETYPE), each run in a
subprocess that first asks the libraries which path they took.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import optbench

from .common import nist_dir, skip

DATASETS = ["Norris", "Pontius", "Filip", "Wampler1", "Wampler2", "Wampler3", "Wampler4",
            "Wampler5"]


def lre(estimate: float, certified: Decimal) -> float:
    if certified == 0:
        return min(15.0, -math.log10(abs(estimate))) if estimate else 15.0
    error = abs(Decimal(repr(float(estimate))) - certified) / abs(certified)
    return 15.0 if error == 0 else max(0.0, min(15.0, -float(error.log10())))


def _folder() -> Path:
    folder = nist_dir()
    if folder is None:
        skip("../shared/data/nist is not beside this checkout")
    return folder


def _meta(name: str) -> dict:
    return json.loads((_folder() / f"{name}.json").read_text())


def digits(name: str, estimates) -> float:
    """LRE of estimates given highest power first (optbench's and polyfit's order)."""
    certified = [Decimal(c["estimate"]) for c in _meta(name)["certified"]]  # B0 first
    return min(lre(e, c) for e, c in zip(reversed(list(estimates)), certified, strict=True))


def nist_record(name: str, optimizer: str = "lbfgs", steps: int = 2000):
    meta = _meta(name)
    return optbench.solve(problem="regression", backend="torch", optimizer=optimizer,
                          dtype="float64", steps=steps, tol=0,  # to the optimizer's own stop
                          problem_params={"data": str(_folder() / f"{name}.csv"),
                                          "degree": meta["degree"], "basis": "orthogonal"},
                          optimizer_params={"tolerance_grad": 0.0, "tolerance_change": 0.0})


def nist_lre(name: str, optimizer: str = "lbfgs", steps: int = 2000) -> float:
    return digits(name, nist_record(name, optimizer, steps).x)


def _points(name: str):
    import numpy as np

    data = np.loadtxt(_folder() / f"{name}.csv", delimiter=",", skiprows=1)
    return data[:, 0], data[:, 1]


def polyfit_lre(name: str) -> float:
    import numpy as np

    x, y = _points(name)
    return digits(name, np.polyfit(x, y, _meta(name)["degree"]))


def exact_least_squares(xs, ys, degree: int) -> tuple[float, ...]:
    """The exact least-squares polynomial of the points (floats, taken exactly), correctly
    rounded, highest power first: the normal equations in rational arithmetic, every power
    exact, solved by Gaussian elimination in Fractions — no rounding until the end."""
    xs = [Fraction(float(v)) for v in xs]
    ys = [Fraction(float(v)) for v in ys]
    p = degree + 1
    sums = [sum(x ** k for x in xs) for k in range(2 * p - 1)]
    rows = [[sums[i + j] for j in range(p)]
            + [sum(y * x ** i for x, y in zip(xs, ys, strict=True))]
            for i in range(p)]  # row i: the power i; columns: powers 0..degree, then Vᵀy
    for c in range(p):
        pivot = next(r for r in range(c, p) if rows[r][c] != 0)
        rows[c], rows[pivot] = rows[pivot], rows[c]
        for r in range(p):
            if r != c and rows[r][c] != 0:
                f = rows[r][c] / rows[c][c]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[c], strict=True)]
    return tuple(float(rows[i][p] / rows[i][i]) for i in reversed(range(p)))


@functools.cache
def exact_solution(name: str) -> tuple[float, ...]:
    """The exact least-squares solution of a dataset as float64 reads it, correctly
    rounded (highest power first)."""
    return exact_least_squares(*_points(name), _meta(name)["degree"])


def attainable_lre(name: str) -> float:
    """Digits of the exact solution of the data as read: the most a float64 method can
    promise (it may land above by luck of its rounding, never by design)."""
    return digits(name, exact_solution(name))


def bar(name: str, polyfit: float) -> tuple[float, str]:
    """The digits optbench must reach, and why that many (issue 13)."""
    if polyfit >= 13:
        wanted, why = 13.0, f"13 (polyfit already has {polyfit:.2f})"
    else:
        wanted, why = polyfit + 1, f"polyfit + 1 = {polyfit + 1:.2f}"
    cap = attainable_lre(name)
    if cap < wanted:
        return cap, (f"{cap:.2f}, the attainable digits (the exact solution of the data as "
                     f"float64 reads them), below {why}")
    return wanted, why


# --- forced BLAS code paths -----------------------------------------------------------

@dataclass(frozen=True)
class CodePath:
    """A BLAS code path forced through the environment, the words by which the library
    says it took it (blas_paths), and the CPU flags without which it is not tried (a
    kernel of instructions the CPU lacks would crash: OpenBLAS does not check)."""

    env: dict
    seen: str
    flags: frozenset = frozenset()

    @property
    def name(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.env.items())


_AVX512 = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})
_AVX2 = frozenset({"avx2", "fma"})
PATHS = [
    # torch's BLAS, MKL: its conditional-numerical-reproducibility branches (an Intel CPU
    # with AVX-512 runs the first two; MKL runs its own path on others: CNR:AUTO) ...
    CodePath({"MKL_CBWR": "AVX512"}, "CNR:AVX512", _AVX512),
    CodePath({"MKL_CBWR": "AVX2"}, "CNR:AVX2", _AVX2),
    CodePath({"MKL_CBWR": "COMPATIBLE"}, "CNR:COMPATIBLE"),
    # ... and its dispatch limited to plain AVX-512 (a Xeon with AMX otherwise takes its
    # AVX-512 + AMX kernels) or to AVX2; the banner names the dispatch. Left out:
    # MKL_DEBUG_CPU_TYPE=5, dropped in MKL 2020.1 (torch's MKL 2024 ignores it).
    CodePath({"MKL_ENABLE_INSTRUCTIONS": "AVX512"}, "(Intel(R) AVX-512) enabled", _AVX512),
    CodePath({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "(Intel(R) AVX2)", _AVX2),
    # numpy's BLAS, OpenBLAS: the orthonormal basis is built with it (and polyfit's fit).
    CodePath({"OPENBLAS_CORETYPE": "SkylakeX"}, "OpenBLAS core SkylakeX", _AVX512),
    CodePath({"OPENBLAS_CORETYPE": "Haswell"}, "OpenBLAS core Haswell", _AVX2),
    CodePath({"OPENBLAS_CORETYPE": "Nehalem"}, "OpenBLAS core Nehalem", frozenset({"sse4_2"})),
]


def cpu_flags() -> frozenset:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


@functools.cache
def blas_paths() -> str:
    """The paths this process's BLAS libraries take, in their own words: MKL_VERBOSE's
    banner and the CNR mode of one matrix-vector product in torch (MKL prints its banner
    once a process: hence the cache), OpenBLAS's core name in numpy."""
    import ctypes
    import tempfile

    import numpy as np
    import torch

    with tempfile.TemporaryFile() as sink:  # MKL prints with C's stdio, to descriptor 1
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(sink.fileno(), 1)
        try:
            with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                torch.ones(21, 6, dtype=torch.float64) @ torch.ones(6, dtype=torch.float64)
            ctypes.CDLL(None).fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        mkl = sink.read().decode(errors="replace").strip()
    core = "unknown"
    for lib in sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("*openblas*")):
        handle = ctypes.CDLL(str(lib))
        for symbol in ("scipy_openblas_get_corename64_", "openblas_get_corename64_",
                       "openblas_get_corename"):
            if hasattr(handle, symbol):
                getter = getattr(handle, symbol)
                getter.restype = ctypes.c_char_p
                core = getter().decode()
                break
    return f"{mkl}\nOpenBLAS core {core}"


def summary(said: str) -> str:
    """blas_paths() in one line: MKL's CPU branch and CNR mode, OpenBLAS's core."""
    branch = re.search(r"for Intel\(R\) 64 architecture (.*?)(?: enabled)?(?: processors)?, Lnx",
                       said)
    cnr = re.search(r"CNR:\S+", said)
    core = re.search(r"OpenBLAS core \S+", said)
    return "; ".join(m for m in (f"MKL {branch[1]}" if branch else "MKL ?",
                                  cnr[0] if cnr else "CNR:?", core[0] if core else "") if m)


def measure(names=DATASETS) -> dict:
    """Per dataset: optbench's x and digits, the run's message, polyfit's digits."""
    out = {}
    for name in names:
        record = nist_record(name)
        out[name] = {"x": [float(v) for v in record.x], "digits": digits(name, record.x),
                     "message": record.message, "polyfit": polyfit_lre(name)}
    return out


def measure_on_paths(paths=PATHS, timeout: float = 600) -> dict:
    """measure() on each forced path, in subprocesses run side by side (each spends most
    of its time importing torch): {path name: {"paths": what its libraries said,
    "results": ...} or {"paths": ..., "skipped": why}}. Not tried: paths whose instructions
    this CPU lacks, and the path this process already takes (measure() here tests it)."""
    here, flags, out, running = blas_paths(), cpu_flags(), {}, {}
    root = Path(__file__).resolve().parents[1]
    for path in paths:
        if not path.flags <= flags:
            missing = ", ".join(sorted(path.flags - flags))
            out[path.name] = {"paths": "", "skipped": f"this CPU lacks {missing}"}
        elif path.seen in here:
            out[path.name] = {"paths": here, "skipped": f"the path this CPU takes anyway "
                                                        f"({summary(here)}), tested in-process"}
        else:
            running[path.name] = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bench_accuracy", "--child", path.seen],
                env={**os.environ, **path.env}, cwd=root, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    try:
        for name, proc in running.items():
            stdout, stderr = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"{name}: exit {proc.returncode}: {stderr[-2000:]}")
            out[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def _child(seen: str) -> None:
    said = blas_paths()
    if seen not in said:
        print(json.dumps({"paths": said, "skipped": f"not taken here ({summary(said)}; "
                                                    f"wanted {seen!r})"}))
        return
    print(json.dumps({"paths": said, "results": measure()}))


class NistAccuracy:
    params = DATASETS
    param_names = ["dataset"]

    def setup(self, dataset):
        # asv shows n/a only for NotImplementedError raised in setup; raised in the
        # benchmark itself it is recorded as a failure.
        if nist_dir() is None:
            skip("../shared/data/nist is not beside this checkout")

    def track_lre_digits(self, dataset):
        return nist_lre(dataset)

    track_lre_digits.unit = "digits"

    def track_polyfit_lre_digits(self, dataset):
        """numpy.polyfit's digits on the same data, the baseline of this machine."""
        return polyfit_lre(dataset)

    track_polyfit_lre_digits.unit = "digits"

    def track_lre_minus_polyfit(self, dataset):
        """optbench's digits minus numpy.polyfit's: >= 0 where it does at least as well."""
        return nist_lre(dataset) - polyfit_lre(dataset)

    track_lre_minus_polyfit.unit = "digits"


def _table(results: dict) -> str:
    lines = [f"{'dataset':10} {'optbench':>9} {'polyfit':>8} {'bar':>6} {'attainable':>10}"]
    for name, r in results.items():
        lines.append(f"{name:10} {r['digits']:9.2f} {r['polyfit']:8.2f} "
                     f"{bar(name, r['polyfit'])[0]:6.2f} {attainable_lre(name):10.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2])
    elif sys.argv[1:] == ["--paths"]:
        forced = measure_on_paths()
        print(f"== as this CPU runs: {summary(blas_paths())}\n{_table(measure())}")
        for path in PATHS:
            got = forced[path.name]
            said = f": {summary(got['paths'])}" if got["paths"] else ""
            print(f"== {path.name}{said}")
            print(f"skipped: {got['skipped']}" if "skipped" in got
                  else _table(got["results"]), flush=True)
    else:
        print("LRE digits, min over coefficients (bar: what issue 13 asks, capped at the "
              "attainable)")
        print(_table(measure()))
