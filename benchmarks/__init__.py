"""Benchmarks of the sync engine against hand-written or off-the-shelf baselines (`make bench`).

Not part of the test suite: each benchmark measures a figure and a baseline in the same run, prints
their ratio and appends both to `benchmarks/results/latest.json`.
"""
