"""The workers' bookkeeping fast paths: plain functions over RQ's worker internals.

The worker's `FastBookkeeping` collaborator (app/queueing/worker/fast_bookkeeping.py) calls them
from inside its hooks, and calls RQ's own method instead when `fast_paths()` is False:
- the in-process worker's per-job bookkeeping in 4 Redis round trips instead of RQ 3.0's 11
  (execution record and start in one transaction; the worker's state only when it changes; at the
  end only the job's status and times, not the whole job again; heartbeat, statistics and a count
  of dependents inside RQ's own success MULTI/EXEC);
- heartbeats of one second coalesced, the suspension flag read once a second (every worker kind).
Contract tests: tests/test_rq_compat.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.rate_limit import release_slot
from rq.results import Result
from rq.utils import now, utcformat
from rq.worker.base import WorkerStatus

from .. import stats

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
    from rq.worker import SimpleWorker as _SimpleWorkerBase
else:
    _WorkerBase = _SimpleWorkerBase = object

logger = logging.getLogger(__package__)  # the gate's one logger: app.queueing.rq_compat

# Plain functions that the worker's FastBookkeeping (app/queueing/worker/fast_bookkeeping.py)
# calls from inside its hooks, each given the RQ method it stands in for where it may fall back.


class BookkeepingState:
    """What the fast paths remember between two calls, one per worker."""

    def __init__(self) -> None:
        self.last_heartbeat: tuple[float, int] | None = None  # (monotonic time, TTL) of the last beat sent
        self.suspension_checked_at = 0.0
        self.state_sent: str | None = None  # the worker state Redis last got from this worker
        self.prepared_job_id: str | None = None  # prepared by fast_execute_job: prepare_job_execution skips it


def fast_heartbeat(worker: _WorkerBase, state: BookkeepingState, ttl: int, rq_heartbeat: Callable[[int, Any], None]) -> None:
    """RQ beats up to five times per job, three round trips each, all with the same TTL: within
    one second a beat with the same TTL changes nothing a watcher can see. One pipeline a beat."""
    import time

    moment = time.monotonic()
    last = state.last_heartbeat
    if last is not None and last[1] == ttl and moment - last[0] < 1.0:
        return
    with worker.connection.pipeline(transaction=False) as pipe:
        rq_heartbeat(ttl, pipe)
        pipe.execute()
    state.last_heartbeat = (moment, ttl)


def suspension_check_due(state: BookkeepingState) -> bool:
    """`rq suspend` takes effect within a second instead of before every single job."""
    import time

    moment = time.monotonic()
    if moment - state.suspension_checked_at < 1.0:
        return False
    state.suspension_checked_at = moment
    return True


def fast_execute_job(worker: _SimpleWorkerBase, state: BookkeepingState, job: Job, queue: Any) -> None:
    """SimpleWorker.execute_job, with RQ's two preparation transactions sent as one."""
    heartbeat_ttl = worker.get_heartbeat_ttl(job)
    with worker.connection.pipeline() as pipeline:
        execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=worker.name)
        worker.executions[execution.id] = execution
        worker.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        worker.heartbeat(heartbeat_ttl, pipeline=pipeline)
        job.prepare_for_execution(worker.name, pipeline=pipeline)
        pipeline.persist(job.key)
        if len(worker.queues) == 1:
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
        pipeline.execute()
    state.prepared_job_id = job.id
    worker.perform_job(job, queue, execution)
    worker.set_state(WorkerStatus.IDLE)


def prepared_already(state: BookkeepingState, job: Job) -> bool:
    """True (once) for the job fast_execute_job prepared: RQ's own preparation is skipped."""
    if state.prepared_job_id != job.id:
        return False
    state.prepared_job_id = None
    return True


def state_unchanged(worker: _WorkerBase, state: BookkeepingState, new_state: str, pipeline: Any) -> bool:
    """True when Redis already holds `new_state` for this worker: only the worker's copy is set."""
    if pipeline is None and new_state == state.state_sent:
        worker._state = new_state
        return True
    return False


def end_with_success(job: Job) -> bool:
    """handle_execution_ended for a job that did not fail: its end is written with the success
    bookkeeping (fast_job_success), not in a round trip of its own. False for a failed job."""
    if job.get_status(refresh=False) == JobStatus.FAILED:
        return False
    job.ended_at = now()
    job.last_heartbeat = job.ended_at
    return True


def fast_success_applies(job: Job) -> bool:
    """fast_job_success covers a job that neither repeats nor holds a rate-limit slot."""
    return not ((job.repeats_left or 0) > 0 or job.has_rate_limit)


def fast_job_success(worker: _SimpleWorkerBase, job: Job, queue: Any, execution: Any) -> None:
    """handle_job_success in one transaction, the job's statistics (stats.add_to) inside it."""
    assert job.started_at and job.ended_at
    result_ttl = job.get_result_ttl(worker.default_result_ttl)
    with worker.connection.pipeline() as pipeline:
        pipeline.exists(job.key)  # first, so it tells what the commit found
        worker.increment_successful_job_count(pipeline=pipeline)
        worker.increment_total_working_time(job.ended_at - job.started_at, pipeline)
        if result_ttl != 0:
            record_success(job, result_ttl, pipeline, worker.name, execution)
        job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
        job._status = JobStatus.FINISHED
        worker.cleanup_execution(job, pipeline=pipeline, execution=execution)
        worker.set_state(WorkerStatus.IDLE, pipeline=pipeline)
        duration, wait = stats.durations(job)
        stats.add_to(pipeline, job.func_name or "", job.origin, "success", duration, wait)
        pipeline.scard(job.dependents_key)
        replies = pipeline.execute()
    job_hash_existed, dependents = replies[0], replies[-1]
    if not job_hash_existed and result_ttl != 0:
        # Redis lost the job's hash while it ran (a FLUSHDB, a failover): the status and
        # times just written would stand alone, so the whole job is written again.
        logger.warning("job %s: its data vanished from Redis while it ran; written again", job.id)
        job.save()
    if dependents:
        queue.enqueue_dependents(job)
    release_slot(job)
    worker.log.info("Successfully completed job %s in %ss on worker %s", job.id, job.ended_at - job.started_at, worker.name)


def record_success(job: Job, result_ttl: int, pipeline: Any, worker_name: str, execution: Any) -> None:
    """Job._handle_success, writing only what running the job changed (status and times)."""
    assert job.started_at is not None and job.ended_at is not None
    pipeline.hset(
        job.key,
        mapping={
            "status": JobStatus.FINISHED.value,
            "started_at": utcformat(job.started_at),
            "ended_at": utcformat(job.ended_at),
            "last_heartbeat": utcformat(job.ended_at),
            "worker_name": worker_name,
        },
    )
    Result.create(
        job,
        Result.Type.SUCCESSFUL,
        return_value=job._result,
        ttl=result_ttl,
        worker_name=worker_name,
        pipeline=pipeline,
        execution_id=execution.id,
        execution_started_at=execution.created_at,
        execution_ended_at=job.ended_at,
    )
    job.finished_job_registry.add(job, result_ttl, pipeline)
