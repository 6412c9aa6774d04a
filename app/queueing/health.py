"""Is the platform able to do its background work? Database, Redis, workers, scheduler, backlog.

Cheap by design (a handful of Redis round trips, one `SELECT 1`) so that orchestrators can
call `/healthz` every few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from redis import Redis
from redis.exceptions import RedisError

from . import catalog, keys, rq_compat
from .connections import redis_connection


@dataclass
class HealthReport:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(check["ok"] for check in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        failing = [f"{name}: {check['reason']}" for name, check in self.checks.items() if not check["ok"]]
        return {"status": "ok" if self.healthy else "unhealthy", "reasons": failing, "checks": self.checks}


def check_health() -> HealthReport:
    report = HealthReport()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report.checks["database"] = {"ok": True}
    except DatabaseError as exc:
        report.checks["database"] = {"ok": False, "reason": f"database unreachable ({type(exc).__name__})"}
    redis = redis_connection()
    try:
        redis.ping()
    except RedisError as exc:
        report.checks["redis"] = {"ok": False, "reason": f"queue Redis unreachable ({type(exc).__name__})"}
        return report
    report.checks["redis"] = {"ok": True}
    report.checks.update(queue_checks(redis))
    report.checks["retrying"] = retrying_check(redis)
    alive = redis.get(keys.SCHEDULER_ALIVE)
    report.checks["scheduler"] = (
        {"ok": True, "last_seen": float(alive)} if alive else {"ok": False, "reason": "no live rqscheduler process"}
    )
    return report


def queue_checks(redis: Redis) -> dict[str, dict[str, Any]]:
    names = list(catalog.queues())
    with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.smembers(rq_compat.workers_of_queue_key(name))
            pipe.lindex(rq_compat.queue_key(name), 0)
        answers = pipe.execute()
    worker_sets = answers[0::2]
    oldest_ids = answers[1::2]
    with redis.pipeline(transaction=False) as pipe:
        for workers in worker_sets:
            for key in workers:
                pipe.exists(key)  # a dead worker's key has expired, even if the set still names it
        for job_id in oldest_ids:
            if job_id:
                pipe.hget(rq_compat.job_key(job_id.decode()), "enqueued_at")
        answers = pipe.execute()
    checks: dict[str, dict[str, Any]] = {}
    position = 0
    max_age = settings.HEALTH_MAX_QUEUE_AGE_SECONDS
    now = time.time()
    live_counts = []
    for workers in worker_sets:
        live_counts.append(sum(answers[position : position + len(workers)]))
        position += len(workers)
    for name, live, job_id in zip(names, live_counts, oldest_ids, strict=True):
        age = None
        if job_id:
            enqueued_at = answers[position]
            position += 1
            if enqueued_at:
                age = max(0.0, now - datetime.fromisoformat(enqueued_at.decode().replace("Z", "+00:00")).timestamp())
        check: dict[str, Any] = {"ok": True, "workers": live, "oldest_job_age_seconds": age}
        if live == 0:
            check.update(ok=False, reason=f"no live worker listens on '{name}'")
        elif age is not None and age > max_age:
            check.update(ok=False, reason=f"oldest job on '{name}' has waited {age:.0f} s (limit {max_age} s)")
        checks[f"queue:{name}"] = check
    return checks


def retrying_check(redis: Redis) -> dict[str, Any]:
    """Jobs waiting for another attempt, per function: a detail, never a verdict (a retry is the
    design working; the JobKeepsRetrying alert says when it goes on too long)."""
    from .work_in_sight import retrying_by_function, retrying_jobs

    counts = retrying_by_function(retrying_jobs(redis))
    by_function: dict[str, int] = {}
    for (func, _queue), count in counts.items():
        by_function[func] = by_function.get(func, 0) + count
    return {"ok": True, "jobs": sum(counts.values()), "by_function": by_function}


def check_liveness() -> bool:
    """The web container's own check: this process answers and reaches its database.

    Nothing about workers, the scheduler or Redis: their outage must not take the API out of
    the load balancer (the outbox keeps the jobs until they are back).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True
