"""`manage.py rqscheduler`: rq-scheduler with the project's recurring jobs, in UTC."""

from __future__ import annotations

import os
import time
from typing import Any

import django_rq
from django.core.management.base import BaseCommand
from rq_scheduler.utils import setup_loghandlers

from app.jobs.scheduler import ProjectScheduler
from app.jobs.schedules import ensure_schedules


class Command(BaseCommand):
    help = "Run rq-scheduler: registers the recurring jobs (idempotently) and enqueues due jobs."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", "-i", type=int, default=10, help="Seconds between two scheduling passes.")
        parser.add_argument("--burst", action="store_true", help="One pass, then exit.")
        parser.add_argument("--register-only", action="store_true", help="Register the schedules and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        # rq-scheduler computes cron times in the process's local zone whatever
        # use_local_timezone says; pin the process to UTC so schedules mean UTC.
        os.environ["TZ"] = "UTC"
        time.tzset()
        setup_loghandlers("DEBUG" if options["verbosity"] >= 2 else "INFO")
        scheduler = ProjectScheduler(
            queue_name="metrics",
            interval=options["interval"],
            connection=django_rq.get_connection("metrics"),
        )
        registered = ensure_schedules(scheduler)
        self.stdout.write(f"schedules registered: {registered or 'none new'}")
        if options["register_only"]:
            return
        scheduler.run(burst=options["burst"])
