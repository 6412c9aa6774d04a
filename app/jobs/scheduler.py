"""The rq-scheduler process: recurring jobs plus the outbox reconciler, under one lock."""

from __future__ import annotations

import logging
import time

from django.db import close_old_connections
from django_rq.queues import DjangoScheduler
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from redis.exceptions import RedisError

from .runtime import JSONJob
from .schedules import ensure_schedules

logger = logging.getLogger("app.jobs.scheduler")


class ProjectScheduler(DjangoScheduler):
    job_class = JSONJob

    def _fire_due_retries(self, queue_names: list[str]) -> None:
        """Move due retries to their queues when no worker's RQ scheduler does it.

        RQ's scheduler lives in a child of one worker (--with-scheduler) and holds a lock
        per queue; if that child died (it does on a Redis error), retries would wait for
        the next worker restart. Taking only the locks nobody holds keeps one scheduler per
        queue at a time.
        """
        scheduler = RQScheduler(queue_names, connection=self.connection, serializer=JSONSerializer)
        if scheduler.acquire_locks(auto_start=False):
            try:
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()

    def heartbeat(self) -> None:
        super().heartbeat()
        from app.services.health import SCHEDULER_ALIVE_KEY

        # One well-known key for /healthz, instead of scanning rq-scheduler's per-name keys.
        self.connection.set(SCHEDULER_ALIVE_KEY, time.time(), ex=int(self._interval) + 10)

    def enqueue_jobs(self) -> list:
        # Runs only while this process holds rq-scheduler's lock, so a second scheduler
        # process neither enqueues a recurring job twice nor re-sends the outbox twice.
        # Re-checking the schedules each tick restores them after Redis lost its data.
        from app.services import outbox

        try:
            ensure_schedules(self)
        except RedisError:
            logger.exception("could not check the recurring schedules")
        jobs = super().enqueue_jobs()
        try:
            from app.jobs.abandoned import sweep
            from app.jobs.queues import QUEUES

            sweep(self.connection, list(QUEUES))
            self._fire_due_retries(list(QUEUES))
        except RedisError:
            logger.exception("abandoned-job sweep failed")
        try:
            # A long-lived process: drop a database connection the server closed (a restart,
            # pg_terminate_backend), or every later pass fails on it ("the connection is closed").
            close_old_connections()
            outbox.resend_lost_jobs()
        except Exception:  # the scheduler must outlive a database hiccup
            logger.exception("outbox reconciliation failed")
        return jobs
