"""Peak memory of preparing and stepping the regression at n_samples 10^6 (float64).

The data is 10^6 x (3 terms + y) float64 = 32 MB; asv reports the process's peak RSS.
"""

from optbench import api


def peakmem_regression_step_1e6():
    plan = api.plan("regression", "torch", "nadam", steps=1,
                    problem_params={"n_samples": 1_000_000})
    objective = plan.backends[0].prepare(plan.problem, plan.instance.data, dtype="float64",
                                         device="cpu")
    x = objective.from_numpy(plan.instance.x0)
    plan.method.step(objective, x, plan.method.init(x, objective.xp))
