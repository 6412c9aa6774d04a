"""The in-process worker's per-job bookkeeping in 4 Redis round trips instead of RQ 3.0's 11.

Counted on a trivial job (tests/test_lean_bookkeeping.py instruments redis-py): RQ records the
execution and marks the job started in two transactions, sends the worker's state twice (idle
after the job, idle again before the next dequeue), the job's last heartbeat once more after it
ran, then WATCHes and reads the job's dependents before its success transaction, and the
project added one more for job statistics. Here:

- the execution record and the job's start go in one transaction;
- the worker's state is written only when it changes, and 'idle' rides in the job's success
  transaction;
- at the end only what running the job changed is written (status and times), not the whole
  job again (a third of the worker's CPU per trivial job);
- the post-run heartbeat, the statistics and a count of the job's dependents ride in the same
  MULTI/EXEC as RQ's own success bookkeeping (result, registries, worker counters, execution
  cleanup). RQ's WATCH protects against a dependent registering itself while the parent
  finishes; counting the dependents inside the transaction gives the same guarantee (one added
  before EXEC is counted and enqueued by RQ's own `enqueue_dependents`, one added after sees the
  parent finished), so the project needs no WATCH round trip for jobs that have none — which
  is every job it enqueues.

Repeating and rate-limited jobs, retries and failures take RQ's own paths, unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.rate_limit import release_slot
from rq.results import Result
from rq.utils import now, utcformat
from rq.worker.base import WorkerStatus

logger = logging.getLogger("app.jobs")


class LeanBookkeepingMixin:
    _state_sent: str | None = None
    _prepared_job_id: str | None = None
    outcome_recorded_for: str | None = None

    def execute_job(self, job: Job, queue: Any) -> None:
        """SimpleWorker.execute_job, with RQ's two preparation transactions sent as one.

        RQ records the execution (prepare_execution) and then, in the code a work-horse would
        run, marks the job started (prepare_job_execution); in-process both happen back to back.
        """
        heartbeat_ttl = self.get_heartbeat_ttl(job)  # type: ignore[attr-defined]
        with self.connection.pipeline() as pipeline:  # type: ignore[attr-defined]
            execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)  # type: ignore[attr-defined]
            self.executions[execution.id] = execution  # type: ignore[attr-defined]
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)  # type: ignore[attr-defined]
            job.prepare_for_execution(self.name, pipeline=pipeline)  # also the job's heartbeat  # type: ignore[attr-defined]
            pipeline.persist(job.key)
            if len(self.queues) == 1:  # type: ignore[attr-defined]
                pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            pipeline.execute()
        self._prepared_job_id = job.id
        self.perform_job(job, queue, execution)  # type: ignore[attr-defined]
        self.set_state(WorkerStatus.IDLE)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if self._prepared_job_id == job.id:  # done by execute_job above
            self._prepared_job_id = None
            return
        super().prepare_job_execution(job, remove_from_intermediate_queue)  # type: ignore[misc]

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and state == self._state_sent:
            self._state = state
            return
        super().set_state(state, pipeline)  # type: ignore[misc]
        self._state_sent = state

    def handle_execution_ended(self, job: Job, queue: Any, heartbeat_ttl: int) -> None:
        if job.get_status(refresh=False) == JobStatus.FAILED:
            super().handle_execution_ended(job, queue, heartbeat_ttl)  # type: ignore[misc]
            return
        # Written with the success bookkeeping below, not in a round trip of its own.
        job.ended_at = now()
        job.last_heartbeat = job.ended_at

    def handle_job_success(self, job: Job, queue: Any, started_job_registry: Any, execution: Any) -> None:
        if (job.repeats_left or 0) > 0 or job.has_rate_limit:
            super().handle_job_success(job, queue, started_job_registry, execution)  # type: ignore[misc]
            return
        from app.services import job_metrics

        assert job.started_at and job.ended_at
        result_ttl = job.get_result_ttl(self.default_result_ttl)  # type: ignore[attr-defined]
        with self.connection.pipeline() as pipeline:  # type: ignore[attr-defined]
            pipeline.exists(job.key)  # first, so it tells what the commit found
            self.increment_successful_job_count(pipeline=pipeline)  # type: ignore[attr-defined]
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)  # type: ignore[attr-defined]
            if result_ttl != 0:
                _record_success(job, result_ttl, pipeline, self.name, execution)  # type: ignore[attr-defined]
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)  # type: ignore[attr-defined]
            self.set_state(WorkerStatus.IDLE, pipeline=pipeline)
            duration, wait = job_metrics.durations(job)
            job_metrics.add_to(pipeline, job.func_name, job.origin, "success", duration, wait)
            self.outcome_recorded_for = job.id  # _report_outcome needn't record it again
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
        self.log.info("Successfully completed job %s in %ss on worker %s", job.id, job.ended_at - job.started_at, self.name)  # type: ignore[attr-defined]


def _record_success(job: Job, result_ttl: int, pipeline: Any, worker_name: str, execution: Any) -> None:
    """Job._handle_success, writing only what running the job changed.

    RQ saves the whole job again here (about twenty fields, its arguments re-serialised and
    compressed: a third of the worker's CPU per trivial job), though only its status and times
    changed since it was enqueued and started; a job that changes its own meta saves it itself
    (`job.save_meta()`). Should the hash have vanished meanwhile, the caller writes it whole.
    """
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
