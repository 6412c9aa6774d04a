"""Test jobs, importable by worker subprocesses (like rq's own tests/fixtures.py)."""

from __future__ import annotations

import os
import time

from app.queueing import job

# Declared like the platform's own jobs (on `metrics`), or no worker would run them.


@job("metrics")
def say_hello(name: str = "world") -> str:
    return f"hello {name}"


@job("metrics")
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@job("metrics")
def which_process() -> int:
    return os.getpid()


@job("metrics")
def allocate_mb(megabytes: int) -> int:
    global _ballast
    _ballast = bytearray(megabytes * 1024 * 1024)  # kept alive: the worker's RSS grows
    return megabytes


_ballast = b""


@job("metrics")
def lose_own_job_data() -> str:
    """What a FLUSHDB or a failover does to a running job: its hash in Redis is gone."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    job.connection.delete(job.key)
    return "ran"


@job("metrics")
def echo_call(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@job("metrics")
def fail_permanently(reason: str = "bad input") -> None:
    from app.queueing import PermanentJobError

    raise PermanentJobError(reason)


@job("metrics")
def fail_transiently(reason: str = "try later") -> None:
    from app.queueing import TransientJobError

    raise TransientJobError(reason)


def not_declared(path: str) -> None:
    """Importable but undeclared: a job naming it must never run it."""
    with open(path, "w") as marker:
        marker.write("ran")


def on_success_undeclared(job, connection, result, *args, **kwargs):  # type: ignore[no-untyped-def]
    not_declared(job.meta["marker"])


@job("metrics")
def sleep_then_mark(seconds: float, path: str) -> str:
    """An effect after some work: a copy that goes on after its lease lapsed would write the file.
    The work is counted in steps, not wall time, so a frozen process still has it left when it thaws."""
    for _ in range(int(seconds * 10)):
        time.sleep(0.1)
    with open(path, "a") as marker:
        marker.write(f"{os.getpid()}\n")
    return path
