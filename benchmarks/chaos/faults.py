"""Seeded fault schedules, their injection into a ChaosStack, and what each fault left to watch.

Every fault kind the campaign knows is in KINDS; a schedule holds each kind at least once (when
long enough), the rest drawn at random, at random moments of the load. Injection only uses what
an operator or the machine could do: signals, redis-cli-like commands, SQL, the SMTP server's
answers, a lock held in the database, the web host's clock.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from app.queueing.liveness import LIVENESS_TTL

from . import job_state
from .stack import ChaosStack, alive, children, descendants, faketime_available

logger = logging.getLogger(__name__)

LEASE = LIVENESS_TTL  # the workers' lease
STOP_SECONDS = LEASE + 6  # a SIGSTOP longer than the lease: the job is re-run elsewhere meanwhile
SLOW_REQUEST_SECONDS = 15  # longer than the reconciler's MIN_AGE (2 s), a second sighting and a scheduler pass
CLOCK_OFFSET = "-15s"  # the web host's clock behind the scheduler's by more than MIN_AGE
CLOCK_SECONDS = 20
REDIS_DOWN_SECONDS = 3  # a killed redis-server is started again on its AOF this much later
CLIENT_PAUSE_SECONDS = 4  # CLIENT PAUSE ... ALL: no client is served meanwhile

KINDS = (
    "kill_web_master", "kill_web_worker", "kill_pool_parent", "kill_pool_child", "kill_images_worker",
    "kill_horse", "kill_rq_scheduler_child", "kill_scheduler", "sigstop_worker",
    "redis_restart", "redis_flushdb", "redis_client_pause", "pg_terminate",
    "smtp_421", "smtp_451", "smtp_550", "smtp_drop", "smtp_drop_after_store",
    "slow_request", "web_clock_offset",
)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load starts
    kind: str


def schedule(seed: int, count: int, duration: float, among: tuple[str, ...] = KINDS) -> list[Fault]:
    """`count` faults at random moments of `duration` seconds; each kind at least once when count allows."""
    rng = random.Random(seed)
    kinds = list(among) if count >= len(among) else rng.sample(among, count)
    kinds += [rng.choice(among) for _ in range(count - len(kinds))]
    rng.shuffle(kinds)
    times = sorted(rng.uniform(1.0, duration) for _ in kinds)
    return [Fault(at, kind) for at, kind in zip(times, kinds, strict=True)]


@dataclass
class Abandoned:
    """A job whose worker was killed (or stopped) while running it: when did it run again?"""

    job_id: str
    kind: str
    at: float  # wall-clock time of the fault
    dead_workers: set[str]
    rerun_after: float | None = None  # seconds from the fault to its next start
    finished_before: bool = False  # it had ended before the fault: not abandoned after all
    # Where Redis held it 10, 20, 30… s after the fault while it had not run again: what a slow
    # re-run waited in (the seventh goal run's seed 38 waited 50 s in a state nobody recorded).
    waiting_in: list[str] = field(default_factory=list)


@dataclass
class FaultLog:
    injected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # no target at that moment
    abandoned: list[Abandoned] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (wall time, kind, detail)


def _parse_rq_time(value: bytes | None) -> float | None:
    if not value:
        return None
    text = value.decode()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


class Injector:
    def __init__(self, stack: ChaosStack, seed: int) -> None:
        self.stack = stack
        self.rng = random.Random(seed * 7919 + 1)
        self.log = FaultLog()
        self._timers: list[threading.Thread] = []
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch_abandoned, daemon=True, name="abandoned-watch")
        self._watcher.start()

    # -- helpers ------------------------------------------------------------------------------

    def _later(self, seconds: float, action: Any) -> None:
        def run() -> None:
            time.sleep(seconds)
            try:
                action()
            except Exception as exc:  # noqa: BLE001
                logger.warning("chaos: undoing a fault failed: %s", exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._timers.append(thread)

    def wait_undone(self) -> None:
        for thread in self._timers:
            thread.join()

    def _scheduler_pids(self) -> set[int]:
        """Pids of RQ's scheduler children (each registers its pid under rq:scheduler:<name>)."""
        try:
            client = self.stack.redis_client()
            pids = set()
            for key in client.scan_iter("rq:scheduler:*"):
                if client.type(key) == b"hash":
                    pid = client.hget(key, "pid")
                    if pid and pid.isdigit():
                        pids.add(int(pid))
            return {pid for pid in pids if alive(pid)}
        except redis.RedisError:
            return set()

    def _scheduler_children(self) -> set[int]:
        """RQ's scheduler children: every child of a pool member (they fork nothing else), and a
        child of the images worker that RQ registered as a scheduler or that has lived > 3 s (a
        horse for these small images lives a fraction of a second)."""
        found: set[int] = set()
        for member in self._pool_members():
            found.update(children(member))
        registered = self._scheduler_pids()
        for images in self._images_workers():
            for child in children(images):
                if child in registered or age(child) > 3:
                    found.add(child)
        return found

    def _busy_target(self, candidates: Any, seconds: float = 6) -> int | None:
        """A process of `candidates()` whose worker (itself or a descendant) runs a job, waiting
        up to `seconds` for one; else any of them: a kill should usually abandon a job."""
        deadline = time.monotonic() + seconds
        pids: list[int] = []
        while time.monotonic() < deadline:
            pids = candidates()
            busy = [p for p in pids if self._running_jobs({p, *descendants(p)})[1]]
            if busy:
                return self.rng.choice(busy)
            time.sleep(0.1)
        return self.rng.choice(pids) if pids else None

    def _workers_by_pid(self) -> dict[int, str]:
        client = self.stack.redis_client()
        out = {}
        for key in client.scan_iter("rq:worker:*"):
            if client.type(key) != b"hash":
                continue
            pid = client.hget(key, "pid")
            if pid and pid.isdigit():
                out[int(pid)] = key.decode().removeprefix("rq:worker:")
        return out

    def _running_jobs(self, pids: set[int]) -> tuple[set[str], list[str]]:
        """The worker names of `pids` and the jobs those workers are running now."""
        try:
            client = self.stack.redis_client()
            names = {name for pid, name in self._workers_by_pid().items() if pid in pids}
            jobs = []
            for key in client.scan_iter("rq:wip:*"):
                for member in client.zrange(key, 0, -1):
                    job_id = member.decode().split(":")[0]
                    worker, status = client.hmget(f"rq:job:{job_id}", "worker_name", "status")
                    # Running, not merely named: a job that failed a moment ago keeps its last
                    # worker's name while it waits its retry's backoff, which no kill lengthens.
                    if worker and worker.decode() in names and status == b"started":
                        jobs.append(job_id)
            return names, jobs
        except redis.RedisError:
            return set(), []

    def _note_abandoned(self, kind: str, pids: set[int]) -> None:
        names, jobs = self._running_jobs(pids)
        now = time.time()
        for job_id in jobs:
            self.log.abandoned.append(Abandoned(job_id, kind, now, names))

    def _kill(self, kind: str, pid: int | None, note_jobs: bool = True) -> None:
        if pid is None or not alive(pid):
            self.log.skipped[kind] += 1
            return
        tree = {pid, *descendants(pid)}
        if note_jobs:
            self._note_abandoned(kind, tree)
        try:
            signal_pid(pid, signal.SIGKILL)
        except ProcessLookupError:
            self.log.skipped[kind] += 1
            return
        self.log.injected[kind] += 1
        self.log.events.append((time.time(), kind, f"pid {pid}"))

    # -- the faults ---------------------------------------------------------------------------

    def inject(self, kind: str) -> None:
        getattr(self, kind)()

    def kill_web_master(self) -> None:
        self._kill("kill_web_master", self.stack.pid("web"), note_jobs=False)

    def _any(self, candidates: Any, seconds: float = 8) -> int | None:
        """One of `candidates()`, waiting up to `seconds` for there to be one (a restart may be under way)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = candidates()
            if pids:
                return self.rng.choice(sorted(pids))
            time.sleep(0.1)
        return None

    def kill_web_worker(self) -> None:
        def workers() -> list[int]:
            master = self.stack.pid("web")
            return children(master) if master else []

        self._kill("kill_web_worker", self._any(workers), note_jobs=False)

    def _one(self, name: str) -> list[int]:
        pid = self.stack.pid(name)
        return [pid] if pid else []

    def _images_workers(self) -> list[int]:
        return self._one("images") + self._one("images-2")

    def _pools(self) -> list[int]:
        return self._one("pool") + self._one("pool-2")

    def _pool_members(self) -> list[int]:
        return [member for pool in self._pools() for member in children(pool)]

    def kill_pool_parent(self) -> None:
        self._kill("kill_pool_parent", self._busy_target(self._pools))

    def kill_pool_child(self) -> None:
        self._kill("kill_pool_child", self._busy_target(self._pool_members))

    def kill_images_worker(self) -> None:
        self._kill("kill_images_worker", self._busy_target(self._images_workers))

    def kill_horse(self) -> None:
        deadline = time.monotonic() + 8  # a horse lives while an image job runs: wait for one
        while time.monotonic() < deadline:
            scheduler_children = self._scheduler_children()
            horses = [p for worker in self._images_workers() for p in children(worker) if p not in scheduler_children]
            if horses:
                self._kill("kill_horse", self.rng.choice(horses))
                return
            time.sleep(0.05)
        self.log.skipped["kill_horse"] += 1

    def kill_rq_scheduler_child(self) -> None:
        self._kill("kill_rq_scheduler_child", self._any(self._scheduler_children), note_jobs=False)

    def kill_scheduler(self) -> None:
        self._kill("kill_scheduler", self.stack.pid("scheduler"), note_jobs=False)

    def sigstop_worker(self) -> None:
        pid = self._busy_target(lambda: self._pool_members() + self._images_workers())
        if pid is None:
            self.log.skipped["sigstop_worker"] += 1
            return
        tree = [pid, *descendants(pid)]
        self._note_abandoned("sigstop_worker", set(tree))
        paused = []
        try:
            for p in tree:
                try:
                    self.stack.pause(p)
                except ProcessLookupError:
                    continue  # a horse or child that ended since the listing
                paused.append(p)
        finally:
            # Always undone: a child that died between the listing and its SIGSTOP raised here
            # before the resume was set, and left its worker frozen to the end (the sixth goal
            # run's seed 23, counted as "not injected" while the worker never ran again).
            self._later(STOP_SECONDS, lambda: [self.stack.resume(p) for p in paused])
        if not paused:
            self.log.skipped["sigstop_worker"] += 1
            return
        self.log.injected["sigstop_worker"] += 1
        self.log.events.append((time.time(), "sigstop_worker", f"pid {pid} for {STOP_SECONDS} s"))

    def redis_restart(self) -> None:
        self._note_abandoned("redis_restart", set())  # nothing is abandoned by its worker; kept for symmetry
        self.stack.redis.kill()
        self.log.injected["redis_restart"] += 1
        self.log.events.append((time.time(), "redis_restart", f"killed, back in {REDIS_DOWN_SECONDS} s with its AOF"))
        self._later(REDIS_DOWN_SECONDS, self.stack.redis.start)

    def redis_flushdb(self) -> None:
        try:
            self.stack.redis_client().flushdb()
        except redis.RedisError:
            self.log.skipped["redis_flushdb"] += 1
            return
        self.log.injected["redis_flushdb"] += 1
        self.log.events.append((time.time(), "redis_flushdb", ""))

    def redis_client_pause(self) -> None:
        try:
            self.stack.redis_client().execute_command("CLIENT", "PAUSE", str(CLIENT_PAUSE_SECONDS * 1000), "ALL")
        except redis.RedisError:
            self.log.skipped["redis_client_pause"] += 1
            return
        self.log.injected["redis_client_pause"] += 1
        self.log.events.append((time.time(), "redis_client_pause", f"{CLIENT_PAUSE_SECONDS} s"))

    def pg_terminate(self) -> None:
        try:
            rows = self.stack.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.stack.database],
            )
        except psycopg.Error:
            self.log.skipped["pg_terminate"] += 1
            return
        self.log.injected["pg_terminate"] += 1
        self.log.events.append((time.time(), "pg_terminate", f"{len(rows)} backends"))

    def _smtp(self, kind: str, fault: str) -> None:
        self.stack.sink.script_faults(fault)
        self.log.injected[kind] += 1
        self.log.events.append((time.time(), kind, "next mail transaction"))

    def smtp_421(self) -> None:
        self._smtp("smtp_421", "421")

    def smtp_451(self) -> None:
        self._smtp("smtp_451", "451")

    def smtp_550(self) -> None:
        self._smtp("smtp_550", "550")

    def smtp_drop(self) -> None:
        self._smtp("smtp_drop", "drop")

    def smtp_drop_after_store(self) -> None:
        self._smtp("smtp_drop_after_store", "drop_after_store")

    def slow_request(self) -> None:
        """Requests that commit their job, then wait > MIN_AGE for the session's save before answering."""
        ready = threading.Event()

        def hold() -> None:
            try:
                with psycopg.connect(self.stack.database_url) as conn:
                    conn.execute("LOCK TABLE django_session IN EXCLUSIVE MODE")
                    ready.set()
                    time.sleep(SLOW_REQUEST_SECONDS)
                    conn.rollback()
            except psycopg.Error as exc:
                logger.info("chaos: the session lock ended early: %s", exc)
            finally:
                ready.set()

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        self._timers.append(thread)
        ready.wait(5)
        self.log.injected["slow_request"] += 1
        self.log.events.append((time.time(), "slow_request", f"django_session locked {SLOW_REQUEST_SECONDS} s"))

    def web_clock_offset(self) -> None:
        if not faketime_available():
            self.log.skipped["web_clock_offset"] += 1
            return
        self.stack.clock_file.write_text(f"{CLOCK_OFFSET}\n")
        self.log.injected["web_clock_offset"] += 1
        self.log.events.append((time.time(), "web_clock_offset", f"{CLOCK_OFFSET} for {CLOCK_SECONDS} s"))
        self._later(CLOCK_SECONDS, lambda: self.stack.clock_file.write_text("+0\n"))

    # -- re-runs ------------------------------------------------------------------------------

    def _watch_abandoned(self) -> None:
        while not self._watch_stop.wait(0.25):
            waiting = [a for a in self.log.abandoned if a.rerun_after is None and not a.finished_before]
            if not waiting:
                continue
            try:
                client = self.stack.redis_client()
                for item in waiting:
                    status, worker, started, ended = client.hmget(
                        f"rq:job:{item.job_id}", "status", "worker_name", "started_at", "ended_at"
                    )
                    started_at, ended_at = _parse_rq_time(started), _parse_rq_time(ended)
                    if ended_at is not None and ended_at < item.at and status in (b"finished", b"failed"):
                        item.finished_before = True
                    elif started_at is not None and started_at > item.at:
                        item.rerun_after = started_at - item.at
                    elif status in (b"finished", b"failed") and ended_at is not None and ended_at > item.at:
                        item.rerun_after = ended_at - item.at
                    elif time.time() - item.at >= 10 * (len(item.waiting_in) + 1):
                        item.waiting_in.append(f"+{time.time() - item.at:.0f} s: {job_state.describe(client, item.job_id)}")
            except redis.RedisError:
                continue

    def stop_watching(self) -> None:
        self._watch_stop.set()
        self._watcher.join(timeout=5)


def age(pid: int) -> float:
    """Seconds since `pid` started (0 if gone)."""
    import os

    try:
        start_ticks = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def signal_pid(pid: int, sig: int) -> None:
    import os

    os.kill(pid, sig)
