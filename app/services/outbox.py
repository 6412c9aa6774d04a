"""The durable side of enqueueing: re-send jobs recorded in the database that Redis lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from app.jobs.abandoned import orphaned
from app.jobs.queues import QUEUES, redis_connection, send_to_redis
from app.models import BackgroundJob

logger = logging.getLogger("app.jobs.outbox")

# A job younger than this may still be on its way (its on-commit push has not run yet).
MIN_AGE = timedelta(seconds=10)
BATCH = 500
KEEP_ENDED = timedelta(days=7)


def resend_lost_jobs(min_age: timedelta = MIN_AGE, batch: int = BATCH) -> int:
    """Re-send every pending job that Redis doesn't know; returns how many were re-sent."""
    cutoff = timezone.now() - min_age
    pending = list(
        BackgroundJob.objects.filter(state=BackgroundJob.State.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("id", "queue", "func", "args", "kwargs")[:batch]
    )
    if not pending:
        return 0
    connection = redis_connection()
    with connection.pipeline(transaction=False) as pipe:
        for job_id, *_ in pending:
            pipe.hget(f"rq:job:{job_id}", "status")
        statuses = pipe.execute()
    resent = 0
    for (job_id, queue, func, args, kwargs), status in zip(pending, statuses):
        if queue not in QUEUES:
            continue
        if status is not None:
            if status == b"queued" and orphaned(connection, queue, job_id):
                # Its hash survived but the queue entry didn't (a failover lost the last
                # writes of the old master, say): nothing would ever run it.
                connection.lpush(f"rq:queue:{queue}", job_id)
                logger.warning("job %s (%s) was queued in no queue: pushed again", job_id, func)
                resent += 1
            continue
        if send_to_redis(QUEUES[queue], job_id, func, args, kwargs):
            logger.warning("job %s (%s) was missing from Redis: re-sent", job_id, func)
            resent += 1
    return resent


def purge_ended(older_than: timedelta = KEEP_ENDED) -> int:
    deleted, _ = BackgroundJob.objects.exclude(state=BackgroundJob.State.PENDING).filter(
        ended_at__lt=timezone.now() - older_than
    ).delete()
    return deleted
