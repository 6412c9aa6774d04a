"""Recurring jobs, registered with rq-scheduler under stable ids.

Registering is idempotent: a schedule that exists with the same cron line and function is
left alone, so restarting the scheduler never adds a second copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from rq.exceptions import NoSuchJobError
from rq_scheduler import Scheduler

from .queues import METRICS, QueueSpec
from .runtime import JSONJob

logger = logging.getLogger("app.jobs.schedules")

SCHEDULE_ID_PREFIX = "schedule-"


@dataclass(frozen=True)
class Recurring:
    id: str
    func: str
    cron: str
    queue: QueueSpec


def recurring_jobs() -> list[Recurring]:
    return [
        Recurring(
            id=f"{SCHEDULE_ID_PREFIX}refresh-all-dashboards",
            func="app.jobs.metrics.refresh_all_dashboards",
            cron=settings.IMPACT_REFRESH_CRON,
            queue=METRICS,
        )
    ]


def ensure_schedules(scheduler: Scheduler) -> list[str]:
    """Make the registered schedules equal to `recurring_jobs()`; returns the ids (re)created."""
    wanted = {job.id: job for job in recurring_jobs()}
    changed: list[str] = []
    for job in scheduler.get_jobs():
        cron_string = job.meta.get("cron_string")
        recurring = wanted.get(job.id)
        if recurring is None:
            # Ours but no longer wanted, or an id-less copy of one of ours from an older start-up.
            if job.id.startswith(SCHEDULE_ID_PREFIX) or job.func_name in {r.func for r in wanted.values()}:
                logger.info("removing stale schedule %s (%s)", job.id, job.func_name)
                scheduler.cancel(job)
                job.delete()
            continue
        if cron_string != recurring.cron or job.func_name != recurring.func or job.origin != recurring.queue.name:
            scheduler.cancel(job)
            job.delete()
    for recurring in wanted.values():
        if recurring.id in scheduler:
            continue
        try:
            JSONJob.fetch(recurring.id, connection=scheduler.connection).delete()
        except NoSuchJobError:
            pass
        scheduler.cron(
            recurring.cron,
            func=recurring.func,
            id=recurring.id,
            queue_name=recurring.queue.name,
            timeout=recurring.queue.timeout,
            result_ttl=recurring.queue.result_ttl,
            description=recurring.func.rpartition(".")[2],
            use_local_timezone=False,
        )
        logger.info("registered schedule %s: %s at '%s' (UTC)", recurring.id, recurring.func, recurring.cron)
        changed.append(recurring.id)
    return changed
