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

from .keys import intermediate_key, job_key, queue_key, worker_executions_key

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


# The job hash's field naming the push (its `enqueued_at`, which RQ writes anew with every push)
# that a worker claimed or a take-back took back: each push is claimed once, by one of them.
CLAIMED_PUSH_FIELD = "claimed_push"

# KEYS[1] the job's hash, KEYS[2] its queue's intermediate list; ARGV[1] its id, ARGV[2] '1' when
# the pop moved it into KEYS[2]. 1: this worker holds the push; 0: a take-back or another
# popper of the same push (a duplicate entry) got it first.
_CLAIM = f"""
if ARGV[2] == '1' and redis.call('LREM', KEYS[2], 1, ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local push = redis.call('HGET', KEYS[1], 'enqueued_at') or ''
if redis.call('HGET', KEYS[1], '{CLAIMED_PUSH_FIELD}') == push then return 0 end
redis.call('HSET', KEYS[1], '{CLAIMED_PUSH_FIELD}', push)
return 1
"""

# KEYS[1] the job's hash, KEYS[2] its queue, KEYS[3] the queue's intermediate list; ARGV[1] its
# id, ARGV[2] a new `enqueued_at`, ARGV[3] '1' to take it back even from a popper that claimed it.
# 1: pushed back at the front as a new push; 0: it is not queued in no list; -1: claimed.
_TAKE_BACK = f"""
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[1]) or redis.call('LPOS', KEYS[3], ARGV[1]) then return 0 end
local push = redis.call('HGET', KEYS[1], 'enqueued_at') or ''
if ARGV[3] ~= '1' and redis.call('HGET', KEYS[1], '{CLAIMED_PUSH_FIELD}') == push then return -1 end
redis.call('HSET', KEYS[1], '{CLAIMED_PUSH_FIELD}', push, 'enqueued_at', ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
"""


def claim_popped(worker: Any, queue: Any, job_id: str) -> bool:
    """The hand-over's claim, before a popped job starts: True if this worker holds the push it
    popped, False if a take-back (or another popper of the same push) got it first.

    One atomic script: a one-queue worker's id taken out of the intermediate list (LREM), then,
    for every worker, the push claimed (`CLAIMED_PUSH_FIELD` set to the push's `enqueued_at`). A
    take-back of a popped job (`take_back_popped`) claims the push the same way before it pushes
    the job again as a new one, so of a frozen popper, thawed, and the take-back, one wins
    (tests/faults/test_prompt_redelivery.py, tests/test_rq_compat.py::test_a_push_is_claimed_once_by_its_popper_or_its_take_back)."""
    moved = "1" if pops_into_intermediate(worker) else "0"
    return bool(worker.connection.eval(_CLAIM, 2, job_key(job_id), intermediate_key(queue.name), job_id, moved))


def take_back_popped(connection: Any, queue_name: str, job_id: str, even_claimed: bool = False) -> int:
    """Push back at the front of its queue a job that says queued but sits in no list (a popper
    froze or died holding it, or a failover lost its entry), as a new push: 1 if pushed, -1 if a
    popper claimed it (it is starting it; `even_claimed` pushes all the same), 0 if it waits or
    moved on (one atomic look and push)."""
    from rq.utils import now, utcformat

    keys = (job_key(job_id), queue_key(queue_name), intermediate_key(queue_name))
    return int(connection.eval(_TAKE_BACK, 3, *keys, job_id, utcformat(now()), "1" if even_claimed else "0"))


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
