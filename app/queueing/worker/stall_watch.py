"""StallWatch: a worker whose work loop stops moving while its lease thread beats leaves.

The lease thread (lease.py) beats whatever the main thread does, so a work loop stuck outside
any job (a lock, a socket that never answers, a bug) would keep its worker registered, alive and
idle while its queue waits. The thread asks this watch on every tick: when the loop's heartbeats
stop for longer than the stall limit (settings.QUEUEING_WORK_LOOP_STALL_SECONDS; an in-process
job adds its own timeout, since it runs on the loop's thread), it writes every thread's stack to
stderr and ends the process (EX_SOFTWARE); its pool or orchestrator starts a fresh one, and what
it was running is recovered as abandoned. tests/faults/test_stalled_work_loop.py holds it.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
import time
from typing import Any

from ..liveness import DEFAULT_STALL_LIMIT, EX_SOFTWARE

logger = logging.getLogger(__name__)


class StallWatch:
    def __init__(self, worker: Any, in_process: bool) -> None:
        self.worker = worker
        self.in_process = in_process  # jobs run on the work loop's own thread
        self.limit = float(DEFAULT_STALL_LIMIT)  # read from the settings once, in start()
        self.loop_moved_at = 0.0  # monotonic time of the loop's last heartbeat (or attempt at one)
        # While an in-process job runs: its timeout (RQ's death penalty ends it then), added to
        # the limit; None = no timeout, no limit. 0.0 between jobs, and always for a forking worker.
        self.job_timeout: float | None = 0.0

    def start(self) -> None:
        from django.conf import settings

        self.limit = float(getattr(settings, "QUEUEING_WORK_LOOP_STALL_SECONDS", DEFAULT_STALL_LIMIT))
        self.loop_moved_at = time.monotonic()

    def loop_moved(self) -> None:
        """From the work loop: a heartbeat, an attempt at one, a wait for Redis."""
        self.loop_moved_at = time.monotonic()

    def excuse(self, frozen_for: float) -> None:
        """The lease thread was frozen too (SIGSTOP, a paused container): the whole process was,
        so the loop's silence meanwhile is no stall of its own."""
        self.loop_moved_at += frozen_for

    def job_starting(self, job: Any, queue: Any) -> None:
        if not self.in_process:
            return
        # The main thread runs the job: its work loop is silent for as long as the job may run.
        # -1 is RQ's "no timeout"; None, the queue's default.
        timeout = job.timeout if job.timeout is not None else queue.DEFAULT_TIMEOUT
        self.job_timeout = None if timeout is None or int(timeout) < 0 else float(timeout)

    def job_ended(self) -> None:
        if not self.in_process:
            return
        self.job_timeout = 0.0
        # Now, not at RQ's heartbeat after the job: a job longer than the stall limit would
        # otherwise read as a stall in the moment between the two.
        self.loop_moved_at = time.monotonic()

    def check(self) -> None:
        """From the lease thread: leave the process if the loop has stalled."""
        limit = self.limit
        job_timeout = self.job_timeout
        if job_timeout is None:
            return  # an in-process job without a timeout: nothing bounds the loop's silence
        stalled_for = time.monotonic() - self.loop_moved_at
        if stalled_for <= limit + job_timeout:
            return
        message = (
            f"worker {self.worker.name}: its work loop has not moved for {stalled_for:.0f} s "
            f"(limit {limit + job_timeout:.0f} s) while its liveness thread ran: leaving, to be started "
            f"afresh; the stacks of its threads follow\n"
        )
        # The log record from a thread of its own, waited for 2 s at most: a stalled main thread
        # may hold a logging lock. The stacks go straight to the file descriptor, no lock taken.
        # Then out at once, however the main thread is stuck: the horse and the scheduler child
        # die with this process (process_tree), and the sweep recovers what it was running.
        reporter = threading.Thread(target=logger.critical, args=(message.strip(),), daemon=True)
        reporter.start()
        reporter.join(2)
        try:
            os.write(sys.stderr.fileno(), message.encode())
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        finally:
            os._exit(EX_SOFTWARE)
