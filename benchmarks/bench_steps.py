"""Time of one optimizer step (one value_and_grad and one NAdam update) per backend and size.

The tutorial's regression at n_samples 20, 10^4 and 10^6, in float32 and float64, on the
CPU and (where a device is present) CUDA; the device is synchronized inside the timing.
"""

from optbench import api

from .common import cuda_available, skip


class StepTime:
    params = (["torch", "autograd", "fd"], [20, 10_000, 1_000_000], ["float64", "float32"],
              ["cpu", "cuda"])
    param_names = ["backend", "n_samples", "dtype", "device"]
    timeout = 120

    def setup(self, backend, n_samples, dtype, device):
        if device == "cuda" and (backend != "torch" or not cuda_available()):
            skip("no CUDA device, or a backend without CUDA")
        plan = api.plan("regression", backend, "nadam", steps=1, dtype=dtype, device=device,
                        problem_params={"n_samples": n_samples})
        self.objective = plan.backends[0].prepare(plan.problem, plan.instance.data,
                                                  dtype=dtype, device=device)
        self.x = self.objective.from_numpy(plan.instance.x0)
        self.state = plan.method.init(self.x, self.objective.xp)
        self.step = plan.method.step
        self.step(self.objective, self.x, self.state)  # first call: allocations, dispatch

    def time_step(self, backend, n_samples, dtype, device):
        self.step(self.objective, self.x, self.state)
        self.objective.synchronize()
