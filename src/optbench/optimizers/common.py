"""Hyperparameter declarations the first-order optimizers share."""

from optbench.core import Param

# The tutorial's learning rate: `optbench run` uses it for the first-order methods unless
# --lr says otherwise (the declared defaults stay torch.optim's).
TUTORIAL_RUN_DEFAULTS = {"lr": 0.01}


def lr(default: float) -> Param:
    return Param("lr", "float", default, "learning rate", low=0, low_open=True)


def betas() -> Param:
    return Param("betas", "floats", (0.9, 0.999), "moment decay rates (beta1,beta2)",
                 low=0, high=1, high_open=True, length=2)


def eps() -> Param:
    return Param("eps", "float", 1e-8, "added to the denominator for stability",
                 low=0, low_open=True)


def weight_decay(default: float) -> Param:
    return Param("weight_decay", "float", default, "weight decay (L2 penalty)", low=0)
