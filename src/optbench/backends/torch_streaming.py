"""Least squares streamed once through memory: the torch backend's path for large samples
of a problem that declares `least_squares` (the regression).

Autograd of mean((y − V·x)²) builds full-length temporaries (V·x, the residual, its square,
the backward's expansion of the mean...) and reads V twice. At 10^7 samples each temporary
is a fresh 80 MB buffer, and a step costs ~40× one read of the data. The same mathematics,

    r = V·x − y,   f = r·r / n,   g = (2/n)·Vᵀr,

needs one read of V and y and no full-length temporary. Three kernels compute it:

  blocks  eager BLAS on cache-sized blocks of rows, shared among worker threads (BLAS
          releases the GIL); no compilation.
  fused   torch.compile of the pass written pointwise, which inductor turns into one loop
          over the rows (on the CPU: a vectorized OpenMP loop).
  triton  the pass as a hand-written triton kernel, for CUDA: one read of each column,
          partial sums per program, one small sum of those.

`default_kernel` picks among them by device and size, from the measurements it cites.
The sums run in another order than autograd's, so the numbers agree to rounding, not bit
for bit; small samples (the tutorial's) keep autograd.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

KERNELS = ("blocks", "fused", "triton")

MIN_SAMPLES = 1 << 17
"""Below this many samples autograd's temporaries fit in cache and it is used as it is."""

FUSED_MIN_SAMPLES = 1 << 22
"""From this many samples the fused kernel is worth its compilation (seconds, once): a step
of autograd there costs ~0.1 s on the CPU, and blocks still pay BLAS's slow narrow
matrix-vector products (~2× the fused pass on 2 cores)."""

BLOCK_ROWS = 1 << 17
"""Rows per block on the CPU: 128K rows of V (p doubles each), y and r stay within L3."""

CUDA_BLOCK_ROWS = 1 << 21
"""Rows per block on CUDA without triton: few launches, the block within the L2 cache."""


def default_kernel(torch: Any, device_type: str, n_samples: int) -> str:
    """The path measured fastest for this many samples on this device (benchmarks/scale.py
    on the CPU, benchmarks/gpu.py on an H100); "off" is autograd as written.

    CPU: blocks from MIN_SAMPLES, fused (compiled, ~5 s once) from FUSED_MIN_SAMPLES.
    CUDA: the triton kernel where triton is installed (1.2× the HBM bound at 10^8 rows,
    where inductor's own fusion gave 2.5× and blocks, launch-bound, 9×); without triton,
    autograd as written, which beat blocks there.
    """
    if n_samples < MIN_SAMPLES:
        return "off"
    if device_type == "cpu":
        return "fused" if n_samples >= FUSED_MIN_SAMPLES else "blocks"
    return "triton" if fused_available(torch) else "off"


def fused_available(torch: Any) -> bool:
    """Whether torch.compile can generate CUDA kernels here (inductor needs triton)."""
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return bool(has_triton())


class StreamingLeastSquares:
    """value_and_grad of mean((target − design·x)²), streaming the data once per call.

    kernel: "blocks" (eager BLAS per block; threads on the CPU), "fused" (torch.compile of
    a pointwise pass) or "triton" (the same pass written in triton, CUDA only). A kernel
    that cannot be compiled falls back to blocks and says why in `fallback`. The design
    matrix is used column-major (copied once to that layout only if it is not already).
    """

    def __init__(self, torch: Any, design: Any, target: Any, *, kernel: str = "blocks",
                 workers: int = 1, block_rows: int | None = None) -> None:
        if design.stride(0) != 1:
            design = design.t().contiguous().t()
        self._torch = torch
        self.design, self.target = design, target
        self.n = design.shape[0]
        self.kernel = kernel
        if block_rows is None:
            block_rows = BLOCK_ROWS if design.device.type == "cpu" else CUDA_BLOCK_ROWS
        self.block_rows = block_rows
        self.workers = max(1, workers)
        self.fallback: str | None = None
        """Why a fused kernel could not be compiled and blocks run instead (None: it could)."""
        if kernel not in KERNELS:
            raise ValueError(f"kernel {kernel!r}; accepted: {', '.join(KERNELS)}")
        if kernel == "blocks":
            self._use_blocks()
            return
        try:
            # Compile now, at set-up, with one call: inductor and triton compile on first use.
            if kernel == "fused":
                self._fused = torch.compile(_fused_sums(torch), fullgraph=True,
                                            dynamic=False)
            else:
                self._fused = _triton_sums(torch, design)
            self._fused(design, target, torch.zeros(design.shape[1], dtype=design.dtype,
                                                    device=design.device))
        except Exception as exc:  # no compiler, no triton, an inductor bug
            # Whatever stops the compilation, the same sums are still there block by block.
            self.fallback = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            self._use_blocks()

    def _use_blocks(self) -> None:
        torch, design = self._torch, self.design
        self.kernel = "blocks"
        self._segments = _segments(self.n, self.block_rows, self.workers)
        self._buffers = [torch.empty(self.block_rows, dtype=design.dtype, device=design.device)
                         for _ in self._segments]
        self._pool = (ThreadPoolExecutor(len(self._segments), "optbench-stream")
                      if len(self._segments) > 1 else None)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        if self.kernel != "blocks":
            sums = self._fused(self.design, self.target, x)
        elif self._pool is None:
            sums = self._segment_sums(x, 0)
        else:
            parts = [self._pool.submit(self._segment_sums, x, i)
                     for i in range(len(self._segments))]
            sums = sum(part.result() for part in parts)
        return sums[-1] / self.n, sums[:-1] * (2.0 / self.n)

    def _segment_sums(self, x: Any, index: int) -> Any:
        """[Vᵀr..., r·r] over one worker's rows, block by block."""
        torch = self._torch
        start, stop = self._segments[index]
        buffer = self._buffers[index]
        sums = torch.zeros(self.design.shape[1] + 1, dtype=x.dtype, device=x.device)
        grad, value = sums[:-1], sums[-1:]
        for lo in range(start, stop, self.block_rows):
            hi = min(lo + self.block_rows, stop)
            block = self.design[lo:hi]
            r = buffer[: hi - lo]
            torch.mv(block, x, out=r)
            r.sub_(self.target[lo:hi])
            torch.addmv(grad, block.t(), r, out=grad)
            value.add_(torch.dot(r, r))
        return sums


def _segments(n: int, block_rows: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous row ranges, one per worker, cut at block boundaries."""
    blocks = -(-n // block_rows)
    workers = max(1, min(workers, blocks))
    cuts = [round(i * blocks / workers) * block_rows for i in range(workers + 1)]
    return [(lo, min(hi, n)) for lo, hi in pairwise(cuts)]


def _fused_sums(torch: Any) -> Any:
    def sums(design: Any, target: Any, x: Any) -> Any:
        # Written pointwise, column by column, so that inductor fuses the residual and all
        # p + 1 sums into one reduction over the rows (a matrix-vector call would stay a
        # separate cuBLAS kernel with a full-length output).
        r = design[:, 0] * x[0]
        for j in range(1, design.shape[1]):
            r = r + design[:, j] * x[j]
        r = r - target
        return torch.stack([(design[:, j] * r).sum() for j in range(design.shape[1])]
                           + [(r * r).sum()])

    return sums


TRITON_BLOCK = 4096
"""Rows per triton program: each reads p + 1 columns of 16 KB (float32) and writes p + 1
partial sums, which one small torch.sum then adds up."""


def _triton_sums(torch: Any, design: Any) -> Any:
    """The fused pass as a hand-written triton kernel: [Vᵀr..., r·r] for r = V·x − y."""
    import triton
    import triton.language as tl

    @triton.jit
    def partial_sums(design, target, x, partials, n, column_stride,
                     P: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        rows = pid * BLOCK + tl.arange(0, BLOCK)
        inside = rows < n
        r = -tl.load(target + rows, mask=inside, other=0.0)
        for j in tl.static_range(P):
            r += tl.load(design + j * column_stride + rows, mask=inside, other=0.0) \
                * tl.load(x + j)
        for j in tl.static_range(P):  # the second read of a column hits the cache
            column = tl.load(design + j * column_stride + rows, mask=inside, other=0.0)
            tl.store(partials + pid * (P + 1) + j, tl.sum(column * r, axis=0))
        tl.store(partials + pid * (P + 1) + P, tl.sum(r * r, axis=0))

    n, p = design.shape
    programs = triton.cdiv(n, TRITON_BLOCK)
    partials = torch.empty((programs, p + 1), dtype=design.dtype, device=design.device)

    def sums(design: Any, target: Any, x: Any) -> Any:
        partial_sums[(programs,)](design, target, x, partials, n, design.stride(1),
                                  P=p, BLOCK=TRITON_BLOCK)
        # The partials are added in float64: 24,000 of them at 10^8 rows in float32 would
        # lose digits a sum of that many does not need to lose.
        return partials.sum(0, dtype=torch.float64).to(design.dtype)

    return sums
