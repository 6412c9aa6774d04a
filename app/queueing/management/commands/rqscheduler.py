"""`manage.py rqscheduler`: rq-scheduler with the project's recurring jobs, in UTC."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from django.core.management.base import BaseCommand
from redis.exceptions import RedisError
from rq_scheduler.utils import setup_loghandlers

from app.queueing.connections import get_queue
from app.queueing.liveness import wait_for_redis
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
                # rq-scheduler's loop dies on the first connection error; the scheduler is what
                # re-sends lost jobs and requeues abandoned ones, so it must outlive an outage.
                logger.error("scheduler lost Redis (%s); waiting for it to come back", exc)
                wait_for_redis(connection)
                scheduler = scheduler.successor()


def _home_queue() -> str:
    # rq-scheduler wants a queue for jobs scheduled without one; every schedule here names its own.
    from app.queueing import catalog

    return min(catalog.queues())
