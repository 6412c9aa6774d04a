"""What every worker process shares: the JSON job class, the worker classes, failure triage.

Jobs are serialised as JSON, never pickle, so a value read back from Redis cannot execute
code. rq-scheduler and django-rq's rqworker both construct jobs and workers with the
default (pickle) serializer unless told otherwise, hence the two small overrides here.
"""

from __future__ import annotations

import logging
import smtplib
import time
from types import TracebackType
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from . import rq_speedups  # noqa: F401  (installs itself)
from .errors import PermanentJobError, TransientJobError
from .lean import LeanBookkeepingMixin
from .resilience import LIVENESS_TTL, ResilientWorkerMixin

logger = logging.getLogger("app.jobs")


class JSONJob(Job):
    """An RQ job that always defaults to the JSON serializer."""

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=serializer or JSONSerializer)


class _ProjectWorkerMixin(ResilientWorkerMixin):
    """JSON jobs, fresh database connections per job, failure triage installed."""

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[misc]
        from .abandoned import sweep

        try:
            sweep(self.connection, [queue.name for queue in self.queues])  # type: ignore[attr-defined]
        except RedisError:
            logger.exception("abandoned-job sweep failed")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # django-rq's rqworker always passes its --serializer default (pickle): override it.
        kwargs["serializer"] = JSONSerializer
        kwargs["job_class"] = JSONJob
        handlers = list(kwargs.get("exception_handlers") or [])
        if classify_failure not in handlers:
            handlers.insert(0, classify_failure)
        kwargs["exception_handlers"] = handlers
        # RQ's maintenance (registry cleaning, and here the abandoned-job sweep) every 15 s
        # instead of 10 minutes, and an idle worker looping every 20 s (worker_ttl - 15)
        # rather than blocking 7 minutes in one BLPOP, so it gets to run it.
        kwargs.setdefault("maintenance_interval", 15)
        kwargs["worker_ttl"] = min(int(kwargs.get("worker_ttl") or 35), 35)
        super().__init__(*args, **kwargs)

    _last_heartbeat: tuple[float, int] | None = None

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ beats up to five times per job, three round trips each, all with the same TTL.

        Within one second, a beat with the same TTL as the previous one changes nothing a
        watcher can see (the key's expiry is minutes away), so it is skipped; the others go
        out as one pipelined round trip. A shorter or longer TTL is always sent at once.
        """
        if pipeline is not None:
            # A short TTL whatever RQ asks: the liveness thread keeps a living worker's key.
            super().heartbeat(min(timeout or LIVENESS_TTL, LIVENESS_TTL), pipeline)  # type: ignore[misc]
            return
        ttl = min(timeout or self.worker_ttl + 60, LIVENESS_TTL)  # type: ignore[attr-defined]
        now = time.monotonic()
        last = self._last_heartbeat
        if last is not None and last[1] == ttl and now - last[0] < 1.0:
            return
        with self.connection.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
            super().heartbeat(ttl, pipe)  # type: ignore[misc]
            pipe.execute()
        self._last_heartbeat = (now, ttl)

    _suspension_checked_at: float = 0.0

    def check_for_suspension(self, burst: bool) -> None:
        # `rq suspend` takes effect within a second instead of before every single job:
        # one Redis round trip less per job on a busy queue.
        now = time.monotonic()
        if now - self._suspension_checked_at < 1.0:
            return
        self._suspension_checked_at = now
        super().check_for_suspension(burst)  # type: ignore[misc]

    def perform_job(self, job: Job, queue: Any, execution: Any) -> bool:
        # A connection the database closed while we were idle must not fail the next job.
        _close_stale_connections()
        context = {"job_id": job.id, "queue": job.origin, "func": job.func_name, "attempt": attempt_number(job)}
        logger.info("job %s started queue=%s func=%s attempt=%d", job.id, job.origin, job.func_name, context["attempt"], extra=context)
        succeeded = False
        try:
            succeeded = super().perform_job(job, queue, execution)  # type: ignore[misc]
            return succeeded
        finally:
            _close_stale_connections()
            recorded = getattr(self, "outcome_recorded_for", None) == job.id
            _report_outcome(self.connection, job, succeeded, context, record=not recorded)  # type: ignore[attr-defined]


def _report_outcome(connection: Any, job: Job, succeeded: bool, context: dict[str, Any], record: bool = True) -> None:
    """One log line and one statistics record per attempt: success, retry or failure."""
    from app.services import job_metrics

    duration, wait = job_metrics.durations(job)
    if succeeded:
        outcome = "success"
    else:
        # RQ has already decided by now: a retried job is SCHEDULED or QUEUED again.
        outcome = "failure" if job.get_status(refresh=False) in (JobStatus.FAILED, JobStatus.STOPPED) else "retry"
    log = logger.info if outcome == "success" else logger.warning if outcome == "retry" else logger.error
    log(
        "job %s %s queue=%s func=%s attempt=%d duration=%.3fs",
        job.id,
        {"success": "succeeded", "retry": "will be retried", "failure": "failed"}[outcome],
        job.origin,
        job.func_name,
        context["attempt"],
        duration or 0.0,
        extra={**context, "outcome": outcome, "duration": duration, "queue_wait": wait},
    )
    if record:
        job_metrics.record(connection, job.func_name, job.origin, outcome, duration, wait)


def _close_stale_connections() -> None:
    # Never inside a transaction: that is the caller's (a test's, or an atomic block's) to end.
    if not connection.in_atomic_block:
        close_old_connections()


class ForkingWorker(_ProjectWorkerMixin, Worker):
    """RQ's classic worker: a fresh work-horse process per job (isolation, higher overhead)."""


class InProcessWorker(LeanBookkeepingMixin, _ProjectWorkerMixin, SimpleWorker):
    """Runs jobs in the worker process itself: no fork per job, lean bookkeeping (app.jobs.lean)."""


# Failures that a later attempt can get past. Anything else is a bug or bad input: it
# fails once, with its reason in the failed registry, instead of burning retries.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientJobError,
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    JobTimeoutException,
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PermanentJobError):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, DatabaseError) and not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    return isinstance(exc, TRANSIENT_ERRORS)


def attempt_number(job: Job) -> int:
    """1 for the first run; counts the retries RQ has already spent."""
    initial = job.meta.get("max_retries")
    if initial is None or job.retries_left is None:
        return 1
    return int(initial) - int(job.retries_left) + 1


def classify_failure(
    job: Job, exc_type: type[BaseException], exc_value: BaseException, traceback: TracebackType | None
) -> bool:
    """RQ exception handler: stop retries for permanent errors and log every attempt.

    RQ calls exception handlers before it decides on a retry (worker._finalize_failure →
    handle_exception → handle_job_failure), so clearing `retries_left` here makes the
    failure final without touching RQ's retry machinery.
    """
    transient = is_transient(exc_value)
    if not transient:
        job.retries_left = 0
    final = not job.retries_left
    log = logger.error if final else logger.warning
    log(
        "job %s failed (%s): %s attempt=%d queue=%s func=%s %s",
        job.id,
        "transient" if transient else "permanent",
        f"{exc_type.__name__}: {exc_value}",
        attempt_number(job),
        job.origin,
        job.func_name,
        "giving up" if final else f"retrying, {job.retries_left} left",
        extra={
            "job_id": job.id,
            "queue": job.origin,
            "func": job.func_name,
            "attempt": attempt_number(job),
            "final": final,
        },
    )
    if final:
        from app.observability import report_job_failure; report_job_failure(job, exc_value, traceback)  # noqa: E702
        from app.services import background_jobs

        background_jobs.mark_ended(job.id, failed=True, reason=f"{exc_type.__name__}: {exc_value}")
    return True  # let RQ's own handlers (failed registry) run too
