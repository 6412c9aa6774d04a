"""The workers: JSON jobs, declared functions only, failure triage, outbox rows closed on every end.

- `QueueingJob` (django-rq's JOB_CLASS) reads and writes JSON, never pickle, and resolves a job's
  function through the registry of declared jobs instead of importing the name Redis holds: a
  hand-written hash naming `os.system` gets an UndeclaredJobError, nothing is imported.
- Before a job starts, the worker refuses it (failed with its reason, nothing imported or called)
  when its function or a callback is undeclared, and drops a duplicate: a job whose status is no
  longer `queued` (finished, failed, cancelled, or started elsewhere) is not run again.
- Every end closes the job's outbox row: success, final failure (including a work-horse that
  died), a stop; an operator's delete or cancel closes it as cancelled.
- `ForkingWorker` forks a work-horse per job (hostile input); `InProcessWorker` runs jobs itself
  with RQ's bookkeeping fast paths (rq_compat); `RecyclingWorker` is the latter, replaced by its
  pool (`RecyclingWorkerPool`) after N jobs or M MiB.
"""

from __future__ import annotations

import logging
import resource
import smtplib
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection
from django.db import connections as db_connections
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.timeouts import JobTimeoutException
from rq.worker_pool import WorkerPool

from . import outcomes, rq_compat, stats, tracing
from .ends import mark_cancelled, mark_ended
from .errors import PermanentJobError, TransientJobError
from .jobclass import QueueingJob, record_refusal, refusal_of
from .liveness import LIVENESS_TTL, LivenessMixin, running_key
from .recovery import give_back, sweep
from .serialization import JobSerializer
from .status import last_line

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object

logger = logging.getLogger(__name__)


class ProjectWorkerMixin(_WorkerBase):
    """What every worker of the project does around RQ's own work."""

    running_job_id: str | None = None
    fenced_job_id: str | None = None  # set by the liveness fence (liveness.py)
    claimed_job_id: str | None = None  # set by the liveness thread's claim (liveness.running_key)
    # RQ's dequeue retries a lost Redis with a backoff up to 60 s: each second waited past the
    # server's return delays every job of this worker (a restart takes 3 s), and a ping is cheap.
    max_connection_wait_time = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # django-rq's rqworker always passes its --serializer default (pickle): override it.
        kwargs["serializer"] = JobSerializer
        kwargs["job_class"] = QueueingJob
        handlers = list(kwargs.get("exception_handlers") or [])
        if classify_failure not in handlers:
            handlers.insert(0, classify_failure)
        kwargs["exception_handlers"] = handlers
        # RQ's maintenance (registry cleaning, and here the abandoned-job sweep) every 10 s
        # instead of 10 minutes, and an idle worker looping every 10 s (worker_ttl - 15)
        # rather than blocking 7 minutes in one BLPOP, so it gets to run it.
        kwargs.setdefault("maintenance_interval", 10)
        kwargs["worker_ttl"] = min(int(kwargs.get("worker_ttl") or 25), 25)
        super().__init__(*args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]  # rq leaves it untyped
        try:
            sweep(self.connection, [queue.name for queue in self.queues])
        except RedisError:
            logger.exception("abandoned-job sweep failed")

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # A short TTL whatever RQ asks: the liveness thread keeps a living worker's key, and a
        # dead worker's key is gone within LIVENESS_TTL.
        super().heartbeat(min(timeout or LIVENESS_TTL, LIVENESS_TTL), pipeline)

    def execute_job(self, job: Job, queue: Any) -> None:
        status = job.get_status(refresh=False)
        if status != JobStatus.QUEUED:
            # Popped twice (a duplicate id in the list) or ended meanwhile: never run it again.
            logger.warning("job %s dropped: its status is %s, not queued", job.id, getattr(status, "value", status))
            self.connection.lrem(rq_compat.intermediate_key(queue.name), 1, job.id)
            return
        refusal = refusal_of(job)
        if refusal is not None:
            self._refuse(job, queue, refusal)
            return
        self.running_job_id = job.id  # read by the liveness thread's fence (liveness.py)
        self.fenced_job_id = None  # a fence that fired after its job had ended concerns no later job
        try:
            super().execute_job(job, queue)
        finally:
            self.running_job_id = None
            if self.claimed_job_id == job.id:  # jobs longer than a beat only
                self.claimed_job_id = None
                try:
                    self.connection.delete(running_key(job.id))
                except RedisError:
                    pass  # it expires within LIVENESS_TTL

    def _refuse(self, job: Job, queue: Any, reason: str) -> None:
        with self.connection.pipeline() as pipe:
            pipe.lrem(rq_compat.intermediate_key(queue.name), 1, job.id)
            record_refusal(self.connection, job, queue, reason, worker_name=self.name, pipeline=pipe)

    def perform_job(self, job: Job, queue: Any, execution: Any) -> bool:
        # A connection the database closed while we were idle must not fail the next job.
        _close_stale_connections()
        attempt = attempt_number(job)
        context = {"job_id": job.id, "queue": job.origin, "func": job.func_name, "attempt": attempt}
        job_span = tracing.start_job(job, attempt)  # None when tracing is off; current until its end below
        logger.info("job %s started queue=%s func=%s attempt=%d", job.id, job.origin, job.func_name, attempt, extra=context)
        succeeded = False
        try:
            succeeded = super().perform_job(job, queue, execution)
            return succeeded
        finally:
            _close_stale_connections()
            recorded = getattr(self, "outcome_recorded_for", None) == job.id
            _report_outcome(self.connection, job, succeeded, context, record=not recorded)
            tracing.end_job(job_span, succeeded, flush=self.is_horse)  # a work-horse leaves by os._exit

    def handle_job_success(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
        # Every project worker is a LivenessMixin too (this mixin precedes it, and the fast path
        # below records the success without calling further up): a lapsed lease ends here.
        fence_if_lapsed = getattr(self, "fence_if_lapsed", None)
        if fence_if_lapsed is not None:
            fence_if_lapsed()
        super().handle_job_success(job, queue, started_job_registry, execution)
        if job.meta.get("outbox"):
            mark_ended(job.id, failed=False, outcome=outcomes.of(job, succeeded=True))

    def handle_job_failure(
        self, job: Job, queue: Any, started_job_registry: Any = None, exc_string: str = "", execution: Any = None
    ) -> None:
        if job.id == self.fenced_job_id:
            # Our lease lapsed while we were frozen and the fence killed the horse: the job is not
            # ours any more. Failing or retrying it here would spend a retry and wait its backoff
            # (a minute, for images) while a sweep has requeued it or is about to.
            self.fenced_job_id = None
            if give_back(self.connection, queue, job):
                logger.warning("job %s handed back to its queue after this worker's lease lapsed", job.id)
            return
        if rq_compat.is_intermediate_cleanup(exc_string):
            # RQ's intermediate-list cleanup fails (and so retries) any job whose id it found left
            # there for a minute, even one that finished since: a horse killed before it took the
            # id out leaves it behind, and the job ran twice 70-90 s apart (the chaos campaign).
            # A job still waiting to start goes back to the front of its queue; any other is left
            # as it is. RQ removes the stale id itself.
            if job.get_status(refresh=True) == JobStatus.QUEUED and self.connection.lpos(queue.key, job.id) is None:
                rq_compat.requeue_at_front(queue, job)
                logger.warning("job %s was stuck between dequeue and start: requeued", job.id)
            return
        # Every failure ends here, a work-horse's death included: close the row once RQ has decided.
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution)
        status = job.get_status(refresh=False)
        if not job.meta.get("outbox"):
            return  # no row to close (written into Redis by other means; the reconciler reads Redis anyway)
        if status == JobStatus.FAILED:
            mark_ended(job.id, failed=True, reason=last_line(exc_string), outcome=outcomes.of(job, succeeded=False))
        elif status == JobStatus.STOPPED:
            mark_cancelled([job.id], "stopped by an operator")


def _report_outcome(connection: Any, job: Job, succeeded: bool, context: dict[str, Any], record: bool = True) -> None:
    """One log line and one statistics record per attempt: success, retry or failure."""
    duration, wait = stats.durations(job)
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
        stats.record(connection, job.func_name or "", job.origin, outcome, duration, wait)


def _close_stale_connections() -> None:
    # Never inside a transaction: that is the caller's (a test's, or an atomic block's) to end.
    if not connection.in_atomic_block:
        close_old_connections()


class ForkingWorker(ProjectWorkerMixin, LivenessMixin, rq_compat.FastBeatsMixin, Worker):
    """RQ's classic worker: a fresh work-horse process per job (isolation, higher overhead)."""

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        # What the domain asks to set up once before the loop (settings.QUEUEING_BEFORE_WORK), so
        # that each work-horse inherits it instead of building it per job (a storage client, say).
        from django.conf import settings
        from django.utils.module_loading import import_string

        for path in getattr(settings, "QUEUEING_BEFORE_WORK", ()):
            import_string(path)()
        _warm_database_modules()
        return super().work(burst, *args, **kwargs)


def _warm_database_modules() -> None:
    """Import the database backend's SQL compiler here, once: every work-horse closes its job's
    outbox row with an UPDATE, and would otherwise import the compiler module anew (~5 ms a job)."""
    from django.db import connections

    for alias in connections:
        connections[alias].ops.compiler("SQLUpdateCompiler")


class InProcessWorker(ProjectWorkerMixin, rq_compat.FastInProcessMixin, LivenessMixin, rq_compat.FastBeatsMixin, SimpleWorker):
    """Runs jobs in the worker process itself: no fork per job, lean bookkeeping (rq_compat)."""

    def execute_job(self, job: Job, queue: Any) -> None:
        # The main thread runs the job: its work loop is silent for as long as the job may run
        # (liveness.py's stall limit). -1 is RQ's "no timeout"; None, the queue's default.
        timeout = job.timeout if job.timeout is not None else queue.DEFAULT_TIMEOUT
        self.in_process_job_timeout = None if timeout is None or int(timeout) < 0 else float(timeout)
        try:
            super().execute_job(job, queue)
        finally:
            self.in_process_job_timeout = 0.0
            # Now, not at RQ's heartbeat after the job: a job longer than the stall limit would
            # otherwise read as a stall in the moment between the two.
            self._loop_moved = time.monotonic()


def resident_memory_mb() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RecyclingWorker(InProcessWorker):
    """An in-process worker that asks to stop after enough jobs or memory; its pool replaces it.

    Mail and metrics jobs are small and trusted: they run in long-lived processes (no fork per
    job, ~10 ms of CPU saved per job with Django loaded), each replaced after `max_jobs` jobs or
    once its resident memory passes `max_memory_mb`, so a slow leak can't build up.
    """

    max_jobs: ClassVar[int] = 5_000
    max_memory_mb: ClassVar[float] = 512.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jobs_done = 0

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        # RQ's pool starts every member with a scheduler child of its own (with_scheduler=True).
        # A child holds the pool's queue locks under a random name, for 61 s after it dies with its
        # member, and no retry of those queues fired meanwhile (the third goal run's seed 27: a
        # welcome mail's retry 80 s late). The pool's retries are fired by rqscheduler's pass
        # instead (every pass, 2 s, under one owner name that a restarted scheduler takes over).
        kwargs["with_scheduler"] = False
        return super().work(burst, *args, **kwargs)

    def perform_job(self, job: Job, queue: Any, execution: Any) -> bool:
        try:
            return super().perform_job(job, queue, execution)
        finally:
            self._jobs_done += 1
            memory = resident_memory_mb()
            if self._jobs_done >= self.max_jobs or memory >= self.max_memory_mb:
                logger.info("worker %s recycles after %d jobs at %.0f MiB", self.name, self._jobs_done, memory)
                rq_compat.set_stop_requested(self, True)  # finish this job, leave; the pool starts a fresh process


class RecyclingWorkerPool(WorkerPool):
    """RQ's pool of RecyclingWorkers that hands a dead member's job back as soon as it reaps the
    member (the OOM killer, a crash): the member's process is gone on this host, so the sweep
    sees it dead at once (liveness.gone_here) instead of waiting for its key to expire."""

    def handle_dead_worker(self, worker_data: Any) -> None:
        super().handle_dead_worker(worker_data)
        try:
            recovered = sweep(self.connection, [queue.name for queue in self.queues])
        except RedisError:
            return  # Redis is away: the next sweep, anywhere, does it
        finally:
            db_connections.close_all()  # the abandon limit writes its row: no socket may pass to the next fork
        if recovered:
            logger.warning("pool member %s (pid %d) died mid-job; handed back: %s", worker_data.name, worker_data.pid, ", ".join(recovered))


# -- failure triage -----------------------------------------------------------------------------

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


def classify_failure(job: Job, exc_type: type[BaseException], exc_value: BaseException, traceback: TracebackType | None) -> bool:
    """RQ exception handler: stop retries for permanent errors and log every attempt.

    RQ 3.0 calls exception handlers before it decides on a retry (`handle_exception`, then
    `handle_job_failure`: the order tests/test_rq_compat.py pins), so clearing `retries_left`
    here makes the failure final without touching RQ's retry machinery. The outbox row is
    closed by the worker's handle_job_failure once RQ has decided.
    """
    attempt = attempt_number(job)  # before retries_left is cleared: the first run is attempt 1
    outcomes.note_failure(job, exc_type, exc_value, traceback)  # saved with the retry, or with the row's end
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
        attempt,
        job.origin,
        job.func_name,
        "giving up" if final else f"retrying, {job.retries_left} left",
        extra={"job_id": job.id, "queue": job.origin, "func": job.func_name, "attempt": attempt, "final": final},
    )
    if final:  # reported once, when nobody will retry it (app/observability.py)
        from app.observability import report_job_failure

        report_job_failure(job, exc_value, traceback)
    return True  # let RQ's own handlers (failed registry) run too
