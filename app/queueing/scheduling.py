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
from typing import Any

from django.db import close_old_connections
from django_rq.queues import DjangoScheduler
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.scheduler import RQScheduler
from rq_scheduler import Scheduler

from . import catalog, keys, outbox, rq_compat, signing
from .jobclass import QueueingJob, record_refusal, refusal_of
from .locks import TokenLock
from .recovery import sweep
from .serialization import JobSerializer

logger = logging.getLogger(__name__)

SCHEDULE_ID_PREFIX = "schedule-"
# Seconds between two passes. Every recovery path waits for passes: a dead worker's job for one
# sweep after its lease, a job lost with Redis's data for two sightings, a retry of the light
# queues for its firing; compound faults in one window (a freeze, two FLUSHDBs, a killed
# scheduler) add those waits up, and the settle bound of the tests (tests/settle.py) counts on
# this interval. A pass costs Redis a few milliseconds even with 100,000 jobs waiting
# (docs/throughput.md), so 2 s is cheap.
PASS_INTERVAL = 2
LOCK_SPARE_SECONDS = 3
RETRY_LOCK_OWNER = "egoejo-rqscheduler"


class ProjectScheduler(rq_compat.scheduler.KeepsProcessSignalHandlers, DjangoScheduler):
    # rq-scheduler's signal handlers wrote to Redis from inside the handler and hung a stop while
    # Redis was away: rqscheduler installs its own (tests/faults/test_stops.py).
    job_class = QueueingJob
    # rq-scheduler's lock, held by this process's token: a pass that outlived the lock never frees
    # the lock of the scheduler that took over
    # (tests/test_schedules.py::test_a_scheduler_never_frees_the_lock_another_one_holds).
    _pass_lock: TokenLock | None = None

    def acquire_lock(self) -> bool:
        # Held for one pass only (rq-scheduler releases it at the pass's end), so its TTL only
        # matters when its holder dies: a scheduler restarted after a kill skipped its passes,
        # sweeps and re-sends included, until it expired (interval + 10 s in rq-scheduler). A pass
        # takes well under a second; only one longer than the lock, with a second scheduler
        # process running (compose runs one), could overlap another
        # (tests/test_schedules.py::test_a_killed_schedulers_lock_holds_its_successor_up_3_s_past_the_interval).
        self._pass_lock = TokenLock(self.connection, self.scheduler_lock_key, int(rq_compat.scheduler.interval_of(self)) + LOCK_SPARE_SECONDS)
        acquired = self._pass_lock.acquire()
        rq_compat.scheduler.set_holds_lock(self, acquired)
        return acquired

    def remove_lock(self) -> None:
        if rq_compat.scheduler.holds_lock(self) and self._pass_lock is not None:
            self._pass_lock.release()
            rq_compat.scheduler.set_holds_lock(self, False)

    def successor(self) -> ProjectScheduler:
        """A fresh scheduler to run after a Redis outage cut this one's loop. A pass cut short
        could not release rq-scheduler's lock, and a Redis restarted from its AOF still holds it
        (its TTL is the interval plus 10 s): released here by this process's token, or the fresh
        loop would skip its passes, and with them the sweeps and re-sends, until it expired."""
        try:
            self.remove_lock()
        except RedisError:
            pass  # gone again: the lock expires by itself
        return type(self)(queue_name=self.queue_name, interval=rq_compat.scheduler.interval_of(self), connection=self.connection)

    def _fire_due_retries(self, queue_names: list[str]) -> None:
        """Move due retries and delayed jobs to their queues when no worker's RQ scheduler does it.

        RQ's scheduler lives in a child of one worker (--with-scheduler) and holds a lock per
        queue; the light-queue pool runs none, and a child can die (it does on a Redis error).
        Taking only the locks nobody holds keeps one scheduler per queue at a time.
        """
        # One owner name for every rqscheduler process: RQ's per-queue locks live 61 s, and a
        # scheduler killed (or cut off from Redis) between taking and releasing them would hold up
        # every retry of the light queues that long under a random name. Only one rqscheduler passes at
        # a time (rq-scheduler's lock), so its successor takes them over
        # (tests/test_schedules.py::test_a_killed_schedulers_retry_locks_do_not_hold_up_the_retries).
        # A lock held by a worker's scheduler child is never taken over here: one that was only
        # frozen would run its stale move when it thaws, and a job moved twice can run twice; a
        # dead child's lock expires after 61 s (docs/reliability.md).
        scheduler = RQScheduler(queue_names, connection=self.connection, serializer=JobSerializer, name=RETRY_LOCK_OWNER)
        if scheduler.acquire_locks(auto_start=False):  # type: ignore[no-untyped-call]  # rq leaves these untyped
            try:
                scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            finally:
                scheduler.release_locks()  # type: ignore[no-untyped-call]

    def get_queue_for_job(self, job: Any) -> Any:
        # rq-scheduler would import the class a job's meta names (`queue_class_name`): Redis
        # would choose the code. A job goes to the queue its origin names, as this class has it.
        return self.queue_class.from_queue_key(
            rq_compat.queue_key(job.origin), connection=self.connection, job_class=self.job_class
        )

    def enqueue_job(self, job: Any) -> None:
        """Move a due schedule to its queue, only if the layer made it (a declared, signed job).

        Anything else in rq-scheduler's set (a hand-written hash, a schedule whose arguments or
        cron were changed in Redis) is taken out of the set and failed with its reason on its
        declared queue; `ensure_schedules` registers the declared schedule again at the next pass.
        """
        reason = refusal_of(job)
        if reason is None:
            super().enqueue_job(job)
            return
        self.cancel(job)
        spec = catalog.queue_declared(job.origin) if isinstance(job.origin, str) else None
        if spec is None:
            logger.error("schedule %s refused and dropped (not on a declared queue): %s", job.id, reason)
            return
        record_refusal(self.connection, job, self.get_queue_for_job(job), reason, worker_name="rqscheduler")

    def heartbeat(self) -> None:
        super().heartbeat()
        # One well-known key for /healthz, instead of scanning rq-scheduler's per-name keys.
        self.connection.set(keys.SCHEDULER_ALIVE, time.time(), ex=int(rq_compat.scheduler.interval_of(self)) + 10)

    def enqueue_jobs(self) -> list[Any]:
        # Runs only while this process holds rq-scheduler's lock, so a second scheduler
        # process neither enqueues a recurring job twice nor re-sends the outbox twice.
        try:
            ensure_schedules(self)
        except RedisError:
            logger.exception("could not check the recurring schedules")
        jobs = super().enqueue_jobs()
        names = list(catalog.queues())
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
    wanted = {SCHEDULE_ID_PREFIX + r.id: r for r in catalog.recurring_jobs()}
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
            or refusal_of(job) is not None  # changed in Redis: registered again, as declared
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
        job = scheduler.cron(
            recurring.cron(),
            func=spec.path,
            id=schedule_id,
            queue_name=spec.queue_name,
            timeout=spec.timeout,
            result_ttl=spec.result_ttl,
            description=spec.path.rpartition(".")[2],
            use_local_timezone=False,
        )
        job.meta[signing.SIGNATURE_META] = signing.sign_job(job)
        job.save_meta()
        logger.info("registered schedule %s: %s at '%s' (UTC)", schedule_id, spec.path, recurring.cron())
        changed.append(schedule_id)
    return changed
