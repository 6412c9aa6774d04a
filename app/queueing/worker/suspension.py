"""Suspension: after `manage.py rqsuspend`, no worker of any kind starts a job until `rqresume`.

RQ reads the suspension flag at the top of its work loop only, and the bookkeeping fast path
reads it once a second (rq_compat.suspension_check_due): a worker blocked in its dequeue (up to
10 s) or running jobs back to back took one more job after the flag was set. So:

- `holds_back(job, queue)`, called after every dequeue and before anything of the job runs (in
  the worker's process, before a work-horse forks): while the flag is set the job goes back to
  the front of its queue, untouched (status `queued`, out of the worker's intermediate list), and
  the next suspension check is due at once;
- then RQ's own check waits on the flag: the worker's state is `suspended`, the flag is read
  (with a heartbeat, which feeds the stall watch) every second, so it resumes within a second of
  `rqresume`. In burst mode the worker leaves.

rqscheduler is not held: it only moves due jobs into their queues, where they wait.
tests/test_work_in_sight.py::test_rqsuspend_stops_every_worker_kind_within_a_second holds it.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import rq_compat

logger = logging.getLogger(__name__)


class Suspension:
    def __init__(self, worker: Any, check_due: Any) -> None:
        self.worker = worker
        self.check_due_throttled = check_due  # the bookkeeping's once-a-second gate
        self.held_back = False

    def check_due(self) -> bool:
        if self.held_back:
            self.held_back = False
            return True
        return bool(self.check_due_throttled())

    def holds_back(self, job: Any, queue: Any) -> bool:
        """True (and the job back at the front of its queue) when the workers are suspended."""
        connection = self.worker.connection
        # One EXISTS a job, its only round trip: the fast path's once-a-second read let a job
        # dequeued just after `rqsuspend` start (tests/test_rq_compat.py counts the round trips).
        if not connection.exists(rq_compat.SUSPENDED_KEY):
            return False
        with connection.pipeline() as pipe:
            pipe.lrem(rq_compat.intermediate_key(queue.name), 1, job.id)
            rq_compat.requeue_at_front(queue, job, pipeline=pipe)
            pipe.execute()
        self.held_back = True
        logger.info("job %s put back at the front of %s: workers are suspended", job.id, queue.name)
        return True
