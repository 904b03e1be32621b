"""Benchmark campaigns: grids of runs, executed into a results store."""
