"""Per-function job statistics kept in Redis by the workers, exported for Prometheus.

Workers are separate processes (and hosts), so a process-local prometheus_client registry
would see one worker's jobs only; each outcome is instead added to shared Redis hashes (within the
worker's own bookkeeping transaction of a successful job, see app/jobs/lean.py) and `/metrics` turns them into histograms and counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger("app.jobs.metrics_export")

KEY = "egoejo:jobstats:{func}"
FUNCS_KEY = "egoejo:jobstats:funcs"
# Seconds; jobs here range from a few ms (mail) to minutes (a full dashboard refresh).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
OUTCOMES = ("success", "failure", "retry")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
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
    key = KEY.format(func=func)
    announced = _announced.get(func)
    if announced is None or time.monotonic() - announced > ANNOUNCE_EVERY:
        pipe.sadd(FUNCS_KEY, func)
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
    return _seconds(started, getattr(job, "ended_at", None) or datetime.now(timezone.utc)), _seconds(
        getattr(job, "enqueued_at", None), started
    )


def _histogram(name: str, doc: str, rows: list[tuple[str, str, dict[str, str]]], field: str) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["function", "queue"])
    for func, queue, stats in rows:
        cumulative = 0
        buckets = []
        for bound in BUCKETS:
            cumulative += int(stats.get(f"{field}_bucket:{bound}", 0))
            buckets.append((str(bound), cumulative))
        cumulative += int(stats.get(f"{field}_bucket:+Inf", 0))
        buckets.append(("+Inf", cumulative))
        family.add_metric([func, queue], buckets, float(stats.get(f"{field}_sum", 0)))
    return family


class JobStatsCollector:
    """Prometheus collector over the shared Redis statistics and the queues' registries."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[object]:
        from app.jobs.queues import QUEUES
        from app.services.health import SCHEDULER_ALIVE_KEY, _queue_checks

        funcs = sorted(f.decode() for f in self.connection.smembers(FUNCS_KEY))
        with self.connection.pipeline(transaction=False) as pipe:
            for func in funcs:
                pipe.hgetall(KEY.format(func=func))
            raw = pipe.execute()
        rows = []
        for func, stats in zip(funcs, raw):
            decoded = {k.decode(): v.decode() for k, v in stats.items()}
            rows.append((func, decoded.get("queue", ""), decoded))
        yield _histogram("egoejo_job_duration_seconds", "Run time of jobs", rows, "duration")
        yield _histogram("egoejo_job_queue_wait_seconds", "Time from enqueue to start", rows, "wait")
        outcomes = CounterMetricFamily("egoejo_job_outcomes", "Job attempts by outcome", labels=["function", "queue", "outcome"])
        for func, queue, stats in rows:
            for outcome in OUTCOMES:
                outcomes.add_metric([func, queue, outcome], int(stats.get(outcome, 0)))
        yield outcomes

        depth = GaugeMetricFamily("egoejo_queue_depth", "Jobs waiting in the queue", labels=["queue"])
        failed = GaugeMetricFamily("egoejo_queue_failed_jobs", "Jobs in the failed registry", labels=["queue"])
        started = GaugeMetricFamily("egoejo_queue_started_jobs", "Jobs running now", labels=["queue"])
        oldest = GaugeMetricFamily("egoejo_queue_oldest_job_age_seconds", "Age of the oldest queued job", labels=["queue"])
        workers = GaugeMetricFamily("egoejo_queue_workers_alive", "Live workers listening on the queue", labels=["queue"])
        checks = _queue_checks(self.connection)
        with self.connection.pipeline(transaction=False) as pipe:
            for name in QUEUES:
                pipe.llen(f"rq:queue:{name}")
                pipe.zcard(f"rq:wip:{name}")
                pipe.zcard(f"rq:failed:{name}")
            counts = pipe.execute()
        for index, name in enumerate(QUEUES):
            depth.add_metric([name], counts[3 * index])
            started.add_metric([name], counts[3 * index + 1])
            failed.add_metric([name], counts[3 * index + 2])
            check = checks[f"queue:{name}"]
            oldest.add_metric([name], check["oldest_job_age_seconds"] or 0.0)
            workers.add_metric([name], check["workers"])
        yield from (depth, started, failed, oldest, workers)
        scheduler = GaugeMetricFamily("egoejo_scheduler_alive", "1 when an rqscheduler process is alive")
        heartbeat = self.connection.get(SCHEDULER_ALIVE_KEY)
        scheduler.add_metric([], 1 if heartbeat is not None else 0)
        yield scheduler
        yield from self._alerting_inputs(heartbeat)

    def _alerting_inputs(self, heartbeat: bytes | None) -> Iterator[object]:
        """What deploy/prometheus/rules.yml needs beyond the job and queue series above."""
        from django.db.models import Count, Min
        from django.utils import timezone as django_timezone

        from app.models import BackgroundJob

        budget = GaugeMetricFamily("egoejo_queue_wait_budget_seconds", "How long a job of the queue may wait before it is late", labels=["queue"])
        for name, seconds in WAIT_BUDGET_SECONDS.items():
            budget.add_metric([name], seconds)
        yield budget
        if heartbeat is not None:
            age = GaugeMetricFamily("egoejo_scheduler_heartbeat_age_seconds", "Seconds since the scheduler's last pass")
            age.add_metric([], max(0.0, time.time() - float(heartbeat)))
            yield age
        pending = BackgroundJob.objects.filter(state=BackgroundJob.State.PENDING).aggregate(n=Count("id"), oldest=Min("created_at"))
        outbox_count = GaugeMetricFamily("egoejo_outbox_pending_jobs", "Jobs recorded in the outbox and not ended")
        outbox_count.add_metric([], pending["n"])
        outbox_age = GaugeMetricFamily("egoejo_outbox_oldest_pending_age_seconds", "Age of the oldest outbox row not ended (0: none)")
        oldest = pending["oldest"]
        outbox_age.add_metric([], (django_timezone.now() - oldest).total_seconds() if oldest else 0.0)
        yield from (outbox_count, outbox_age)
        requeues = CounterMetricFamily("egoejo_abandoned_requeues", "Jobs requeued because their worker died", labels=["queue"])
        counted = {k.decode(): int(v) for k, v in self.connection.hgetall(ABANDONED_REQUEUES_KEY).items()}
        for name in WAIT_BUDGET_SECONDS:
            requeues.add_metric([name], counted.get(name, 0))
        yield requeues
        memory = self.connection.info("memory")
        used = GaugeMetricFamily("egoejo_redis_memory_used_bytes", "used_memory of the queues' Redis")
        used.add_metric([], memory.get("used_memory", 0))
        limit = GaugeMetricFamily("egoejo_redis_memory_max_bytes", "maxmemory of the queues' Redis (0: no limit)")
        limit.add_metric([], memory.get("maxmemory", 0))
        yield from (used, limit)


# A job waiting longer than this is late (alert QueueJobsLate): a welcome mail within a minute, a
# photo within two, a dashboard refresh within its 15-minute cadence.
WAIT_BUDGET_SECONDS = {"emails": 60, "images": 120, "metrics": 900}
# Hash queue → jobs requeued because their worker died (app/jobs/abandoned.py counts them).
ABANDONED_REQUEUES_KEY = "egoejo:abandoned:requeues"


