"""What a worker's liveness is made of: its lease's timings and keys, waiting for Redis, process identity.

The worker's collaborators (app/queueing/worker/) do the work with these; the sweeps
(recovery.py) and the outbox reconciler (outbox.py) read the same keys.

- The lease: a worker's key lives LIVENESS_TTL and its liveness thread renews it every
  LIVENESS_INTERVAL (worker/lease.py), so the key of a SIGKILLed worker is gone within seconds,
  not RQ's 7 to 14 minutes; the abandoned-job sweeper requeues what such a worker was running.
  While a job runs the thread claims it (`keys.running`).
- A stalled work loop (worker/stall_watch.py): past DEFAULT_STALL_LIMIT (or
  settings.QUEUEING_WORK_LOOP_STALL_SECONDS) without a heartbeat, a worker leaves with EX_SOFTWARE.
- Redis outages: `wait_for_redis`, for workers (worker/outage_resume.py) and rqscheduler.
- Stops: a process asked to stop, with no job running, leaves within STOP_GRACE even when its
  teardown hangs on a Redis or database that does not answer (`leave_stopped`; for workers
  worker/stop_deadline.py, for rqscheduler its command): what the teardown would have written
  (the worker's death, the scheduler's lock) expires by itself, and the sweeps recover the rest
  (tests/faults/test_stops.py).
- Death seen on the same host: a worker records which process it is (kernel boot, pid
  namespace, pid, start time) in its hash's PROCESS_FIELD. A sweep running in the same kernel
  and pid namespace reads that process's state itself, so a worker killed there (the OOM killer,
  a crash, a killed pool) is dead at once, not when its key expires. Elsewhere the key's TTL
  decides, as before: a process in another container or on another host is never judged from here.
  A worker stopped there (SIGSTOP, Ctrl-Z) mid-job, seen so by two sweeps FROZEN_SECONDS apart,
  is killed by the sweep and its job taken back (`end_stopped`; recovery._worker_alive): it
  cannot run its job, and the lease would keep the job from every other worker for 12 s.
- No orphaned horse: a work-horse asks the kernel to kill it when its parent dies
  (process_tree.py), so a job re-run after its worker's death never overlaps a copy still running.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

# A dead worker's job is re-run once its key is gone and a sweep runs: at most LIVENESS_TTL plus a
# sweep period (the scheduler's 2 s pass) after the death (a death seen on the host: at once).
# Twelve beats fit in one lease, so a living worker loses its key only when frozen, not when busy
# or behind a Redis restart. A beat a second also bounds how soon a running job whose hash Redis
# lost is claimed again, and so how soon the reconciler may re-send a lost one (outbox.MISSING_AFTER).
LIVENESS_TTL = 12  # seconds a dead worker's key outlives it
LIVENESS_INTERVAL = 1  # seconds between two beats of the liveness thread
# Three times the longest gap between two heartbeats of a healthy work loop: an idle BLPOP
# (10 s, workers.py), a forking worker's horse monitoring (30 s), Redis outages (2 s, workers.py).
DEFAULT_STALL_LIMIT = 90
EX_SOFTWARE = 70  # the exit status of a worker that left because its work loop stalled
# The field of RQ's worker hash that says which process the worker is (see process_identity).
PROCESS_FIELD = "egoejo_process"
# Seconds a stopping process's own teardown (register its death, release its locks) may take
# before it leaves without it: with Redis up that teardown takes milliseconds; a SIGTERM is
# honoured within 10 s (issue #33), and the polling below adds at most a quarter of a second.
STOP_GRACE = 5.0
STOP_POLL = 0.25  # seconds between two looks of a stop's watcher


def leave_stopped(who: str, waited: float) -> None:
    """End this process now, with status 0 (a stop asked for and honoured), from any thread.

    The message, and the stacks of its threads (where the teardown is stuck), go straight to
    stderr's file descriptor: the main thread, stuck on a socket, may hold a logging lock. The
    children die with the process (process_tree)."""
    message = (
        f"{who}: asked to stop {waited:.1f} s ago and its teardown has not ended (Redis or the "
        f"database does not answer): leaving without it; its keys expire by themselves; the "
        f"stacks of its threads follow\n"
    )
    try:
        os.write(sys.stderr.fileno(), message.encode())
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    finally:
        os._exit(0)


def leave_stopped_after(who: str, grace: float = STOP_GRACE) -> threading.Timer:
    """Once a stop was asked and nothing is left to finish: `leave_stopped` in `grace` seconds
    unless the process has exited by then (a daemon timer)."""
    timer = threading.Timer(grace, leave_stopped, args=(who, grace))
    timer.daemon = True
    timer.start()
    return timer
# The field that names a pool member's pool, `<host>:<pool pid>` (process_identity; work_in_sight groups by it).
POOL_FIELD = "egoejo_pool"



def wait_for_redis(connection: Any, should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Block until Redis answers (a ping every 0.5 s, then every 1 s); False as soon as
    `should_stop` says so (asked before each ping and every STOP_POLL seconds of a wait)."""
    delay = 0.5
    while True:
        if should_stop():
            return False
        try:
            connection.ping()
            return True
        except RedisError:
            # The wait in small steps: a stop asked meanwhile ends it at once.
            until = time.monotonic() + delay
            while (left := until - time.monotonic()) > 0:
                if should_stop():
                    return False
                time.sleep(min(left, STOP_POLL))
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


def _here(identity: str | None) -> tuple[int, int] | None:
    """(pid, start time) if `identity` names a process of this kernel boot and pid namespace."""
    scope = _host_scope()
    if not identity or scope is None:
        return None
    where, _, rest = identity.rpartition("/")  # rest: the start time
    where, _, pid_text = where.rpartition("/")
    if where != scope:
        return None
    try:
        return int(pid_text), int(rest)
    except ValueError:
        return None


def gone_here(identity: str | None) -> bool:
    """True only if `identity` names a process of this kernel boot and pid namespace that has
    died: no such pid, a zombie, or a newer process under its pid. A process anywhere else, or
    one that cannot be read, is not ours to judge (False). A stopped process is alive here
    (`stopped_here` tells it apart)."""
    here = _here(identity)
    if here is None:
        return False
    stat = _proc_stat(here[0])
    return stat is None or stat[0] in ("Z", "X") or stat[1] != here[1]


def _stopped(here: tuple[int, int]) -> bool:
    stat = _proc_stat(here[0])
    return stat is not None and stat[0] == "T" and stat[1] == here[1]


def stopped_here(identity: str | None) -> bool:
    """True only if `identity` names a process of this kernel boot and pid namespace stopped by a
    signal (SIGSTOP, SIGTSTP: state T). Not a traced process (a debugger's stop, state t), nor a
    frozen cgroup (`docker pause`): those are left to the lease."""
    here = _here(identity)
    return here is not None and _stopped(here)


def end_stopped(identity: str | None) -> bool:
    """SIGKILL the stopped process `identity` names, read again first; True if sent. A stopped
    worker cannot run its job, and thawed it would run a copy of a job already running
    elsewhere: killed, it never resumes (a forked horse dies with it, process_tree.py)."""
    here = _here(identity)
    if here is None or not _stopped(here):
        return False
    try:
        os.kill(here[0], signal.SIGKILL)
    except OSError:
        return False
    return True
