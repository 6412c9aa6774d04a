"""Jobs used by the benchmarks, declared like the platform's (importable by worker processes)."""

from __future__ import annotations

from app.queueing import job


@job("metrics")
def noop(index: int) -> int:
    return index
