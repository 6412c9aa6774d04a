"""Test jobs, importable by worker subprocesses (like rq's own tests/fixtures.py)."""

from __future__ import annotations

import os
import time


def say_hello(name: str = "world") -> str:
    return f"hello {name}"


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def which_process() -> int:
    return os.getpid()


def allocate_mb(megabytes: int) -> int:
    global _ballast
    _ballast = bytearray(megabytes * 1024 * 1024)  # kept alive: the worker's RSS grows
    return megabytes


_ballast = b""


def lose_own_job_data() -> str:
    """What a FLUSHDB or a failover does to a running job: its hash in Redis is gone."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    job.connection.delete(job.key)
    return "ran"


def echo_call(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}
