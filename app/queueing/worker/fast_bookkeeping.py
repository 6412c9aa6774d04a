"""FastBookkeeping: RQ's per-job bookkeeping in fewer round trips (rq_compat's "worker bookkeeping").

Every worker: heartbeats of one second coalesced, the suspension flag read once a second. The
in-process kind also: the execution record and the job's start in one transaction, the worker's
state written only when it changes, and a success (its statistics included) in one transaction.
Each path is RQ's own when `rq_compat.fast_paths()` is false (RQ_FAST_PATHS=0, another rq);
tests/test_rq_compat.py compares what both paths leave in Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import rq_compat


class FastBookkeeping:
    def __init__(self, worker: Any, in_process: bool) -> None:
        self.worker = worker
        self.in_process = in_process
        self.state = rq_compat.BookkeepingState()
        # The job whose statistics rode in its success transaction: perform_job must not record
        # them again (stats.record).
        self.outcome_recorded_for: str | None = None

    def heartbeat(self, ttl: int, pipeline: Any, rq_heartbeat: Callable[[int, Any], None]) -> None:
        if pipeline is not None or not rq_compat.fast_paths():
            rq_heartbeat(ttl, pipeline)
            return
        rq_compat.fast_heartbeat(self.worker, self.state, ttl, rq_heartbeat)

    def suspension_check_due(self) -> bool:
        return not rq_compat.fast_paths() or rq_compat.suspension_check_due(self.state)

    def execute_job(self, job: Any, queue: Any, rq_execute_job: Callable[[Any, Any], None]) -> None:
        if not (self.in_process and rq_compat.fast_paths()):
            rq_execute_job(job, queue)
            return
        rq_compat.fast_execute_job(self.worker, self.state, job, queue)

    def prepared_already(self, job: Any) -> bool:
        return self.in_process and rq_compat.prepared_already(self.state, job)

    def set_state(self, state: str, pipeline: Any, rq_set_state: Callable[[str, Any], None]) -> None:
        if not self.in_process:
            rq_set_state(state, pipeline)
            return
        if rq_compat.fast_paths() and rq_compat.state_unchanged(self.worker, self.state, state, pipeline):
            return
        rq_set_state(state, pipeline)
        self.state.state_sent = state

    def execution_ended(self, job: Any) -> bool:
        """True when the job's end is left to the success transaction (job_success)."""
        return self.in_process and rq_compat.fast_paths() and rq_compat.end_with_success(job)

    def job_success(self, job: Any, queue: Any, execution: Any) -> bool:
        """True when the success was recorded here, its statistics with it; False: RQ's to record."""
        if not (self.in_process and rq_compat.fast_paths() and rq_compat.fast_success_applies(job)):
            return False
        self.outcome_recorded_for = job.id
        rq_compat.fast_job_success(self.worker, job, queue, execution)
        return True

    def recorded(self, job: Any) -> bool:
        return bool(self.outcome_recorded_for == job.id)
