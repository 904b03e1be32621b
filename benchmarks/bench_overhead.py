"""Framework overhead: optbench's torch NAdam loop over the tutorial's hand-written loop.

A ratio measured in one process (median of 5 alternating repeats of 1000 float32 steps):
below 1 optbench is faster than the tutorial's torch.optim loop.
"""

import statistics

import torch

from optbench import api

from .overhead import tutorial_loop


def track_overhead_ratio():
    plan = api.plan("regression", "torch", "nadam", lr=0.01, steps=1000, dtype="float32")
    backend = plan.backends[0]
    data = plan.instance.data
    x, y, w0 = data["V"][:, -2], data["y"], plan.instance.x0
    tutorial_loop(x, y, w0, 50, torch.float32)
    api.execute(plan, backend)
    ours, theirs = [], []
    for _ in range(5):
        theirs.append(tutorial_loop(x, y, w0, 1000, torch.float32)[0])
        ours.append(api.execute(plan, backend).time_s)
    return statistics.median(ours) / statistics.median(theirs)


track_overhead_ratio.unit = "ratio"
