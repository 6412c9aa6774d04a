"""Callbacks RQ runs in the worker when a job ends (by import path, so JSON-safe)."""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from rq.job import Job

logger = logging.getLogger("app.jobs")


def on_success(job: Job, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> None:
    from app.services import background_jobs

    background_jobs.mark_ended(job.id, failed=False)
