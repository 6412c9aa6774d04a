"""Worker behaviour that RQ 3.0 lacks: fast death detection, no orphaned horses, surviving Redis outages.

- Liveness: a thread keeps the worker's Redis key alive with a short TTL (LIVENESS_TTL), so
  the key of a SIGKILLed worker is gone within seconds, not RQ's 7 to 14 minutes; the
  abandoned-job sweeper (recovery.py) requeues what such a worker was running.
- No orphaned horse: a work-horse asks the kernel to kill it when its parent dies, so a job
  re-run after its worker's death never overlaps a copy still running.
- Redis outages: where RQ's work loop logs "unhandled exception, quitting" and exits, the
  worker waits for Redis to answer again and resumes under a new name (its old registration,
  and any job it was running, then read as abandoned and are recovered like a crash).
- A stalled work loop: the liveness thread beats whatever the main thread does, so a work loop
  stuck outside any job (a lock, a socket that never answers, a bug) would keep its worker
  registered, alive and idle forever while its queue waits (seed 34 of the chaos campaign). The
  thread watches the loop too: when its heartbeats stop for longer than the stall limit
  (settings.QUEUEING_WORK_LOOP_STALL_SECONDS; an in-process job gets its own timeout on top), it
  writes every thread's stack to stderr and ends the process; its pool or orchestrator starts a
  fresh one, and what it was running is recovered as abandoned.
- Death seen on the same host: a worker records which process it is (kernel boot, pid
  namespace, pid, start time). A sweep running in the same kernel and pid namespace reads that
  process's state itself, so a worker killed there (the OOM killer, a crash, a killed pool) is
  dead at once, not when its key expires. Elsewhere the key's TTL decides, as before: a process
  in another container or on another host is never judged from here.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import keys, process_tree, rq_compat

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object

logger = logging.getLogger(__name__)

# A dead worker's job is re-run once its key is gone and a sweep runs: at most LIVENESS_TTL plus a
# sweep period (the scheduler's 2 s pass) after the death, inside the 30 s the docs promise. Four
# beats fit in one lease, so a living worker loses its key only when frozen, not when busy.
LIVENESS_TTL = 12  # seconds a dead worker's key outlives it
LIVENESS_INTERVAL = 3  # seconds between two beats of the liveness thread
# Three times the longest gap between two heartbeats of a healthy work loop: an idle BLPOP
# (10 s, workers.py), a forking worker's horse monitoring (30 s), Redis outages (2 s, workers.py).
DEFAULT_STALL_LIMIT = 90
EX_SOFTWARE = 70  # the exit status of a worker that left because its work loop stalled
# The field of RQ's worker hash that says which process the worker is (see process_identity).
PROCESS_FIELD = "egoejo_process"


def running_key(job_id: str) -> str:
    """Set by a worker's liveness thread while it runs the job: a claim that outlives a flush of
    Redis (the thread writes it again within LIVENESS_INTERVAL), read by the outbox reconciler.
    Dropped when the job ends here, so that a job lost after its run (a fenced copy, a flush at
    its end) is not held back for the claim's TTL; a beat racing the end leaves it LIVENESS_TTL."""
    return keys.running(job_id)


class LivenessMixin(_WorkerBase):
    _liveness_stop: threading.Event | None = None
    fenced_job_id: str | None = None  # the job whose horse the fence killed
    _loop_moved = 0.0  # monotonic time of the work loop's last heartbeat (or attempt at one)
    _stall_limit = float(DEFAULT_STALL_LIMIT)  # read from the settings once, when the thread starts
    claimed_job_id: str | None = None  # the job this worker's liveness thread claimed (running_key)
    _lease_renewed_at: float | None = None  # monotonic time of the last beat that reached Redis
    _liveness_pid = 0  # the process whose liveness thread renews the lease
    # Set by an in-process worker while its main thread runs a job: that job's timeout (RQ's
    # death penalty ends it then) is added to the stall limit; None = no timeout, no limit.
    in_process_job_timeout: float | None = 0.0

    # -- liveness ---------------------------------------------------------------------------

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        self._loop_moved = time.monotonic()  # an attempt counts: a Redis outage is no stall
        super().heartbeat(*args, **kwargs)

    def _liveness_loop(self, stop: threading.Event) -> None:
        last_beat = last_tick = time.monotonic()
        while not stop.wait(LIVENESS_INTERVAL):
            tick = time.monotonic()
            if tick - last_tick > 2 * LIVENESS_INTERVAL:
                # This thread was frozen too (SIGSTOP, a paused container): the whole process
                # was, so the work loop's silence meanwhile is no stall of its own.
                self._loop_moved += tick - last_tick - LIVENESS_INTERVAL
            last_tick = tick
            if tick - last_beat > LIVENESS_TTL:
                self._lease_lapsed(tick - last_beat)
            self._check_work_loop()
            running = getattr(self, "running_job_id", None)
            try:
                with self.connection.pipeline(transaction=False) as pipe:
                    pipe.expire(self.key, LIVENESS_TTL)
                    pipe.expire(self.executions_key, LIVENESS_TTL)
                    if running:
                        # A FLUSHDB or a failover that lost the job's hash must not make the
                        # reconciler send a second copy while this one runs (outbox.py).
                        self.claimed_job_id = running  # the work loop drops the claim at the job's end
                        pipe.set(running_key(running), self.name, ex=LIVENESS_TTL)
                    pipe.execute()
                last_beat = self._lease_renewed_at = time.monotonic()
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

    def fence_if_lapsed(self) -> None:
        """The fence, from the thread about to record its job's success. A process thawed after
        its lease runs all its threads again at once, and an in-process worker's main thread could
        record its copy's success before the liveness thread saw the gap (the eighth goal run's
        seed 33: a welcome mail recorded as succeeding twice, 3.7 s apart, the effect deduplicated).
        A work-horse has no liveness thread of its own: its worker's thread fences it."""
        renewed = self._lease_renewed_at
        if renewed is None or os.getpid() != self._liveness_pid:
            return
        silent = time.monotonic() - renewed
        if silent > LIVENESS_TTL:
            self._lease_lapsed(silent)

    def _check_work_loop(self) -> None:
        limit = self._stall_limit
        job_timeout = self.in_process_job_timeout
        if job_timeout is None:
            return  # an in-process job without a timeout: nothing bounds the loop's silence
        stalled_for = time.monotonic() - self._loop_moved
        if stalled_for <= limit + job_timeout:
            return
        message = (
            f"worker {self.name}: its work loop has not moved for {stalled_for:.0f} s "
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

    def _start_liveness(self) -> None:
        from django.conf import settings

        self._stall_limit = float(getattr(settings, "QUEUEING_WORK_LOOP_STALL_SECONDS", DEFAULT_STALL_LIMIT))
        self._loop_moved = self._lease_renewed_at = time.monotonic()
        self._liveness_pid = os.getpid()
        self._liveness_stop = threading.Event()
        thread = threading.Thread(target=self._liveness_loop, args=(self._liveness_stop,), daemon=True, name="liveness")
        thread.start()

    def _stop_liveness(self) -> None:
        if self._liveness_stop is not None:
            self._liveness_stop.set()

    def register_birth(self) -> None:
        super().register_birth()  # type: ignore[no-untyped-call]  # rq leaves it untyped
        identity = process_identity()
        if identity is not None:
            self.connection.hset(self.key, PROCESS_FIELD, identity)

    # -- orphaned horses ----------------------------------------------------------------------

    def fork_work_horse(self, *args: Any, **kwargs: Any) -> Any:
        # The horse dies with us like every child (process_tree's fork hook, installed in work()).
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

        def should_stop() -> bool:
            self._loop_moved = time.monotonic()  # waiting for Redis is no stall
            return rq_compat.stop_requested(self)

        if wait_for_redis(self.connection, should_stop=should_stop):
            logger.warning("worker %s: Redis is back, resuming", self.name)

    def _start_again_under_a_new_name(self) -> None:
        # What the old name was running is recovered as abandoned and run again elsewhere, so a
        # work-horse still running it must not go on: stop it. Then the old name is retired at
        # once: left to expire, its key kept that job from the sweeps for up to LIVENESS_TTL.
        horse_pid = getattr(self, "horse_pid", 0)  # forking workers only
        if horse_pid:
            try:
                os.kill(horse_pid, signal.SIGKILL)
                os.waitpid(horse_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        try:
            rq_compat.retire_worker(self)
            rq_compat.stop_scheduler_child(self)  # the resumed work loop starts one under the new name
        except RedisError:
            pass  # gone again: the old key and locks expire by themselves
        self.name = uuid.uuid4().hex
        rq_compat.set_stop_requested(self, False)
        rq_compat.forget_worker_state(self)  # a new worker key: its state must be written again
        self.scheduler = None


def wait_for_redis(connection: Any, should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Block until Redis answers (a ping every 0.5 s, then every 1 s); False if `should_stop` said so first."""
    delay = 0.5
    while True:
        try:
            connection.ping()
            return True
        except RedisError:
            if should_stop():
                return False
            time.sleep(delay)
            # Capped at 1 s: a ping a second per process costs Redis nothing, and every second
            # waited past its return delays the jobs of every worker (a restart takes 3 s).
            delay = min(delay * 2, 1.0)


# -- death seen on the same host ------------------------------------------------------------

_scopes: dict[int, str | None] = {}  # per process: a forked child has its own entry


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of `pid` from /proc; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 (state) on
    return fields[0], int(fields[19])  # field 22: starttime


def _host_scope() -> str | None:
    """The kernel boot and pid namespace this process lives in: where a pid names one process.
    None where /proc cannot tell (not Linux, or a /proc of another pid namespace)."""
    pid = os.getpid()
    if pid not in _scopes:
        try:
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            namespace = os.readlink("/proc/self/ns/pid")
            own = int(Path("/proc/self/stat").read_text().split(maxsplit=1)[0]) == pid
            _scopes[pid] = f"{boot}/{namespace}" if own else None
        except (OSError, ValueError):
            _scopes[pid] = None
    return _scopes[pid]


def process_identity(pid: int | None = None) -> str | None:
    """Which process `pid` (default: this one) is, in a form a sweep on any host can read:
    `<boot id>/<pid namespace>/<pid>/<start time>`; None where /proc cannot tell."""
    pid = pid or os.getpid()
    scope, stat = _host_scope(), _proc_stat(pid)
    if scope is None or stat is None:
        return None
    return f"{scope}/{pid}/{stat[1]}"


def gone_here(identity: str | None) -> bool:
    """True only if `identity` names a process of this kernel boot and pid namespace that has
    died: no such pid, a zombie, or a newer process under its pid. A process anywhere else, or
    one that cannot be read, is not ours to judge (False). A stopped process (SIGSTOP, a frozen
    cgroup) is alive: its lease, and the fence, decide."""
    scope = _host_scope()
    if not identity or scope is None:
        return False
    where, _, rest = identity.rpartition("/")  # rest: the start time
    where, _, pid_text = where.rpartition("/")
    if where != scope:
        return False
    try:
        pid, started = int(pid_text), int(rest)
    except ValueError:
        return False
    stat = _proc_stat(pid)
    return stat is None or stat[0] in ("Z", "X") or stat[1] != started
