"""Operations RQ keeps private (underscore methods and attributes of its queue, job and worker).

Small functions so that no other module names an RQ private; each is exercised on RQ's own
objects by the tests that use it (tests/test_rq_compat.py, tests/faults/).
"""

from __future__ import annotations

import copy
import os
import signal
from typing import TYPE_CHECKING, Any

from rq.job import Job
from rq.worker_registration import unregister

from .keys import worker_executions_key

if TYPE_CHECKING:
    from rq import Queue


def asynchronous(queue: Queue) -> Queue:
    """The queue as an asynchronous one: a copy when its settings say `ASYNC: False`, where RQ's
    `enqueue_job` would run the job itself (eager.py runs it through the project's worker instead)."""
    if queue.is_async:
        return queue
    twin = copy.copy(queue)
    twin._is_async = True
    return twin


def requeue_at_front(queue: Queue, job: Job, pipeline: Any = None) -> None:
    """Put an existing job back at the front of its queue, status QUEUED (no dependency checks)."""
    queue._enqueue_job(job, pipeline=pipeline, at_front=True)


# What RQ 3.0's IntermediateQueue.cleanup passes to `worker.handle_job_failure` for an id it found
# in `<queue>:intermediate` for over a minute, whatever the job's status (rq/intermediate_queue.py).
_STUCK_IN_INTERMEDIATE = "Job was stuck in intermediate queue."


def is_intermediate_cleanup(exc_string: str) -> bool:
    """Whether a failure is RQ's intermediate-list cleanup rather than a failure of the job."""
    return exc_string == _STUCK_IN_INTERMEDIATE


def pops_into_intermediate(worker: Any) -> bool:
    """Whether the worker's pop moves a job into its queue's intermediate list (RQ 3.0's
    Queue.dequeue_any: BLMOVE for one queue on Redis >= 6.2) rather than off every list (BLPOP)."""
    from rq.utils import get_version

    return len(worker.queues) == 1 and get_version(worker.connection) >= (6, 2, 0)


def claim_popped(worker: Any, queue: Any, job_id: str) -> bool:
    """The hand-over's claim, before a popped job starts: True if this worker still holds the job
    (its id taken out of the intermediate list here, one atomic LREM) or popped it off every list;
    False if a take-back moved it back to the queue meanwhile (recovery._requeue_stuck_in_intermediate,
    the same LREM: one of the two wins)."""
    if not pops_into_intermediate(worker):
        return True
    return bool(worker.connection.lrem(queue.intermediate_queue_key, 1, job_id))


def stop_requested(worker: Any) -> bool:
    return bool(worker._stop_requested)


def set_stop_requested(worker: Any, value: bool) -> None:
    worker._stop_requested = value


def shutdown_requested(worker: Any) -> bool:
    """Whether a stop signal reached this worker (SIGTERM, SIGINT, its pool's stop). RQ's
    `request_stop` records the date first, then either sets `_stop_requested` (a job runs: warm
    shutdown) or raises StopRequested from wherever the main thread was, leaving the flag unset."""
    return worker._shutdown_requested_date is not None


def return_value_of(job: Job) -> Any:
    """What the job's function returned, in the worker that just ran it (RQ keeps it on the job)."""
    return job._result


def callback_names(job: Job) -> list[str | None]:
    """The import paths of a job's callbacks, read without importing them."""
    return [job._success_callback_name, job._failure_callback_name, job._stopped_callback_name]


def retire_worker(worker: Any) -> None:
    """Take a worker's registration out of Redis at once (its key, its executions, the sets that
    list it), without RQ's register_death, which keeps the key 60 s: a name given up must read as
    dead now, so that what it was running is recovered as abandoned now."""
    with worker.connection.pipeline() as pipe:
        unregister(worker, pipeline=pipe)
        pipe.delete(worker.key, worker_executions_key(worker.name))
        pipe.execute()


def stop_scheduler_child(worker: Any) -> None:
    """Kill a worker's RQ scheduler child, then release the per-queue locks it held (by its name).

    Killed, not asked to stop: a child that outlived a Redis outage could otherwise still run a
    move of due jobs it prepared before, after another scheduler took the queue (a job moved
    twice can run twice). Its locks, left alone, would keep the worker's next scheduler (a new
    name) from its queues for 61 s.
    """
    scheduler = worker.scheduler
    if scheduler is None:
        return
    process = scheduler._process
    if process is not None and process.pid:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except OSError:
            pass
        process.join(2)
    scheduler.release_locks()


def forget_worker_state(worker: Any) -> None:
    """After a worker takes a new name, what the mixins remember of the old key is void."""
    worker._compat_state_sent = None
    worker._compat_last_heartbeat = None
