"""OutageResume: a worker outlives a Redis outage and starts again under a new name.

Where RQ's work loop logs "unhandled exception, quitting" and exits, the worker waits for Redis
to answer again (liveness.wait_for_redis) and resumes under a new name: its old registration,
and any job it was running, then read as abandoned and are recovered like a crash
(tests/faults/test_redis_faults.py).

A stop asked for (a signal, the pool's stop, recycling) is honoured in every state: the wait for
Redis ends at once, it is never entered once a stop was asked, and RQ's StopRequested raised
from wherever the main thread was ends the loop; a teardown that hangs on a silent Redis is cut
short by the StopDeadline (tests/faults/test_stops.py).
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import StopRequested

from .. import rq_compat
from ..liveness import wait_for_redis
from .stall_watch import StallWatch
from .stop_deadline import StopDeadline

logger = logging.getLogger(__name__)


class OutageResume:
    def __init__(self, worker: Any, stall_watch: StallWatch, stop_deadline: StopDeadline) -> None:
        self.worker = worker
        self.stall_watch = stall_watch
        self.stop_deadline = stop_deadline

    def run(self, work_loop: Callable[[], bool], burst: bool) -> bool:
        """RQ's work loop, run again after each outage until it ends with Redis answering or a stop."""
        self.stop_deadline.start()
        try:
            return self._run(work_loop, burst)
        finally:
            self.stop_deadline.stop()

    def stopping(self) -> bool:
        """A stop was asked: by a signal (RQ leaves its flag unset when it raises StopRequested
        instead, so its date is read too), by the pool, or by recycling."""
        return rq_compat.stop_requested(self.worker) or rq_compat.shutdown_requested(self.worker)

    def _run(self, work_loop: Callable[[], bool], burst: bool) -> bool:
        worked = False
        try:
            while True:
                crashed = False
                try:
                    worked = work_loop()
                except (RedisConnectionError, RedisTimeoutError):
                    crashed, worked = True, False  # teardown itself could not reach Redis
                # Asked before Redis is: a ping to a paused server would hang the stop.
                if burst or self.stopping():
                    return worked
                if not crashed and not self._redis_unreachable():
                    return worked
                if not self._wait_for_redis():
                    return worked  # stopped while waiting
                self.start_again_under_a_new_name()
        except StopRequested:
            # RQ's handler raises it from wherever the main thread was (a wait, a ping, a bootstrap).
            return worked

    def _redis_unreachable(self) -> bool:
        try:
            self.worker.connection.ping()
            return False
        except RedisError:
            return True

    def _wait_for_redis(self) -> bool:
        """True once Redis answers; False if a stop was asked first."""
        worker = self.worker
        logger.error("worker %s lost Redis; waiting for it to come back", worker.name)

        def should_stop() -> bool:
            self.stall_watch.loop_moved()  # waiting for Redis is no stall
            return self.stopping()

        if not wait_for_redis(worker.connection, should_stop=should_stop):
            logger.warning("worker %s: stopping as asked while Redis is away", worker.name)
            return False
        logger.warning("worker %s: Redis is back, resuming", worker.name)
        return True

    def start_again_under_a_new_name(self) -> None:
        # What the old name was running is recovered as abandoned and run again elsewhere, so a
        # work-horse still running it must not go on: stop it. Then the old name is retired at
        # once: left to expire, its key kept that job from the sweeps for up to LIVENESS_TTL.
        worker = self.worker
        horse_pid = worker.horse_pid  # 0 but in a forking worker running a job
        if horse_pid:
            try:
                os.kill(horse_pid, signal.SIGKILL)
                os.waitpid(horse_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        try:
            rq_compat.retire_worker(worker)
            rq_compat.stop_scheduler_child(worker)  # the resumed work loop starts one under the new name
        except RedisError:
            pass  # gone again: the old key and locks expire by themselves
        worker.name = uuid.uuid4().hex
        rq_compat.set_stop_requested(worker, False)
        rq_compat.forget_worker_state(worker)  # a new worker key: its state must be written again
        worker.scheduler = None
