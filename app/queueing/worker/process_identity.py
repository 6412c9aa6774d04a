"""ProcessIdentity: a worker records which process it is, so a sweep on its host sees its death at once.

The identity (kernel boot, pid namespace, pid, start time: liveness.process_identity) goes into
the worker's hash (liveness.PROCESS_FIELD) at its birth; a sweep in the same kernel and pid
namespace judges that process itself (liveness.gone_here; tests/faults/test_death_on_this_host.py).
"""

from __future__ import annotations

from typing import Any

from ..liveness import PROCESS_FIELD, process_identity


class ProcessIdentity:
    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def record(self) -> None:
        """After RQ registered the worker's birth (its key is new: under a new name, after an outage, too)."""
        identity = process_identity()
        if identity is not None:
            self.worker.connection.hset(self.worker.key, PROCESS_FIELD, identity)
