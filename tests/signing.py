"""Signing a job that a test wrote with RQ's own classes, as if the queueing layer had made it.

Tests of RQ's own bookkeeping write jobs with RQ's `Queue` (its options, its code path) and run
them on the project's workers, which run only jobs the layer signed (app/queueing/signing.py).
This gives such a job the layer's signature, with the key the workers hold: the test's stand-in
for "the layer made this job", never used by the application itself.
"""

from __future__ import annotations

from typing import Any

from app.queueing import signing
from app.queueing.jobclass import QueueingJob


def sign_in_redis(connection: Any, job_id: str) -> None:
    job = QueueingJob.fetch(job_id, connection=connection)
    if job.retries_left is not None:
        job.meta.setdefault("max_retries", job.retries_left)
    job.meta.pop(signing.SIGNATURE_META, None)
    job.meta[signing.SIGNATURE_META] = signing.sign_job(job)
    job.save_meta()


def enqueue_signed(queue: Any, func: str, *args: Any, **options: Any) -> Any:
    """RQ's own `Queue.create_job` + `enqueue_job`, signed before the push: safe while a worker listens."""
    job = queue.create_job(func, args=args, **options)
    job.meta.pop(signing.SIGNATURE_META, None)
    signature = signing.sign_job(job)
    job.meta[signing.SIGNATURE_META] = signature
    return queue.enqueue_job(job)
