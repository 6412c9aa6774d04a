"""`manage.py rqpool emails metrics`: a pool of long-lived, recycled, non-forking workers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_rq.utils import reset_db_connections
from rq.logutils import setup_loghandlers

from app.queueing import process_tree
from app.queueing.connections import get_queue
from app.queueing.jobclass import QueueingJob
from app.queueing.serialization import JobSerializer
from app.queueing.workers import RecyclingWorker, RecyclingWorkerPool


class Command(BaseCommand):
    help = "Run N worker processes on the given queues, each executing jobs in-process (no fork per job)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("queues", nargs="+")
        parser.add_argument("--workers", "-n", type=int, default=2, help="Worker processes (default 2).")
        parser.add_argument("--max-jobs", type=int, default=RecyclingWorker.max_jobs, help="Recycle a process after this many jobs.")
        parser.add_argument("--max-memory", type=int, default=int(RecyclingWorker.max_memory_mb), help="Recycle a process above this RSS, MiB.")
        parser.add_argument("--burst", action="store_true", help="Drain the queues, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        level = "DEBUG" if options["verbosity"] >= 2 else "WARNING" if options["verbosity"] == 0 else "INFO"
        setup_loghandlers(level)
        # Forked pool members inherit these limits.
        RecyclingWorker.max_jobs = options["max_jobs"]
        RecyclingWorker.max_memory_mb = float(options["max_memory"])
        queues = [get_queue(name) for name in options["queues"]]
        pool = RecyclingWorkerPool(
            queues=queues,
            connection=queues[0].connection,
            num_workers=options["workers"],
            serializer=JobSerializer,
            worker_class=RecyclingWorker,
            job_class=QueueingJob,
        )
        reset_db_connections()  # never share a database socket across fork
        process_tree.install(pool.connection)  # pool members die with the pool, without its sockets
        pool.start(burst=options["burst"], logging_level=level)
