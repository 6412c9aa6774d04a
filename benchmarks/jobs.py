"""Jobs used by the benchmarks (importable by worker processes)."""

from __future__ import annotations


def noop(index: int) -> int:
    return index
