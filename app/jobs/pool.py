"""The light queues' workers: long-lived processes, no fork per job, recycled before they bloat.

RQ's forking worker pays a fork (copy-on-write faults, a new Redis connection) for every job:
~11 ms of CPU with Django loaded. Mail and metrics jobs are small and trusted, so they run in
the worker process itself; a process is replaced after `max_jobs` jobs or once its resident
memory passes `max_memory_mb`, so a slow leak can't build up. `images` keeps the forking
worker: hostile input and big buffers stay in a process that dies after each job.
"""

from __future__ import annotations

import logging
import resource
from typing import Any, ClassVar

from rq.job import Job

from .runtime import InProcessWorker

logger = logging.getLogger("app.jobs.pool")


def resident_memory_mb() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RecyclingWorker(InProcessWorker):
    """An in-process worker that asks to stop after enough jobs or memory; the pool replaces it."""

    max_jobs: ClassVar[int] = 5_000
    max_memory_mb: ClassVar[float] = 512.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jobs_done = 0

    def perform_job(self, job: Job, queue: Any, execution: Any) -> bool:
        try:
            return super().perform_job(job, queue, execution)
        finally:
            self._jobs_done += 1
            memory = resident_memory_mb()
            if self._jobs_done >= self.max_jobs or memory >= self.max_memory_mb:
                logger.info(
                    "worker %s recycles after %d jobs at %.0f MiB", self.name, self._jobs_done, memory
                )
                self._stop_requested = True  # finish this job, leave; the pool starts a fresh process
