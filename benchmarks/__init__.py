"""Benchmarks: run with `scripts/bench [area] [--quick]`; never part of the test suite."""
