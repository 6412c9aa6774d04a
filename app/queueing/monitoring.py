"""Prometheus exposition of the queues: job statistics, queue depths and ages, workers, the
scheduler's heartbeat and the outbox's backlog, read from Redis and the database per scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from redis import Redis

from . import catalog, keys, outbox, rq_compat
from .health import queue_checks
from .stats import BUCKETS, OUTCOMES


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

    def collect(self) -> Iterator[Metric]:
        names = list(catalog.queues())

        funcs = sorted(f.decode() for f in cast("set[bytes]", self.connection.smembers(keys.JOB_STATS_FUNCS)))
        with self.connection.pipeline(transaction=False) as pipe:
            for func in funcs:
                pipe.hgetall(keys.job_stats(func))
            raw = pipe.execute()
        rows = []
        for func, stats in zip(funcs, raw, strict=True):
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
        checks = queue_checks(self.connection)
        with self.connection.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(rq_compat.queue_key(name))
                pipe.zcard(rq_compat.started_key(name))
                pipe.zcard(rq_compat.failed_key(name))
            counts = pipe.execute()
        for index, name in enumerate(names):
            depth.add_metric([name], counts[3 * index])
            started.add_metric([name], counts[3 * index + 1])
            failed.add_metric([name], counts[3 * index + 2])
            check = checks[f"queue:{name}"]
            oldest.add_metric([name], check["oldest_job_age_seconds"] or 0.0)
            workers.add_metric([name], check["workers"])
        yield from (depth, started, failed, oldest, workers)
        yield self._retrying(funcs, rows)
        scheduler = GaugeMetricFamily("egoejo_scheduler_alive", "1 when an rqscheduler process is alive")
        heartbeat = self.connection.get(keys.SCHEDULER_ALIVE)
        scheduler.add_metric([], 1 if heartbeat is not None else 0)
        yield scheduler
        yield from self._alerting_inputs(names, cast("bytes | None", heartbeat))
        pending = outbox.pending_stats()
        backlog = GaugeMetricFamily("egoejo_outbox_pending_jobs", "Outbox rows not ended yet")
        backlog.add_metric([], pending["pending"])
        yield backlog
        age = GaugeMetricFamily("egoejo_outbox_oldest_pending_age_seconds", "Age of the oldest pending outbox row")
        age.add_metric([], pending["oldest_pending_age_seconds"])
        yield age

    def _retrying(self, funcs: list[str], rows: list[tuple[str, str, dict[str, str]]]) -> Metric:
        """Jobs waiting for another attempt, per function: 0 for every function that has run, so
        the JobKeepsRetrying alert's series exists before the first retry."""
        from .work_in_sight import retrying_by_function, retrying_jobs

        retrying = GaugeMetricFamily("egoejo_jobs_retrying", "Jobs that failed an attempt and wait for the next", labels=["function", "queue"])
        counts = {(func, queue): 0 for func, queue, _ in rows}
        counts.update(retrying_by_function(retrying_jobs(self.connection)))
        for (func, queue), count in sorted(counts.items()):
            retrying.add_metric([func, queue], count)
        return retrying

    def _alerting_inputs(self, names: list[str], heartbeat: bytes | None) -> Iterator[Metric]:
        """What deploy/prometheus/rules.yml needs beyond the job, queue and outbox series above."""
        budget = GaugeMetricFamily("egoejo_queue_wait_budget_seconds", "How long a job of the queue may wait before it is late", labels=["queue"])
        for name, spec in catalog.queues().items():
            budget.add_metric([name], spec.wait_budget)
        yield budget
        if heartbeat is not None:
            age = GaugeMetricFamily("egoejo_scheduler_heartbeat_age_seconds", "Seconds since the scheduler's last pass")
            age.add_metric([], max(0.0, time.time() - float(heartbeat)))
            yield age
        requeues = CounterMetricFamily("egoejo_abandoned_requeues", "Jobs requeued because their worker died", labels=["queue"])
        counted = {k.decode(): int(v) for k, v in cast("dict[bytes, bytes]", self.connection.hgetall(keys.ABANDONED_REQUEUES)).items()}
        for name in names:
            requeues.add_metric([name], counted.get(name, 0))
        yield requeues
        refused = CounterMetricFamily(
            "egoejo_jobs_refused", "Jobs refused before running: undeclared, unreadable or not made by the queueing layer", labels=["queue"]
        )
        counted = {k.decode(): int(v) for k, v in cast("dict[bytes, bytes]", self.connection.hgetall(keys.REFUSED)).items()}
        for name in names:
            refused.add_metric([name], counted.get(name, 0))
        yield refused
        memory = self.connection.info("memory")
        used = GaugeMetricFamily("egoejo_redis_memory_used_bytes", "used_memory of the queues' Redis")
        used.add_metric([], memory.get("used_memory", 0))
        limit = GaugeMetricFamily("egoejo_redis_memory_max_bytes", "maxmemory of the queues' Redis (0: no limit)")
        limit.add_metric([], memory.get("maxmemory", 0))
        yield from (used, limit)
