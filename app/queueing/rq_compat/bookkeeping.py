"""The workers' bookkeeping fast paths: mixins over RQ's worker methods.

- `FastInProcessMixin`: the in-process worker's per-job bookkeeping in 4 Redis round trips instead
  of RQ 3.0's 11 (execution record and start in one transaction; the worker's state only when it
  changes; at the end only the job's status and times, not the whole job again; heartbeat,
  statistics and a count of dependents inside RQ's own success MULTI/EXEC).
- `FastBeatsMixin`: heartbeats of one second coalesced, the suspension flag read once a second.

Each falls back to RQ's own method when `fast_paths()` is False.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.rate_limit import release_slot
from rq.results import Result
from rq.utils import now, utcformat
from rq.worker.base import WorkerStatus

from .. import stats
from .version import fast_paths

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
    from rq.worker import SimpleWorker as _SimpleWorkerBase
else:
    _WorkerBase = _SimpleWorkerBase = object

logger = logging.getLogger(__package__)  # the gate's one logger: app.queueing.rq_compat


# -- worker bookkeeping -------------------------------------------------------------------------


class FastBeatsMixin(_WorkerBase):
    """Every worker: heartbeats of one second coalesced, the suspension flag read once a second."""

    _compat_last_heartbeat: tuple[float, int] | None = None
    _compat_suspension_checked_at: float = 0.0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ beats up to five times per job, three round trips each, all with the same TTL:
        within one second a beat with the same TTL changes nothing a watcher can see."""
        import time

        if pipeline is not None or not fast_paths():
            super().heartbeat(timeout, pipeline)
            return
        ttl = timeout or self.worker_ttl + 60
        moment = time.monotonic()
        last = self._compat_last_heartbeat
        if last is not None and last[1] == ttl and moment - last[0] < 1.0:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(ttl, pipe)
            pipe.execute()
        self._compat_last_heartbeat = (moment, ttl)

    def check_for_suspension(self, burst: bool) -> None:
        # `rq suspend` takes effect within a second instead of before every single job.
        import time

        if fast_paths():
            moment = time.monotonic()
            if moment - self._compat_suspension_checked_at < 1.0:
                return
            self._compat_suspension_checked_at = moment
        super().check_for_suspension(burst)


class FastInProcessMixin(_SimpleWorkerBase):
    """The in-process worker's per-job bookkeeping in 4 round trips (see the module's docstring)."""

    _compat_state_sent: str | None = None
    _compat_prepared_job_id: str | None = None
    outcome_recorded_for: str | None = None  # the job whose statistics rode in its success transaction

    def execute_job(self, job: Job, queue: Any) -> None:
        """SimpleWorker.execute_job, with RQ's two preparation transactions sent as one."""
        if not fast_paths():
            super().execute_job(job, queue)
            return
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipeline:
            execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(job.key)
            if len(self.queues) == 1:
                pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            pipeline.execute()
        self._compat_prepared_job_id = job.id
        self.perform_job(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if self._compat_prepared_job_id == job.id:  # done by execute_job above
            self._compat_prepared_job_id = None
            return
        super().prepare_job_execution(job, remove_from_intermediate_queue)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if fast_paths() and pipeline is None and state == self._compat_state_sent:
            self._state = state
            return
        super().set_state(state, pipeline)
        self._compat_state_sent = state

    def handle_execution_ended(self, job: Job, queue: Any, heartbeat_ttl: int) -> None:
        if not fast_paths() or job.get_status(refresh=False) == JobStatus.FAILED:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        # Written with the success bookkeeping below, not in a round trip of its own.
        job.ended_at = now()
        job.last_heartbeat = job.ended_at

    def handle_job_success(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
        if not fast_paths() or (job.repeats_left or 0) > 0 or job.has_rate_limit:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        assert job.started_at and job.ended_at
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        with self.connection.pipeline() as pipeline:
            pipeline.exists(job.key)  # first, so it tells what the commit found
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            if result_ttl != 0:
                _record_success(job, result_ttl, pipeline, self.name, execution)
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            self.set_state(WorkerStatus.IDLE, pipeline=pipeline)
            duration, wait = stats.durations(job)
            stats.add_to(pipeline, job.func_name or "", job.origin, "success", duration, wait)
            self.outcome_recorded_for = job.id
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
        self.log.info("Successfully completed job %s in %ss on worker %s", job.id, job.ended_at - job.started_at, self.name)


def _record_success(job: Job, result_ttl: int, pipeline: Any, worker_name: str, execution: Any) -> None:
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
