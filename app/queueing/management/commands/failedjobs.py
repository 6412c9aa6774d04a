"""`manage.py failedjobs`: failed jobs with their reasons; requeue or delete them; and the retrying ones.

`rq info` counts failures but doesn't say why; this lists each failed job's last error line, then
each job that failed an attempt and waits for the next: its next attempt n/N, next run and last
error (work_in_sight.py), so a job retrying for minutes is never "0 failed" and nothing else.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from app.queueing import catalog, work_in_sight
from app.queueing.connections import get_queue
from app.queueing.job_reports import last_line


class Command(BaseCommand):
    help = "List failed jobs with their reasons; --requeue or --delete them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--queue", action="append", choices=sorted(catalog.queues()), help="Only this queue (repeatable).")
        parser.add_argument("--limit", type=int, default=50, help="At most this many jobs per queue.")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--requeue", action="store_true", help="Requeue the listed jobs.")
        action.add_argument("--delete", action="store_true", help="Delete the listed jobs.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        names = options["queue"] or sorted(catalog.queues())
        for name in names:
            queue = get_queue(name)
            failed = queue.failed_job_registry
            job_ids = failed.get_job_ids(0, options["limit"] - 1)
            self.stdout.write(f"{name}: {failed.count} failed")
            for job_id in job_ids:
                job = queue.fetch_job(job_id)
                if job is None:
                    self.stdout.write(f"  {job_id}  (expired)")
                    continue
                result = job.latest_result()
                reason = last_line(result.exc_string if result else "") or "(no reason recorded)"
                self.stdout.write(f"  {job_id}  {job.func_name}  {reason}")
                if options["requeue"]:
                    failed.requeue(job_id)
                    self.stdout.write("    requeued")
                elif options["delete"]:
                    failed.remove(job, delete_job=True)
                    self.stdout.write("    deleted")
        retrying = work_in_sight.retrying_jobs(get_queue(names[0]).connection, names)
        self.stdout.write(f"retrying: {len(retrying)}")
        for row in retrying[: options["limit"]]:
            next_run = row.next_run.strftime("%Y-%m-%d %H:%M:%S UTC") if row.next_run else "in its queue now"
            self.stdout.write(f"  {row.id}  {row.queue}  {row.func}  attempt {row.attempt_label}  next run {next_run}  last error: {row.last_error}")
