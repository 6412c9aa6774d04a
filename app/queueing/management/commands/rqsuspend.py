"""`manage.py rqsuspend`: django-rq's, on the project's queue connection (there is no `default` queue)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django_rq.management.commands import rqsuspend
from rq.suspension import suspend

from app.queueing.connections import redis_connection


class Command(rqsuspend.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        duration = options.get("duration")
        if duration is not None and duration < 1:
            raise CommandError("--duration must be at least 1 second.")
        suspend(redis_connection(), duration)
        if duration:
            self.stdout.write(f"Workers suspended for {duration} s: running jobs finish, no new job starts until then.")
        else:
            self.stdout.write("Workers suspended: running jobs finish, no new job starts until `manage.py rqresume`.")
