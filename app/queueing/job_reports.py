"""What a user may see of a job: its live state in Redis, or its outbox row."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError

from . import outcomes
from .connections import redis_connection
from .jobclass import QueueingJob
from .models import BackgroundJob

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobReport:
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


def status_for_owner(job_id: str, owner_id: int) -> JobReport | None:
    """The job's live state from Redis, falling back to the database record; None unless owned.

    A failure reads in plain words: the job's own PermanentJobError message, else "the job failed;
    we have been notified" (outcomes.member_reason); never an exception's class path or traceback,
    which operators read in the ledger (tests/test_ledger.py::test_a_member_reads_no_exception_path)."""
    record = BackgroundJob.objects.filter(id=job_id, owner_id=owner_id).first()
    if record is None:
        return None
    status, result = record.state, None
    errors = (record.outcome or {}).get("errors") if isinstance(record.outcome, dict) else None
    try:
        job = QueueingJob.fetch(job_id, connection=redis_connection())
        status = job.get_status(refresh=False) or status
        if status == "finished":
            result = job.return_value(refresh=False)
        errors = outcomes.errors_of(job) or errors
    except NoSuchJobError:
        pass  # expired from Redis (or not sent yet): the record is the truth
    except RedisError:
        logger.warning("Redis unavailable while reading job %s; answering from the database", job_id)
    status = getattr(status, "value", status)
    if status == "failed":
        reason = outcomes.member_reason(errors if isinstance(errors, list) else None)
    elif record.state == BackgroundJob.State.CANCELLED:
        reason = record.failure_reason  # an operator's cancel, stop or delete: plain words of ours
    else:
        reason = ""
    return JobReport(
        id=record.id,
        queue=record.queue,
        func=record.func,
        status=status,
        failure_reason=reason,
        created_at=record.created_at.isoformat(),
        ended_at=record.ended_at.isoformat() if record.ended_at else None,
        result=result,
    )


def last_line(exc_string: str | None) -> str:
    """The line of a traceback that says what went wrong."""
    lines = [line for line in (exc_string or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
