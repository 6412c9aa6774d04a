"""`manage.py rqscheduler`: rq-scheduler with the project's recurring jobs, in UTC.

One SIGTERM (or SIGINT) stops it within STOP_GRACE whatever Redis does: the handler ends the pass
or the wait where it is (SystemExit, as rq-scheduler's own did), no wait for Redis starts after
it, and a cleanup that hangs on a silent Redis (its lock, its death) is cut short; both expire by
themselves (interval + 3 s, interval + 10 s) (tests/faults/test_stops.py).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand
from redis.exceptions import RedisError
from rq_scheduler.utils import setup_loghandlers

from app.queueing.connections import get_queue
from app.queueing.liveness import leave_stopped_after, wait_for_redis
from app.queueing.scheduling import PASS_INTERVAL, ProjectScheduler, ensure_schedules

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run rq-scheduler: registers the recurring jobs (idempotently) and enqueues due jobs."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--interval", "-i", type=int, default=PASS_INTERVAL, help=f"Seconds between two scheduling passes (default {PASS_INTERVAL})."
        )
        parser.add_argument("--burst", action="store_true", help="One pass, then exit.")
        parser.add_argument("--register-only", action="store_true", help="Register the schedules and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        # rq-scheduler computes cron times in the process's local zone whatever
        # use_local_timezone says; pin the process to UTC so schedules mean UTC.
        os.environ["TZ"] = "UTC"
        time.tzset()
        setup_loghandlers("DEBUG" if options["verbosity"] >= 2 else "INFO")
        stop = _StopOnSignal()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        connection = get_queue("default").connection
        scheduler = ProjectScheduler(queue_name=_home_queue(), interval=options["interval"], connection=connection)
        registered = ensure_schedules(scheduler)
        self.stdout.write(f"schedules registered: {registered or 'none new'}")
        if options["register_only"]:
            return
        while True:
            try:
                scheduler.run(burst=options["burst"])
                return
            except RedisError as exc:
                if stop.requested.is_set():
                    return  # the stop's cleanup could not reach Redis: its keys expire by themselves
                # rq-scheduler's loop dies on the first connection error; the scheduler is what
                # re-sends lost jobs and requeues abandoned ones, so it must outlive an outage.
                logger.error("scheduler lost Redis (%s); waiting for it to come back", exc)
                if not wait_for_redis(connection, should_stop=stop.requested.is_set):
                    return
                scheduler = scheduler.successor()


class _StopOnSignal:
    """The process's SIGTERM/SIGINT handler: the first signal ends the pass or the wait where it
    is (SystemExit: rq-scheduler's `run` still releases its lock and writes its death on the way
    out) and starts the deadline that ends the process if that cleanup hangs on Redis."""

    def __init__(self) -> None:
        self.requested = threading.Event()

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested.is_set():
            return  # the first one is being honoured
        self.requested.set()
        logger.info("rqscheduler: stopping on signal %d", signum)
        leave_stopped_after("rqscheduler")
        raise SystemExit(0)


def _home_queue() -> str:
    # rq-scheduler wants a queue for jobs scheduled without one; every schedule here names its own.
    from app.queueing import catalog

    return min(catalog.queues())
