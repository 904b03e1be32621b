"""asv: batched fits against a Python loop of scipy's lm on the same fits (issue 16).

track_* report the ratio of throughputs (batch / scipy loop) measured in the same process,
so the machine's speed cancels; small (500 fits) to stay quick. The full table, the scaling
curve and the GPU target: benchmarks/batch_fit.py.
"""

from __future__ import annotations

from benchmarks.batch_fit import batch, scipy_loop, task

FITS = 500


class BatchFitRatio:
    timeout = 300

    def setup_cache(self):
        t, y, x0 = task(FITS)
        _, _, scipy_s = scipy_loop(t, y, x0)
        out = {"scipy": scipy_s}
        for name in ("torch", "fd"):
            batch(name, t[:8], y[:8], x0[:8])  # imports
            _, out[name] = batch(name, t, y, x0)
        return out

    def track_torch_over_scipy(self, times):
        return times["scipy"] / times["torch"]

    def track_fd_over_scipy(self, times):
        return times["scipy"] / times["fd"]

    track_torch_over_scipy.unit = "x"
    track_fd_over_scipy.unit = "x"
