"""Lease: the liveness thread that keeps a worker's key alive, claims its running job, and the fence.

- Beats: every LIVENESS_INTERVAL the thread renews the worker's key and executions key with
  LIVENESS_TTL, so a SIGKILLed worker's key is gone within seconds, not RQ's 7 to 14 minutes;
  the abandoned-job sweeper (recovery.py) requeues what such a worker was running.
- The claim: while a job runs, each beat also writes `liveness.keys.running(job)`, read by the
  outbox reconciler; dropped when the job ends here (tests/test_declared_jobs.py).
- The fence: a process stopped (SIGSTOP, a frozen container or VM) past its lease had its job
  requeued elsewhere. When it thaws, its copy must not go on: the work-horse is killed, and an
  in-process worker leaves the process at once (tests/faults/test_lease_fence.py). The thread
  about to record a success checks the lease too (`fence_if_lapsed`).
- On every tick the thread also asks the StallWatch whether the work loop has stalled.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from redis.exceptions import RedisError

from .. import keys
from ..liveness import LIVENESS_INTERVAL, LIVENESS_TTL
from .stall_watch import StallWatch

logger = logging.getLogger(__name__)


class Lease:
    def __init__(self, worker: Any, stall_watch: StallWatch) -> None:
        self.worker = worker
        self.stall_watch = stall_watch
        self.running_job_id: str | None = None  # read by this thread's claim and fence
        self.fenced_job_id: str | None = None  # the job whose horse the fence killed
        self.claimed_job_id: str | None = None  # the job this thread claimed (keys.running)
        self.renewed_at: float | None = None  # monotonic time of the last beat that reached Redis
        self.pid = 0  # the process whose thread renews the lease
        self._stop: threading.Event | None = None

    def start(self) -> None:
        self.stall_watch.start()
        self.renewed_at = time.monotonic()
        self.pid = os.getpid()
        self._stop = threading.Event()
        thread = threading.Thread(target=self._beat, args=(self._stop,), daemon=True, name="liveness")
        thread.start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def job_started(self, job_id: str) -> None:
        self.running_job_id = job_id
        self.fenced_job_id = None  # a fence that fired after its job had ended concerns no later job

    def job_ended(self, job_id: str) -> None:
        self.running_job_id = None
        if self.claimed_job_id == job_id:  # jobs longer than a beat only
            self.claimed_job_id = None
            try:
                self.worker.connection.delete(keys.running(job_id))
            except RedisError:
                pass  # it expires within LIVENESS_TTL

    def fenced(self, job_id: str) -> bool:
        """True (once) when the fence killed this job's horse: the job is not ours any more."""
        if job_id != self.fenced_job_id:
            return False
        self.fenced_job_id = None
        return True

    def _beat(self, stop: threading.Event) -> None:
        worker = self.worker
        last_beat = last_tick = time.monotonic()
        while not stop.wait(LIVENESS_INTERVAL):
            tick = time.monotonic()
            if tick - last_tick > 2 * LIVENESS_INTERVAL:
                self.stall_watch.excuse(tick - last_tick - LIVENESS_INTERVAL)
            last_tick = tick
            if tick - last_beat > LIVENESS_TTL:
                self.lapsed(tick - last_beat)
            self.stall_watch.check()
            running = self.running_job_id
            try:
                with worker.connection.pipeline(transaction=False) as pipe:
                    pipe.expire(worker.key, LIVENESS_TTL)
                    pipe.expire(worker.executions_key, LIVENESS_TTL)
                    if running:
                        # A FLUSHDB or a failover that lost the job's hash must not make the
                        # reconciler send a second copy while this one runs (outbox.py).
                        self.claimed_job_id = running  # the work loop drops the claim at the job's end
                        pipe.set(keys.running(running), worker.name, ex=LIVENESS_TTL)
                    pipe.execute()
                last_beat = self.renewed_at = time.monotonic()
            except RedisError:
                pass  # the work loop notices outages and deals with them (OutageResume)

    def lapsed(self, silent_for: float) -> None:
        """The fence: this process was stopped longer than its lease, so its key expired and its
        job was requeued to another worker. The work-horse is killed; an in-process worker, whose
        job runs on the main thread, leaves the process at once (its pool, or the orchestrator,
        starts a fresh one). What the job did before the pause stands; its idempotence covers the rest."""
        worker = self.worker
        horse_pid = worker.horse_pid  # 0 but in a forking worker running a job
        if not (horse_pid or self.running_job_id):
            return  # nothing was running: the next heartbeat registers the worker again
        logger.error("worker %s was silent %.0f s, past its %d s lease: its job runs elsewhere now; stopping this copy",
                     worker.name, silent_for, LIVENESS_TTL)
        if horse_pid:
            # The horse's death is then no failure of the job: the worker hands it back (fenced()).
            self.fenced_job_id = self.running_job_id
            try:
                os.kill(horse_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            os._exit(75)  # EX_TEMPFAIL: restarted by the pool or the orchestrator

    def fence_if_lapsed(self) -> None:
        """The fence, from the thread about to record its job's success. A process thawed after
        its lease runs all its threads again at once, and an in-process worker's main thread could
        record its copy's success before the liveness thread saw the gap (a success recorded
        twice: tests/faults/test_lease_fence.py). A work-horse has no liveness thread of its own:
        its worker's thread fences it."""
        renewed = self.renewed_at
        if renewed is None or os.getpid() != self.pid:
            return
        silent = time.monotonic() - renewed
        if silent > LIVENESS_TTL:
            self.lapsed(silent)
