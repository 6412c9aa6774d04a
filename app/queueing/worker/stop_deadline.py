"""StopDeadline: a worker asked to stop leaves within STOP_GRACE of its last job, whatever Redis does.

RQ's stop (request_stop) ends the work loop, then its teardown writes the worker's death to Redis
and joins its scheduler child. With Redis paused or cut off behind a silent network, a socket
that never answers holds that teardown, and the process, until a second signal or a SIGKILL
(issue #33). This watch, a thread of the worker process, sees the stop (rq_compat.shutdown_requested)
and, once no job runs (the current job is RQ's warm shutdown's to finish), gives the teardown
STOP_GRACE seconds, then ends the process with status 0 (liveness.leave_stopped). What the
teardown would have written expires with the worker's key (LIVENESS_TTL); the sweeps recover the
rest (tests/faults/test_stops.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import rq_compat
from ..liveness import STOP_GRACE, STOP_POLL, leave_stopped


class StopDeadline:
    def __init__(self, worker: Any, busy: Callable[[], bool]) -> None:
        self.worker = worker
        self.busy = busy  # True while a job runs: a warm shutdown lets it finish
        self._stop: threading.Event | None = None

    def start(self) -> None:
        self._stop = threading.Event()
        threading.Thread(target=self._watch, args=(self._stop,), daemon=True, name="stop-deadline").start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _watch(self, done: threading.Event) -> None:
        idle_since: float | None = None  # monotonic time since when a stop was asked with no job running
        while not done.wait(STOP_POLL):
            if not rq_compat.shutdown_requested(self.worker) or self.busy():
                idle_since = None
                continue
            now = time.monotonic()
            if idle_since is None:
                idle_since = now
            elif now - idle_since >= STOP_GRACE:
                leave_stopped(f"worker {self.worker.name}", now - idle_since)
