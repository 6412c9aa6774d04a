"""Recycling: an in-process worker asks to stop after enough jobs or memory; its pool replaces it.

The limits are the worker class's `max_jobs` and `max_memory_mb` (workers.RecyclingWorker; rqpool
sets them from its options), read after every job.
"""

from __future__ import annotations

import logging
import resource
from typing import Any

from .. import rq_compat

logger = logging.getLogger(__name__)


def resident_memory_mb() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Recycling:
    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.jobs_done = 0

    def job_done(self) -> None:
        worker = self.worker
        self.jobs_done += 1
        memory = resident_memory_mb()
        if self.jobs_done >= worker.max_jobs or memory >= worker.max_memory_mb:
            logger.info("worker %s recycles after %d jobs at %.0f MiB", worker.name, self.jobs_done, memory)
            rq_compat.set_stop_requested(worker, True)  # finish this job, leave; the pool starts a fresh process
