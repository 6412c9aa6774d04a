"""`manage.py rqstats`: django-rq's statistics plus each queue's scheduled and retrying jobs.

django-rq 4.2's table has no scheduled column, so SMTP down showed three welcome mails retrying
for minutes as nothing at all. This command adds `Scheduled` (django-rq's own `scheduled_jobs`
count) and `Retrying` (jobs that failed an attempt and wait for the next: work_in_sight.py) to the
table, and `retrying_jobs` to each queue of `--json` / `--yaml`; the rest is django-rq's, through
its public `get_statistics` (tests/test_work_in_sight.py::test_a_retrying_jobs_attempt_next_run_and_last_error_are_everywhere).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import CommandError
from django_rq.management.commands import rqstats
from django_rq.utils import get_statistics

from app.queueing import work_in_sight
from app.queueing.connections import redis_connection

_ROW = "| %-10s|%8s |%8s |%8s |%8s |%8s |%9s |%8s |%8s |"
_COLUMNS = ("Name", "Queued", "Active", "Deferred", "Finished", "Failed", "Scheduled", "Retrying", "Workers")


def statistics_with_retrying() -> dict[str, Any]:
    statistics = get_statistics()
    counts: dict[str, int] = {}
    for row in work_in_sight.retrying_jobs(redis_connection()):
        counts[row.queue] = counts.get(row.queue, 0) + 1
    for queue in statistics["queues"]:
        queue["retrying_jobs"] = counts.get(str(queue.get("name")), 0)
    return statistics


class Command(rqstats.Command):
    help = "Print RQ statistics per queue, with the scheduled and retrying jobs."

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("json"):
            self.stdout.write(json.dumps(statistics_with_retrying()))
            return
        if options.get("yaml"):
            try:
                import yaml
            except ImportError as exc:
                raise CommandError("PyYAML is not installed.") from exc
            self.stdout.write(yaml.safe_dump(statistics_with_retrying(), default_flow_style=False))
            return
        interval = options.get("interval")
        while True:
            self.print_table(statistics_with_retrying())
            if not interval:
                return
            time.sleep(interval)

    def print_table(self, statistics: dict[str, Any]) -> None:
        separator = "-" * len(_ROW % _COLUMNS)
        self.stdout.write(separator)
        self.stdout.write(_ROW % _COLUMNS)
        self.stdout.write(separator)
        for queue in statistics["queues"]:
            self.stdout.write(
                _ROW
                % (
                    queue["name"],
                    queue["jobs"],
                    queue["started_jobs"],
                    queue["deferred_jobs"],
                    queue["finished_jobs"],
                    queue["failed_jobs"],
                    queue["scheduled_jobs"],
                    queue["retrying_jobs"],
                    queue["workers"],
                )
            )
        self.stdout.write(separator)
