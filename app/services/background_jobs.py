"""Job records: their end state, and what a user may see of a job."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.utils import timezone
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError

from app.jobs.runtime import JSONJob
from app.models import BackgroundJob
from app.jobs.queues import redis_connection

logger = logging.getLogger("app.jobs")


def mark_ended(job_id: str, *, failed: bool, reason: str = "") -> None:
    """Record a job's final state; called from the worker. Never raises: the job's own
    outcome is already in Redis, and the reconciler tolerates a missed mark."""
    state = BackgroundJob.State.FAILED if failed else BackgroundJob.State.FINISHED
    try:
        BackgroundJob.objects.filter(id=job_id).update(state=state, failure_reason=reason[:2000], ended_at=timezone.now())
    except DatabaseError:
        logger.exception("could not record the end of job %s", job_id)


@dataclass(frozen=True)
class JobStatus:
    id: str
    queue: str
    func: str
    status: str
    failure_reason: str
    created_at: str
    ended_at: str | None
    result: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "function": self.func.rpartition(".")[2],
            "status": self.status,
            "failure_reason": self.failure_reason or None,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
            "result": self.result,
        }


def status_for_owner(job_id: str, owner_id: int) -> JobStatus | None:
    """The job's live state from Redis, falling back to the database record; None unless owned."""
    record = BackgroundJob.objects.filter(id=job_id, owner_id=owner_id).first()
    if record is None:
        return None
    status, reason, result = record.state, record.failure_reason, None
    try:
        job = JSONJob.fetch(job_id, connection=redis_connection())
        status = job.get_status(refresh=False) or status
        if status == "failed" and not reason:
            latest = job.latest_result()
            reason = last_line(latest.exc_string if latest else "")
        elif status == "finished":
            result = job.return_value(refresh=False)
    except NoSuchJobError:
        pass  # expired from Redis (or not sent yet): the record is the truth
    except RedisError:
        logger.warning("Redis unavailable while reading job %s; answering from the database", job_id)
    return JobStatus(
        id=record.id,
        queue=record.queue,
        func=record.func,
        status=getattr(status, "value", status),
        failure_reason=reason,
        created_at=record.created_at.isoformat(),
        ended_at=record.ended_at.isoformat() if record.ended_at else None,
        result=result,
    )


def last_line(exc_string: str | None) -> str:
    lines = [line for line in (exc_string or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
