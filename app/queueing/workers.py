"""The workers: JSON jobs, declared functions only, failure triage, outbox rows closed on every end.

- `QueueingJob` (django-rq's JOB_CLASS) reads and writes JSON, never pickle, and resolves a job's
  function through the catalog of declared jobs instead of importing the name Redis holds: a
  hand-written hash naming `os.system` gets an UndeclaredJobError, nothing is imported.
- Before a job starts, the worker refuses it (failed with its reason, nothing imported or called)
  when its function or a callback is undeclared, and drops a duplicate: a job whose status is no
  longer `queued` (finished, failed, cancelled, or started elsewhere) is not run again.
- Every end closes the job's outbox row: success, final failure (including a work-horse that
  died), a stop; an operator's delete or cancel closes it as cancelled.
- `ProjectWorker` overrides each RQ hook once and calls its collaborators (app/queueing/worker/:
  the lease and its fence, the stall watch, outage resume, process identity, outbox closing, the
  bookkeeping fast paths, recycling, suspension) in the order its methods show.
- `ForkingWorker` forks a work-horse per job (hostile input); `InProcessWorker` runs jobs itself
  with RQ's bookkeeping fast paths (rq_compat); `RecyclingWorker` is the latter, replaced by its
  pool (`RecyclingWorkerPool`) after N jobs or M MiB.
"""

from __future__ import annotations

import functools
import logging
import os
import smtplib
from datetime import UTC, datetime, timedelta
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

from . import outcomes, process_tree, rq_compat, stats, tracing
from .errors import PermanentJobError, TransientJobError
from .job_reports import last_line
from .jobclass import QueueingJob, record_refusal, refusal_of
from .liveness import LIVENESS_TTL
from .recovery import give_back, sweep
from .serialization import JobSerializer
from .worker import FastBookkeeping, Lease, OutageResume, OutboxClosing, ProcessIdentity, Recycling, StallWatch, StopDeadline, Suspension
from .worker import resident_memory_mb as resident_memory_mb  # re-exported
from .worker.stop_deadline import in_background

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object

logger = logging.getLogger(__name__)


class ProjectWorker(_WorkerBase):
    """What every worker of the project does around RQ's own work: each RQ hook overridden here
    once, calling the collaborators (app/queueing/worker/) in the order written.

    The kind of worker is data, not another override: `in_process` (jobs on the main thread,
    with RQ's SimpleWorker) or not (a work-horse per job, RQ's Worker); `recycles` for a pool
    member. tests/test_layout.py (test_each_library_hook_is_overridden_once_per_class) fails if
    a hook is overridden by two classes of one worker's MRO.
    """

    in_process: ClassVar[bool] = False
    recycles: ClassVar[bool] = False
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
        rq_compat.quiet_rq_failure_logs()  # one line per failed attempt, ours (_log_failed_attempt)
        kwargs["worker_ttl"] = min(int(kwargs.get("worker_ttl") or 25), 25)
        # The collaborators, each given this worker: made first, so that every hook below finds them.
        self.stall_watch = StallWatch(self, in_process=self.in_process)
        self.lease = Lease(self, self.stall_watch)
        # A job is handled from its lease's claim to its end (execute_job), in a horse or not.
        self.stop_deadline = StopDeadline(self, busy=lambda: bool(self.lease.running_job_id or self.horse_pid))
        self.outage_resume = OutageResume(self, self.stall_watch, self.stop_deadline)
        self.process_identity = ProcessIdentity(self)
        self.outbox_closing = OutboxClosing()
        self.bookkeeping = FastBookkeeping(self, in_process=self.in_process)
        self.recycling = Recycling(self) if self.recycles else None
        self.suspension = Suspension(self, self.bookkeeping.suspension_check_due)
        self._died_horse_of: str | None = None  # the job whose work-horse RQ saw die (handle_work_horse_killed)
        self._killed_horse_of: str | None = None  # the job whose work-horse this worker killed (kill_horse)
        super().__init__(*args, **kwargs)

    # -- the work loop ----------------------------------------------------------------------

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        if not self.in_process:
            _prepare_for_work_horses()
        if self.recycles:
            # RQ's pool starts every member with a scheduler child of its own (with_scheduler=True).
            # A child holds the pool's queue locks under a random name for 61 s after it dies with
            # its member, and no retry of those queues would fire meanwhile. The pool's retries are
            # fired by rqscheduler's pass instead (every pass, 2 s, under one owner name that a
            # restarted scheduler takes over;
            # tests/test_schedules.py::test_the_pools_members_run_no_scheduler_child).
            kwargs["with_scheduler"] = False
        process_tree.install(self.connection)  # children die with us
        self.lease.start()
        try:
            return self.outage_resume.run(functools.partial(super().work, burst, *args, **kwargs), burst)
        finally:
            self.lease.stop()

    def register_birth(self) -> None:
        super().register_birth()  # type: ignore[no-untyped-call]  # rq leaves it untyped
        self.process_identity.record()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # A short TTL whatever RQ asks: the lease thread keeps a living worker's key, and a
        # dead worker's key is gone within LIVENESS_TTL.
        ttl = min(timeout or LIVENESS_TTL, LIVENESS_TTL)
        self.stall_watch.loop_moved()  # an attempt counts: a Redis outage is no stall
        self.bookkeeping.heartbeat(ttl, pipeline, super().heartbeat)

    def check_for_suspension(self, burst: bool) -> None:
        # Due once a second, or at once after a job was held back (worker/suspension.py).
        if self.suspension.check_due():
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]  # rq leaves it untyped
        try:
            sweep(self.connection, [queue.name for queue in self.queues])
        except RedisError:
            logger.exception("abandoned-job sweep failed")

    def set_shutdown_requested_date(self) -> None:
        # RQ calls it inside its stop signal's handler: never on that thread (worker/stop_deadline.py).
        in_background(super().set_shutdown_requested_date)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        self.bookkeeping.set_state(state, pipeline, super().set_state)

    # -- a job ------------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Any) -> None:
        self.stall_watch.job_starting(job, queue)  # in-process: the job's timeout on top of the limit
        try:
            if not self._admits(job, queue):  # first: its claim makes the job ours (no take-back races the hold)
                return
            if self.suspension.holds_back(job, queue):  # dequeued after `rqsuspend`: back to the front
                return
            self._died_horse_of = self._killed_horse_of = None  # what an earlier run left concerns no later one
            self.lease.job_started(job.id)  # read by the lease thread's claim and fence
            self.stop_deadline.job_starting()
            try:
                self.bookkeeping.execute_job(job, queue, super().execute_job)
            finally:
                self.lease.job_ended(job.id)
        finally:
            self.stall_watch.job_ended()

    def _admits(self, job: Job, queue: Any) -> bool:
        """Refusal before run: a job taken back since its pop or a duplicate is dropped, an
        undeclared job failed with its reason."""
        if not rq_compat.claim_popped(self, queue, job.id):
            # Popped while this worker was frozen (or slow) past the hand-over's limit: a sweep moved
            # it back to its queue, and it runs elsewhere; this copy never starts
            # (tests/faults/test_prompt_redelivery.py::test_a_job_popped_by_a_frozen_idle_member_runs_elsewhere_within_the_lease).
            logger.warning("job %s dropped: taken back to its queue since this worker popped it", job.id)
            return False
        status = job.get_status(refresh=False)
        if status != JobStatus.QUEUED:
            # Popped twice (a duplicate id in the list) or ended meanwhile: never run it again.
            logger.warning("job %s dropped: its status is %s, not queued", job.id, getattr(status, "value", status))
            self.connection.lrem(rq_compat.intermediate_key(queue.name), 1, job.id)
            return False
        refusal = refusal_of(job)
        if refusal is not None:
            with self.connection.pipeline() as pipe:
                pipe.lrem(rq_compat.intermediate_key(queue.name), 1, job.id)
                record_refusal(self.connection, job, queue, refusal, worker_name=self.name, pipeline=pipe)
            return False
        return True

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if not self.bookkeeping.prepared_already(job):
            super().prepare_job_execution(job, remove_from_intermediate_queue)

    def perform_job(self, job: Job, queue: Any, execution: Any) -> bool:
        try:
            # A connection the database closed while we were idle must not fail the next job.
            _close_stale_connections()
            attempt = outcomes.attempt_number(job)  # the one numbering: logs, ledger, tracing, task API
            context = {"job_id": job.id, "queue": job.origin, "func": job.func_name, "attempt": attempt}
            job_span = tracing.start_job(job, attempt)  # None when tracing is off; current until its end below
            logger.info("job %s started queue=%s func=%s attempt=%d", job.id, job.origin, job.func_name, attempt, extra=context)
            succeeded = False
            try:
                succeeded = super().perform_job(job, queue, execution)
                return succeeded
            finally:
                _close_stale_connections()
                # A success the bookkeeping recorded carried its statistics: not recorded twice.
                _report_outcome(self.connection, job, succeeded, context, record=not self.bookkeeping.recorded(job))
                tracing.end_job(job_span, succeeded, flush=self.is_horse)  # a work-horse leaves by os._exit
        finally:
            if self.recycling is not None:
                self.recycling.job_done()

    def handle_execution_ended(self, job: Job, queue: Any, heartbeat_ttl: int) -> None:
        self.stop_deadline.work_done()  # RQ's first step after the job's code returned: the rest is bookkeeping
        if not self.bookkeeping.execution_ended(job):
            super().handle_execution_ended(job, queue, heartbeat_ttl)

    def kill_horse(self, *args: Any, **kwargs: Any) -> None:
        # RQ's parent kills its horse itself only past the job's hard timeout (timeout + 60 s) or on
        # a forced stop: that death is the job's failed attempt, not an abandon (_horse_death).
        self._killed_horse_of = self.lease.running_job_id  # from memory: Redis may be away (a forced stop)
        super().kill_horse(*args, **kwargs)  # RQ's forking Worker's

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        # Called by RQ's monitor_work_horse just before handle_job_failure, for a horse that ended
        # with a status other than 0 and left its job neither finished nor failed.
        self._died_horse_of = job.id
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]

    def _horse_death(self, job: Job, exc_string: str) -> str | None:
        """The reason a work-horse died without its job's end, when that is an abandon: killed from
        outside (SIGKILL: the OOM killer or an operator, which its status cannot tell apart), a
        signal, an exit of its own. None for any other failure, and for a horse this worker killed
        (its hard timeout, a forced stop), which stays a failed attempt."""
        died, killed = self._died_horse_of, self._killed_horse_of
        self._died_horse_of = self._killed_horse_of = None
        if died != job.id or killed == job.id:
            return None
        return (last_line(exc_string) or "its work-horse died").rstrip("; ")

    def handle_job_success(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
        self.lease.fence_if_lapsed()  # a lapsed lease ends here, before the success is recorded
        if not self.bookkeeping.job_success(job, queue, execution):
            super().handle_job_success(job, queue, started_job_registry, execution)
        self.outbox_closing.succeeded(job)

    def handle_job_failure(
        self, job: Job, queue: Any, started_job_registry: Any = None, exc_string: str = "", execution: Any = None
    ) -> None:
        self.stop_deadline.work_done()
        death = self._horse_death(job, exc_string)  # read first: it concerns this failure only
        # Not lease-fenced (unlike a success): a thawed in-process worker may record a failure.
        if self.lease.fenced(job.id):
            # Our lease lapsed while we were frozen and the fence killed the horse: the job is not
            # ours any more. Failing or retrying it here would spend a retry and wait its backoff
            # (a minute, for images) while a sweep has requeued it or is about to.
            if give_back(self.connection, queue, job):
                logger.warning("job %s handed back to its queue after this worker's lease lapsed", job.id)
            return
        if rq_compat.is_intermediate_cleanup(exc_string):
            # RQ's intermediate-list cleanup fails (and so retries) any job whose id it found left
            # there for a minute, even one that finished since (a horse killed before it took the id
            # out leaves it behind), so the job would run twice. Here it fails or retries nothing: a
            # job still waiting to start goes back to the front of its queue; any other is left as it
            # is. RQ removes the stale id itself
            # (tests/test_declared_jobs.py::test_rqs_intermediate_cleanup_never_fails_or_retries_a_job).
            if job.get_status(refresh=True) == JobStatus.QUEUED and self.connection.lpos(queue.key, job.id) is None:
                rq_compat.requeue_at_front(queue, job)
                logger.warning("job %s was stuck between dequeue and start: requeued", job.id)
            return
        if death is not None:
            # Its work-horse died (SIGKILL, the OOM killer, a segfault) and nobody killed it for a
            # timeout: an abandoned run, not a failed attempt. Back to the front of its queue at
            # once, its retries and their backoff untouched; a job that kills every horse it runs
            # on fails with this death's reason after recovery.MAX_ABANDONS
            # (tests/faults/test_prompt_redelivery.py::test_a_killed_work_horses_job_is_requeued_at_the_front_and_runs_again_within_seconds).
            job.worker_name = job.worker_name or self.name  # the horse wrote it, not this copy
            if give_back(self.connection, queue, job, "lost its work-horse on", detail=death):
                logger.warning("job %s handed back to its queue: its work-horse died (%s)", job.id, death)
            return
        # Every failure ends here, a timed-out horse's death included: close the row once RQ has decided.
        if _noted(job):
            attempt = outcomes.attempt_number(job) - 1  # the attempt classify_failure noted
        else:
            # No exception handler saw this attempt: its work-horse was killed by this worker (the
            # hard timeout, a forced stop; any other death was handed back above). Noted before
            # RQ's retry, which writes the meta with it.
            attempt = outcomes.attempt_number(job)
            outcomes.note_death(job, last_line(exc_string) or "its work-horse died", worker=self.name, host=outcomes.HOST)
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution)
        if job.get_status(refresh=False) == JobStatus.FAILED:
            # RQ writes no meta with a final failure (only with a retry): the attempts it ended go to
            # Redis here, so that an operator's requeue runs attempt n + 1, not 1 again (failure path
            # only; tests/test_ledger.py::test_attempt_numbers_agree_in_logs_ledger_and_after_an_operators_requeue).
            try:
                job.save_meta()  # type: ignore[no-untyped-call]  # rq leaves it untyped
            except RedisError:
                logger.warning("job %s: its attempts could not be saved with its failure", job.id)
        next_run = _log_failed_attempt(job, attempt, exc_string)
        self.outbox_closing.failed(job, exc_string, next_run)


def _report_outcome(connection: Any, job: Job, succeeded: bool, context: dict[str, Any], record: bool = True) -> None:
    """One statistics record per attempt (success, retry or failure) and a success's log line; a
    failed attempt's line is handle_job_failure's (_log_failed_attempt), once RQ has decided."""
    duration, wait = stats.durations(job)
    if succeeded:
        outcome = "success"
        logger.info(
            "job %s succeeded queue=%s func=%s attempt=%d duration=%.3fs",
            job.id, job.origin, job.func_name, context["attempt"], duration or 0.0,
            extra={**context, "outcome": outcome, "duration": duration, "queue_wait": wait},
        )
    else:
        # RQ has already decided by now: a retried job is SCHEDULED or QUEUED again.
        outcome = "failure" if job.get_status(refresh=False) in (JobStatus.FAILED, JobStatus.STOPPED) else "retry"
    if record:
        stats.record(connection, job.func_name or "", job.origin, outcome, duration, wait)


def _noted(job: Job) -> bool:
    """Whether classify_failure noted this attempt, in this process, on this very job object: a
    forking worker's parent, whose work-horse died, never did (its copy of the meta may hold an
    earlier attempt's failure)."""
    errors = outcomes.errors_of(job)
    # Taken out as it is read: a mark of this process only, never written to Redis (RQ's retry writes the meta next).
    return bool(errors) and errors[-1].pop("run", None) == _run_mark(job, len(errors))


def _run_mark(job: Job, count: int) -> str:
    return f"{os.getpid()}/{id(job)}/{count}"


def _log_failed_attempt(job: Job, attempt: int, exc_string: str) -> datetime | None:
    """The one line a failed attempt logs, once RQ has decided: WARNING for a retry (when it runs
    again; the traceback went to DEBUG, and is in the ledger), ERROR for a final failure, with its
    reason and traceback. RQ's own lines for it are filtered (rq_compat.quiet_rq_failure_logs;
    tests/test_ledger.py::test_a_transient_retry_logs_one_warning_line_and_no_error). Returns the retry's time."""
    status = job.get_status(refresh=False)
    if status == JobStatus.STOPPED:
        return None
    entries = outcomes.ended_attempts(job)
    last = entries[-1] if entries else {}
    error = str(last.get("error") or last_line(exc_string) or "unknown error")
    total = outcomes.max_attempts(job)
    context = {"job_id": job.id, "queue": job.origin, "func": job.func_name, "attempt": attempt, "max_attempts": total}
    if status in (JobStatus.SCHEDULED, JobStatus.QUEUED):
        delay = float(last.get("retry_in") or 0) if last.get("outcome") == "retried" else 0.0
        next_run = datetime.now(UTC) + timedelta(seconds=delay)
        logger.warning(
            "job %s will be retried (attempt %d/%d) in %ds at %s: %s",
            job.id, attempt, total, round(delay), next_run.isoformat(timespec="seconds"), error,
            extra={**context, "next_run": next_run.isoformat(), "outcome": "retry"},
        )
        return next_run
    kind = str(last.get("kind") or "abandoned")
    logger.error(
        "job %s failed (attempt %d/%d, %s): %s%s",
        job.id, attempt, total, kind, error, f"\n{exc_string.rstrip()}" if exc_string and "\n" in exc_string.strip() else "",
        extra={**context, "outcome": "failure", "final": True},
    )
    return None


def _close_stale_connections() -> None:
    # Never inside a transaction: that is the caller's (a test's, or an atomic block's) to end.
    if not connection.in_atomic_block:
        close_old_connections()


def _prepare_for_work_horses() -> None:
    """Once before a forking worker's loop: what every work-horse would otherwise build per job."""
    # What the domain asks to set up (settings.QUEUEING_BEFORE_WORK), so that each work-horse
    # inherits it instead of building it per job (a storage client, say).
    from django.conf import settings
    from django.utils.module_loading import import_string

    for path in getattr(settings, "QUEUEING_BEFORE_WORK", ()):
        import_string(path)()
    _warm_database_modules()


def _warm_database_modules() -> None:
    """Import the database backend's SQL compiler here, once: every work-horse closes its job's
    outbox row with an UPDATE, and would otherwise import the compiler module anew (~5 ms a job)."""
    from django.db import connections

    for alias in connections:
        connections[alias].ops.compiler("SQLUpdateCompiler")


class ForkingWorker(ProjectWorker, Worker):
    """RQ's classic worker: a fresh work-horse process per job (isolation, higher overhead)."""

    def fork_work_horse(self, *args: Any, **kwargs: Any) -> Any:
        # The horse dies with us like every child (process_tree's fork hook, installed in work()).
        with process_tree.forking_horse():  # the horse runs its job on our connection: it keeps it
            return super().fork_work_horse(*args, **kwargs)


class InProcessWorker(ProjectWorker, SimpleWorker):
    """Runs jobs in the worker process itself: no fork per job, lean bookkeeping (rq_compat)."""

    in_process = True


class RecyclingWorker(InProcessWorker):
    """An in-process worker that asks to stop after enough jobs or memory; its pool replaces it.

    Mail and metrics jobs are small and trusted: they run in long-lived processes (no fork per
    job, ~10 ms of CPU saved per job with Django loaded), each replaced after `max_jobs` jobs or
    once its resident memory passes `max_memory_mb` (worker.Recycling), so a slow leak can't build up.
    """

    recycles = True
    max_jobs: ClassVar[int] = 5_000
    max_memory_mb: ClassVar[float] = 512.0


class RecyclingWorkerPool(WorkerPool):
    """RQ's pool of RecyclingWorkers that hands a dead member's job back as soon as it reaps the
    member (the OOM killer, a crash): the member's process is gone on this host, so the sweep
    sees it dead at once (liveness.gone_here) instead of waiting for its key to expire."""

    def handle_dead_worker(self, worker_data: Any) -> None:
        super().handle_dead_worker(worker_data)
        if self.status == self.Status.STOPPED:
            # Stopping: its members leave one by one, and a sweep on a Redis that does not answer
            # would hold the pool past its stop (issue #33). A member that died mid-job meanwhile
            # is recovered by the scheduler's sweep once its key expires (tests/faults/test_stops.py).
            return
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


def classify_failure(job: Job, exc_type: type[BaseException], exc_value: BaseException, traceback: TracebackType | None) -> bool:
    """RQ exception handler: stop retries for permanent errors and note every failed attempt in
    the job's meta (outcomes.note_failure: the ledger's entry, the retry's wait); its log line is
    handle_job_failure's, once RQ has decided (_log_failed_attempt), its traceback at DEBUG here.

    RQ 3.0 calls exception handlers before it decides on a retry (`handle_exception`, then
    `handle_job_failure`: the order tests/test_rq_compat.py pins), so clearing `retries_left`
    here makes the failure final without touching RQ's retry machinery. The outbox row is
    closed by the worker's handle_job_failure once RQ has decided.
    """
    entry = outcomes.note_failure(job, exc_type, exc_value, traceback)  # saved with the retry, or with the row's end
    entry["run"] = _run_mark(job, len(outcomes.errors_of(job)))  # handle_job_failure tells a failure from a horse's death
    transient = is_transient(exc_value)
    if not transient:
        job.retries_left = 0
    final = not job.retries_left
    entry["kind"] = "transient" if transient else "permanent"
    if not final:
        entry["outcome"] = "retried"
        entry["retry_in"] = job.get_retry_interval()  # what RQ's retry will wait (the same call, just before)
    # The one line is handle_job_failure's, once RQ has decided; the traceback here, at DEBUG.
    logger.debug("job %s raised (attempt %d)", job.id, len(outcomes.ended_attempts(job)), exc_info=(exc_type, exc_value, traceback))
    if final:  # reported once, when nobody will retry it (app/observability.py)
        from app.observability import report_job_failure

        report_job_failure(job, exc_value, traceback)
    return True  # let RQ's own handlers (failed registry) run too
