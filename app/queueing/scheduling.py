"""The scheduler process: recurring jobs, due retries, recovery sweeps, the outbox, the purge.

One `manage.py rqscheduler` process holds rq-scheduler's lock at a time; each pass (every
`--interval` seconds) it makes the registered schedules equal to the declared ones (restoring
them after Redis lost its data), enqueues what is due, fires due retries when no worker's RQ
scheduler does, sweeps abandoned jobs, reconciles the outbox and, hourly, purges ended rows.
Recurring jobs are declared with `@recurring(...)` beside their job and registered under stable
ids, so restarting the scheduler never adds a second copy.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.db import close_old_connections
from django_rq.queues import DjangoScheduler
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq_scheduler import Scheduler

from . import outbox, registry, rq_compat
from .jobclass import QueueingJob
from .recovery import sweep

logger = logging.getLogger(__name__)

SCHEDULE_ID_PREFIX = "schedule-"
SCHEDULER_ALIVE_KEY = "egoejo:scheduler:alive"
LOCK_SPARE_SECONDS = 3
RETRY_LOCK_OWNER = "egoejo-rqscheduler"
# A live RQ scheduler beats every second; a Redis pause or a busy host may hold it up a few.
SILENT_SCHEDULER_SECONDS = 10.0


# Deletes rq-scheduler's lock only if it still holds this process's token: a pass that outlived
# the lock must not free the lock of the scheduler that took over.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class ProjectScheduler(DjangoScheduler):
    job_class = QueueingJob
    _lock_token: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per queue: the RQ scheduler lock's holder and heartbeat last read, and when they were first read so.
        self._silent_holders: dict[str, tuple[tuple[str, bytes | None], float]] = {}

    def acquire_lock(self) -> bool:
        # Held for one pass only (rq-scheduler releases it at the pass's end), so its TTL only
        # matters when its holder dies: a scheduler restarted after a kill skipped its passes,
        # sweeps and re-sends included, until it expired (interval + 10 s in rq-scheduler). A pass
        # that outlives it may overlap the next scheduler's: every action of a pass is safe twice.
        self._lock_token = uuid.uuid4().hex
        acquired = bool(self.connection.set(self.scheduler_lock_key, self._lock_token, ex=int(self._interval) + LOCK_SPARE_SECONDS, nx=True))
        self._lock_acquired = acquired
        return acquired

    def remove_lock(self) -> None:
        if self._lock_acquired:
            self.connection.eval(_RELEASE, 1, self.scheduler_lock_key, self._lock_token)
            self._lock_acquired = False

    def successor(self) -> ProjectScheduler:
        """A fresh scheduler to run after a Redis outage cut this one's loop. A pass cut short
        could not release rq-scheduler's lock, and a Redis restarted from its AOF still holds it
        (its TTL is the interval plus 10 s): released here by this process's token, or the fresh
        loop would skip its passes, and with them the sweeps and re-sends, until it expired."""
        try:
            self.remove_lock()
        except RedisError:
            pass  # gone again: the lock expires by itself
        fresh = type(self)(queue_name=self.queue_name, interval=self._interval, connection=self.connection)
        fresh._silent_holders = self._silent_holders  # what was seen silent before the outage still counts
        return fresh

    def _fire_due_retries(self, queue_names: list[str]) -> None:
        """Move due retries and delayed jobs to their queues when no worker's RQ scheduler does it.

        RQ's scheduler lives in a child of one worker (--with-scheduler) and holds a lock per
        queue; the light-queue pool runs none, and a child can die (it does on a Redis error).
        Taking only the locks nobody holds keeps one scheduler per queue at a time.
        """
        # One owner name for every rqscheduler process: RQ's per-queue locks live 61 s, and a
        # scheduler killed between taking and releasing them held up every retry of the light
        # queues that long under a random name (the third goal run's seed 3: 30 s). Only one
        # rqscheduler passes at a time (rq-scheduler's lock), so its successor takes them over.
        scheduler = RQScheduler(queue_names, connection=self.connection, serializer=JSONSerializer, name=RETRY_LOCK_OWNER)
        self._free_locks_of_silent_schedulers(queue_names)
        if scheduler.acquire_locks(auto_start=False):  # type: ignore[no-untyped-call]  # rq leaves these untyped
            try:
                scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            finally:
                scheduler.release_locks()  # type: ignore[no-untyped-call]

    def _free_locks_of_silent_schedulers(self, queue_names: list[str]) -> None:
        """Release a queue's RQ scheduler lock whose holder stopped beating.

        A worker's scheduler child refreshes its locks and its `last_heartbeat` every second; one
        that died (with its worker, or on a Redis error) keeps its queues' locks for 61 s, and no
        retry of those queues fires meanwhile. Its heartbeat field unchanged for
        SILENT_SCHEDULER_SECONDS of this process's clock (no comparison across hosts' clocks), or
        its hash gone, the lock is released if it still names that holder (one atomic step), and
        this pass takes it. A holder that was only frozen finds its lock taken at its next beat
        and stops scheduling that queue, as RQ's own heartbeat does.
        """
        seen = self._silent_holders
        for name in queue_names:
            key = rq_compat.rq_scheduler_lock_key(name)
            raw = self.connection.get(key)
            holder = raw.decode() if raw is not None else None
            if holder is None or holder == RETRY_LOCK_OWNER:
                seen.pop(name, None)
                continue
            beat = self.connection.hget(rq_compat.rq_scheduler_key(holder), "last_heartbeat")
            previous = seen.get(name)
            if previous is None or previous[0] != (holder, beat):
                seen[name] = ((holder, beat), time.monotonic())
                continue
            silent_for = time.monotonic() - previous[1]
            if silent_for >= SILENT_SCHEDULER_SECONDS and self.connection.eval(_RELEASE, 1, key, holder):
                logger.warning("RQ scheduler %s held the lock of '%s' but was silent %.0f s: lock released", holder, name, silent_for)
                seen.pop(name, None)

    def heartbeat(self) -> None:
        super().heartbeat()
        # One well-known key for /healthz, instead of scanning rq-scheduler's per-name keys.
        self.connection.set(SCHEDULER_ALIVE_KEY, time.time(), ex=int(self._interval) + 10)

    def enqueue_jobs(self) -> list[Any]:
        # Runs only while this process holds rq-scheduler's lock, so a second scheduler
        # process neither enqueues a recurring job twice nor re-sends the outbox twice.
        try:
            ensure_schedules(self)
        except RedisError:
            logger.exception("could not check the recurring schedules")
        jobs = super().enqueue_jobs()
        names = list(registry.queues())
        try:
            sweep(self.connection, names)
            self._fire_due_retries(names)
        except RedisError:
            logger.exception("abandoned-job sweep failed")
        try:
            # A long-lived process: drop a database connection the server closed (a restart,
            # pg_terminate_backend), or every later pass fails on it ("the connection is closed").
            close_old_connections()
            outbox.reconcile(self.connection)
            outbox.purge_hourly(self.connection)
        except Exception:  # the scheduler must outlive a database hiccup
            logger.exception("outbox reconciliation failed")
        return list(jobs)


def ensure_schedules(scheduler: Scheduler) -> list[str]:
    """Make the registered schedules equal to the declared ones; returns the ids (re)created."""
    wanted = {SCHEDULE_ID_PREFIX + r.id: r for r in registry.recurring_jobs()}
    changed: list[str] = []
    for job in scheduler.get_jobs():
        recurring = wanted.get(job.id)
        if recurring is None:
            # Ours but no longer wanted, or an id-less copy of one of ours from an older start-up.
            if job.id.startswith(SCHEDULE_ID_PREFIX) or job.func_name in {r.job.path for r in wanted.values()}:
                logger.info("removing stale schedule %s (%s)", job.id, job.func_name)
                scheduler.cancel(job)
                job.delete()
            continue
        if (
            job.meta.get("cron_string") != recurring.cron()
            or job.func_name != recurring.job.path
            or job.origin != recurring.job.queue_name
        ):
            scheduler.cancel(job)
            job.delete()
    for schedule_id, recurring in wanted.items():
        if schedule_id in scheduler:
            continue
        try:
            QueueingJob.fetch(schedule_id, connection=scheduler.connection).delete()
        except NoSuchJobError:
            pass
        spec = recurring.job
        scheduler.cron(
            recurring.cron(),
            func=spec.path,
            id=schedule_id,
            queue_name=spec.queue_name,
            timeout=spec.timeout,
            result_ttl=spec.result_ttl,
            description=spec.path.rpartition(".")[2],
            use_local_timezone=False,
        )
        logger.info("registered schedule %s: %s at '%s' (UTC)", schedule_id, spec.path, recurring.cron())
        changed.append(schedule_id)
    return changed
