"""The loop that runs an optimizer on a prepared objective, and its stopping criteria."""
