"""Per-function job statistics kept in Redis by the workers, exported for Prometheus.

Workers are separate processes (and hosts), so a process-local prometheus_client registry
would see one worker's jobs only; each outcome is instead added to shared Redis hashes (within the
worker's own bookkeeping transaction of a successful job, see rq_compat/bookkeeping.py) and `/metrics` turns them into histograms and counters (monitoring.py).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from . import keys

logger = logging.getLogger(__name__)

# Seconds; jobs here range from a few ms (mail) to minutes (a full dashboard refresh).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
OUTCOMES = ("success", "failure", "retry")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return max(0.0, (end - start).total_seconds())


def record(connection: Redis, func: str, queue: str, outcome: str, duration: float | None, wait: float | None) -> None:
    """Add one job outcome; never raises (statistics must not fail a job)."""
    try:
        with connection.pipeline(transaction=False) as pipe:
            add_to(pipe, func, queue, outcome, duration, wait)
            pipe.execute()
    except RedisError:
        logger.warning("could not record statistics of a %s job", func)


def add_to(pipe: Any, func: str, queue: str, outcome: str, duration: float | None, wait: float | None) -> None:
    """Queue the commands that add one job outcome on `pipe` (a worker's own bookkeeping pipeline).

    Five commands on a worker's hot path: a histogram's count is the sum of its buckets, and a
    function is announced (SADD, its queue) once a minute per process, not once per job — often
    enough to reappear within a minute if Redis lost its data.
    """
    key = keys.job_stats(func)
    announced = _announced.get(func)
    if announced is None or time.monotonic() - announced > ANNOUNCE_EVERY:
        pipe.sadd(keys.JOB_STATS_FUNCS, func)
        pipe.hset(key, "queue", queue)
        _announced[func] = time.monotonic()
    pipe.hincrby(key, outcome, 1)
    for name, value in (("duration", duration), ("wait", wait)):
        if value is None:
            continue
        pipe.hincrbyfloat(key, f"{name}_sum", value)
        bucket = next((b for b in BUCKETS if value <= b), "+Inf")
        pipe.hincrby(key, f"{name}_bucket:{bucket}", 1)


ANNOUNCE_EVERY = 60.0
_announced: dict[str, float] = {}


def durations(job: object) -> tuple[float | None, float | None]:
    """(run time, queue wait) of a job that just ended."""
    started = getattr(job, "started_at", None)
    return _seconds(started, getattr(job, "ended_at", None) or datetime.now(UTC)), _seconds(
        getattr(job, "enqueued_at", None), started
    )
