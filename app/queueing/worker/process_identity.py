"""ProcessIdentity: a worker records which process it is, so a sweep on its host sees its death at once.

A pool member also records its pool (liveness.POOL_FIELD: host and the pool's pid).

The identity (kernel boot, pid namespace, pid, start time: liveness.process_identity) goes into
the worker's hash (liveness.PROCESS_FIELD) at its birth; a sweep in the same kernel and pid
namespace judges that process itself (liveness.gone_here; tests/faults/test_death_on_this_host.py).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ..liveness import POOL_FIELD, PROCESS_FIELD, process_identity


class ProcessIdentity:
    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def record(self) -> None:
        """After RQ registered the worker's birth (its key is new: under a new name, after an outage, too)."""
        identity = process_identity()
        fields = {PROCESS_FIELD: identity} if identity is not None else {}
        if getattr(self.worker, "recycles", False):
            # A pool member is a child of its pool's process: the dashboards group members by it
            # (tests/test_work_in_sight.py::test_pool_members_are_grouped_with_processed_counts).
            fields[POOL_FIELD] = f"{socket.gethostname()}:{os.getppid()}"
        if fields:
            self.worker.connection.hset(self.worker.key, mapping=fields)
