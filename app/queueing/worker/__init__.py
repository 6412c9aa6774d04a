"""The collaborators of the project's workers (workers.ProjectWorker), one job each.

The worker holds one of each and calls them, in a visible order, from its single override of
each RQ hook (tests/test_layout.py: test_each_library_hook_is_overridden_once_per_class):

- `Lease` (lease.py): the liveness thread's beats, the running job's claim, the fence.
- `StallWatch` (stall_watch.py): a work loop that stopped moving ends its process.
- `OutageResume` (outage_resume.py): wait out a Redis outage, start again under a new name;
  its `StopDeadline` (stop_deadline.py) ends a stopped worker whose teardown hangs on Redis.
- `ProcessIdentity` (process_identity.py): which process the worker is, for same-host sweeps.
- `OutboxClosing` (outbox_closing.py): every end of a job closes its outbox row.
- `FastBookkeeping` (fast_bookkeeping.py): RQ's bookkeeping in fewer round trips (rq_compat).
- `Recycling` (recycling.py): an in-process pool member leaves after N jobs or M MiB.
- `Suspension` (suspension.py): after `rqsuspend` no job starts; a dequeued one goes back to the front.
"""

from .fast_bookkeeping import FastBookkeeping
from .lease import Lease
from .outage_resume import OutageResume
from .outbox_closing import OutboxClosing
from .process_identity import ProcessIdentity
from .recycling import Recycling, resident_memory_mb
from .stall_watch import StallWatch
from .stop_deadline import StopDeadline
from .suspension import Suspension

__all__ = [
    "FastBookkeeping",
    "Lease",
    "OutageResume",
    "OutboxClosing",
    "ProcessIdentity",
    "Recycling",
    "StallWatch",
    "StopDeadline",
    "Suspension",
    "resident_memory_mb",
]
