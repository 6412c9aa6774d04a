"""`manage.py rqresume`: django-rq's, on the project's queue connection (there is no `default` queue)."""

from __future__ import annotations

from typing import Any

from django_rq.management.commands import rqresume
from rq.suspension import resume

from app.queueing.connections import redis_connection


class Command(rqresume.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        resume(redis_connection())
        self.stdout.write("Workers resumed.")
