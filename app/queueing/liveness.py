"""Worker behaviour that RQ 3.0 lacks: fast death detection, no orphaned horses, surviving Redis outages.

- Liveness: a thread keeps the worker's Redis key alive with a short TTL (LIVENESS_TTL), so
  the key of a SIGKILLed worker is gone within seconds, not RQ's 7 to 14 minutes; the
  abandoned-job sweeper (recovery.py) requeues what such a worker was running.
- No orphaned horse: a work-horse asks the kernel to kill it when its parent dies, so a job
  re-run after its worker's death never overlaps a copy still running.
- Redis outages: where RQ's work loop logs "unhandled exception, quitting" and exits, the
  worker waits for Redis to answer again and resumes under a new name (its old registration,
  and any job it was running, then read as abandoned and are recovered like a crash).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import process_tree, rq_compat

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object

logger = logging.getLogger(__name__)

# A dead worker's job is re-run once its key is gone and a sweep runs: at most LIVENESS_TTL plus a
# sweep period (the scheduler's 5 s pass) after the death, inside the 30 s the docs promise. Four
# beats fit in one lease, so a living worker loses its key only when frozen, not when busy.
LIVENESS_TTL = 12  # seconds a dead worker's key outlives it
LIVENESS_INTERVAL = 3  # seconds between two beats of the liveness thread
_PR_SET_PDEATHSIG = 1


class LivenessMixin(_WorkerBase):
    _liveness_stop: threading.Event | None = None
    fenced_job_id: str | None = None  # the job whose horse the fence killed

    # -- liveness ---------------------------------------------------------------------------

    def _liveness_loop(self, stop: threading.Event) -> None:
        last_beat = time.monotonic()
        while not stop.wait(LIVENESS_INTERVAL):
            if time.monotonic() - last_beat > LIVENESS_TTL:
                self._lease_lapsed(time.monotonic() - last_beat)
            try:
                with self.connection.pipeline(transaction=False) as pipe:
                    pipe.expire(self.key, LIVENESS_TTL)
                    pipe.expire(self.executions_key, LIVENESS_TTL)
                    pipe.execute()
                last_beat = time.monotonic()
            except RedisError:
                pass  # the work loop notices outages and deals with them

    def _lease_lapsed(self, silent_for: float) -> None:
        """The fence: this process was stopped (SIGSTOP, a frozen container or VM) longer than its
        lease, so its key expired and its job was requeued to another worker. The copy here must
        not go on: the work-horse is killed, and an in-process worker, whose job runs on the main
        thread, leaves the process at once (its pool, or the orchestrator, starts a fresh one).
        What the job did before the pause stands; a job's own idempotence covers the rest."""
        horse_pid = getattr(self, "horse_pid", 0)  # forking workers only
        if not (horse_pid or getattr(self, "running_job_id", None)):
            return  # nothing was running: the next heartbeat registers the worker again
        logger.error("worker %s was silent %.0f s, past its %d s lease: its job runs elsewhere now; stopping this copy",
                     self.name, silent_for, LIVENESS_TTL)
        if horse_pid:
            # The horse's death is then no failure of the job: the worker hands it back (workers.py).
            self.fenced_job_id = getattr(self, "running_job_id", None)
            try:
                os.kill(horse_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            os._exit(75)  # EX_TEMPFAIL: restarted by the pool or the orchestrator

    def _start_liveness(self) -> None:
        self._liveness_stop = threading.Event()
        thread = threading.Thread(target=self._liveness_loop, args=(self._liveness_stop,), daemon=True, name="liveness")
        thread.start()

    def _stop_liveness(self) -> None:
        if self._liveness_stop is not None:
            self._liveness_stop.set()

    # -- orphaned horses ----------------------------------------------------------------------

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()  # type: ignore[no-untyped-call]  # rq leaves it untyped
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            logger.warning("could not tie the work-horse's life to its worker (not Linux?)")

    def fork_work_horse(self, *args: Any, **kwargs: Any) -> Any:
        with process_tree.forking_horse():  # the horse runs its job on our connection: it keeps it
            return super().fork_work_horse(*args, **kwargs)  # type: ignore[misc]

    # -- Redis outages ------------------------------------------------------------------------

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        process_tree.install(self.connection)  # children die with us
        self._start_liveness()
        try:
            while True:
                crashed = False
                try:
                    worked = super().work(burst, *args, **kwargs)
                except (RedisConnectionError, RedisTimeoutError):
                    crashed, worked = True, False  # teardown itself could not reach Redis
                if not crashed and not self._redis_unreachable():
                    return worked
                if burst or rq_compat.stop_requested(self):
                    return worked
                self._wait_for_redis()
                self._start_again_under_a_new_name()
        finally:
            self._stop_liveness()

    def _redis_unreachable(self) -> bool:
        try:
            self.connection.ping()
            return False
        except RedisError:
            return True

    def _wait_for_redis(self) -> None:
        logger.error("worker %s lost Redis; waiting for it to come back", self.name)
        if wait_for_redis(self.connection, should_stop=lambda: rq_compat.stop_requested(self)):
            logger.warning("worker %s: Redis is back, resuming", self.name)

    def _start_again_under_a_new_name(self) -> None:
        # The old name's key expires by itself; what it was running is recovered as abandoned
        # and run again elsewhere, so a work-horse still running it must not go on: stop it.
        horse_pid = getattr(self, "horse_pid", 0)  # forking workers only
        if horse_pid:
            try:
                os.kill(horse_pid, signal.SIGKILL)
                os.waitpid(horse_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.name = uuid.uuid4().hex
        rq_compat.set_stop_requested(self, False)
        rq_compat.forget_worker_state(self)  # a new worker key: its state must be written again
        self.scheduler = None


def wait_for_redis(connection: Any, should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Block until Redis answers (back-off 0.5 s → 5 s); False if `should_stop` said so first."""
    delay = 0.5
    while True:
        try:
            connection.ping()
            return True
        except RedisError:
            if should_stop():
                return False
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
