"""The interactive HTML report of a 300-run campaign: the time to build the page, its size.

Synthetic records (3 problems × 2 backends × 5 optimizers × 10 seeds, gaps decaying
geometrically, 200 steps sampled as the runner samples them): no optimization runs, so the
numbers measure the report alone. benchmarks/report_speed.py times the command on a real
campaign instead.
"""

from optbench import report
from optbench.report import interactive

from .common import skip

STEPS = [*range(13), 15, 18, 22, 26, 31, 38, 46, 56, 68, 82, 100, 121, 147, 178, 200]


def campaign() -> list[dict]:
    records = []
    for p, problem in enumerate(("regression", "puzzle", "rosenbrock")):
        for b, backend in enumerate(("torch", "autograd")):
            for o, optimizer in enumerate(("nadam", "adam", "lbfgs", "sgd", "rmsprop")):
                for seed in range(10):
                    rate = 0.6 + 0.05 * o + 0.02 * b + 0.01 * seed + 0.03 * p
                    trace = [[k, k * 1e-4 * (1 + b), 10.0 * rate ** k] for k in STEPS]
                    records.append({
                        "problem": problem, "problem_params": {}, "backend": backend,
                        "device": "cpu", "dtype": "float64", "optimizer": optimizer,
                        "optimizer_params": {}, "seed": seed, "status": "max_steps",
                        "message": "", "steps": 200, "n_evals": 200, "variables": ["a", "b"],
                        "x0": [0.0, 0.0], "x": [1.0, 1.0], "f": trace[-1][2],
                        "grad_norm": 0.0, "reference": {"x": [1.0, 1.0], "f": 0.0},
                        "time_s": trace[-1][1], "setup_s": 0.0, "trace": trace})
    return records


class HtmlReport:
    number = 1
    repeat = 3
    warmup_time = 0
    timeout = 300

    def setup(self):
        if not interactive.available():
            skip("plotly is not installed")
        self.records = campaign()

    def time_render(self):
        report.render(self.records, interactive=True)

    def track_page_size(self):
        return len(report.render(self.records, interactive=True).encode("utf-8")) / 1e6

    track_page_size.unit = "MB"
