"""Built-in optimizers, each a plugin module registered through `register_optimizers`.

Each is a pair of pure functions over the namespace `xp` (see optbench.core.optimizer),
with torch.optim's defaults and update rules, in torch's order of operations, so that
trajectories agree with torch.optim's to rounding.
"""
