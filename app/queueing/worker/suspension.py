"""Suspension: after `manage.py rqsuspend`, no worker of any kind starts a job until `rqresume`.

RQ reads the suspension flag at the top of its work loop only, and the bookkeeping fast path
reads it once a second (rq_compat.suspension_check_due): a worker blocked in its dequeue (up to
10 s) or running jobs back to back took one more job after the flag was set. So:

- `holds_back(job, queue)`, called after every dequeue and the job's claim, before anything of the job runs (in
  the worker's process, before a work-horse forks), reads the flag unless the worker is running
  short jobs back to back (its previous one started less than BACK_TO_BACK ago) and read it less
  than READ_EVERY ago: an idle worker back from its blocking dequeue always reads it, a busy one
  once a second, not once a job. While the flag is set the job goes back to the front of its
  queue, untouched (status `queued`, out of the worker's intermediate list), and the next
  suspension check is due at once. So a job dequeued after `rqsuspend` starts only on a worker
  busy with short jobs, and only within the second;
- then RQ's own check waits on the flag: the worker's state is `suspended`, the flag is read
  (with a heartbeat, which feeds the stall watch) every second, so it resumes within a second of
  `rqresume`. In burst mode the worker leaves.

rqscheduler is not held: it only moves due jobs into their queues, where they wait.
tests/test_work_in_sight.py::test_rqsuspend_stops_every_worker_kind_within_a_second holds it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .. import rq_compat

logger = logging.getLogger(__name__)

READ_EVERY = 1.0  # seconds: the longest a busy worker may start jobs dequeued after `rqsuspend`
BACK_TO_BACK = 0.1  # seconds: a job started sooner after the previous one may skip the read


class Suspension:
    def __init__(self, worker: Any, check_due: Any) -> None:
        self.worker = worker
        self.check_due_throttled = check_due  # the bookkeeping's once-a-second gate
        self.held_back = False
        self.read_at = float("-inf")  # time.monotonic() of the last read of the flag
        self.called_at = float("-inf")  # ... and of the previous job's turn here

    def check_due(self) -> bool:
        if self.held_back:
            self.held_back = False
            return True
        return bool(self.check_due_throttled())

    def holds_back(self, job: Any, queue: Any) -> bool:
        """True (and the job back at the front of its queue) when the workers are suspended."""
        now, previous = time.monotonic(), self.called_at
        self.called_at = now
        if now - previous < BACK_TO_BACK and now - self.read_at < READ_EVERY:
            return False  # short jobs back to back: read once a second (tests/test_rq_compat.py counts the round trips)
        self.read_at = now
        connection = self.worker.connection
        if not connection.exists(rq_compat.SUSPENDED_KEY):
            return False
        with connection.pipeline() as pipe:
            pipe.lrem(rq_compat.intermediate_key(queue.name), 1, job.id)
            rq_compat.requeue_at_front(queue, job, pipeline=pipe)
            pipe.execute()
        self.held_back = True
        logger.info("job %s put back at the front of %s: workers are suspended", job.id, queue.name)
        return True
