"""The rq-scheduler process: recurring jobs plus the outbox reconciler, under one lock."""

from __future__ import annotations

import logging

from django_rq.queues import DjangoScheduler
from redis.exceptions import RedisError

from .runtime import JSONJob
from .schedules import ensure_schedules

logger = logging.getLogger("app.jobs.scheduler")


class ProjectScheduler(DjangoScheduler):
    job_class = JSONJob

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
            outbox.resend_lost_jobs()
        except Exception:  # the scheduler must outlive a database hiccup
            logger.exception("outbox reconciliation failed")
        return jobs
