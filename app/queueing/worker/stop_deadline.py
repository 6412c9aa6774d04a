"""StopDeadline: a worker asked to stop leaves within STOP_GRACE of its last job, whatever Redis does.

RQ's stop (request_stop) ends the work loop, then its teardown writes the worker's death to Redis
and joins its scheduler child. With Redis paused or cut off behind a silent network, a socket
that never answers holds that teardown, and the process, until a second signal or a SIGKILL
(issue #33). This watch, a thread of the worker process, sees the stop (rq_compat.shutdown_requested)
and, once no job runs (the current job is RQ's warm shutdown's to finish), gives the teardown
STOP_GRACE seconds, then ends the process with status 0 (liveness.leave_stopped). Once the job's
own code has returned, its end's bookkeeping gets STOP_GRACE too, not more. What the
teardown would have written expires with the worker's key (LIVENESS_TTL); the sweeps recover the
rest (tests/faults/test_stops.py).

RQ's warm shutdown also writes the stop's date to Redis from inside its signal handler, on the
thread that runs the job (an in-process worker) or waits for the work-horse: with Redis refused,
that write raised into the job's own code; with a silent socket, it held the stop for good.
`in_background` makes such a write from a thread of its own, and a failed one is only logged
(tests/faults/test_stops.py::test_a_sigterm_mid_job_while_redis_is_unreachable_lets_the_job_finish_then_stops_within_10_s).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from .. import rq_compat
from ..liveness import STOP_GRACE, STOP_POLL, leave_stopped

logger = logging.getLogger(__name__)


def in_background(write: Callable[[], Any]) -> None:
    """Run a Redis write that a signal handler would make (the stop's date) on a daemon thread:
    the handler returns at once, whatever Redis does, and a failure is logged, not raised."""

    def run() -> None:
        try:
            write()
        except RedisError as exc:
            logger.warning("the stop's date was not written to Redis: %s", exc)

    threading.Thread(target=run, daemon=True, name="stop-date").start()


class StopDeadline:
    def __init__(self, worker: Any, busy: Callable[[], bool]) -> None:
        self.worker = worker
        self.busy = busy  # True while a job is handled: a warm shutdown lets its work finish
        # Set when the job's own code has returned (or raised), in whichever process ran it: a
        # forked work-horse writes it into memory it shares with this process. From then on the
        # job's end is bookkeeping, which a paused Redis would hold for good: STOP_GRACE, no more
        # (what it could not record is recovered as an abandoned run, once Redis answers).
        self._work_done = multiprocessing.RawValue(ctypes.c_bool, False)
        self._stop: threading.Event | None = None

    def job_starting(self) -> None:
        self._work_done.value = False

    def work_done(self) -> None:
        self._work_done.value = True

    def working(self) -> bool:
        return self.busy() and not self._work_done.value

    def start(self) -> None:
        self._stop = threading.Event()
        threading.Thread(target=self._watch, args=(self._stop,), daemon=True, name="stop-deadline").start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _watch(self, done: threading.Event) -> None:
        idle_since: float | None = None  # monotonic time since when a stop was asked with no job running
        while not done.wait(STOP_POLL):
            if not rq_compat.shutdown_requested(self.worker) or self.working():
                idle_since = None
                continue
            now = time.monotonic()
            if idle_since is None:
                idle_since = now
            elif now - idle_since >= STOP_GRACE:
                leave_stopped(f"worker {self.worker.name}", now - idle_since)
