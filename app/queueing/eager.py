"""Eager mode: committed jobs run here, at once, through the path a worker takes (for tests).

On with `settings.QUEUEING_EAGER = True` (every queue) or a collection of queue names, and for a
queue whose django-rq settings say `"ASYNC": False` (an `RQ_QUEUES` override). A job of such a
queue is recorded in the outbox like any other and, when its transaction commits, pushed signed
to Redis and run at once by an in-process worker of the project (workers.InProcessWorker): the
signature is checked, the job's outcome is recorded in Redis (status, result, failure) and on its
outbox row, as a worker would. A job's failure is not raised to the caller: read it as the
worker's (job status, status API, outbox row).

- It runs when the transaction commits, before the response is returned (not after it, as pushes
  are: dispatch.py); under a test's atomic block, inside `django_capture_on_commit_callbacks(execute=True)`.
- A scheduled job (`.delay_in`, `.delay_at`, `run_after`) runs at once, its time not waited.
- A failure the job's declaration retries is retried at once, every attempt recorded, without
  the backoff's sleep; a PermanentJobError (or the last attempt) fails the job and its row.
- Redis is still needed: the job, its result and its status live there as a worker's do.

Tests: tests/test_testing_habits.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry

from . import rq_compat
from .catalog import Push
from .connections import get_queue, redis_connection
from .jobclass import QueueingJob


def is_eager(queue_name: str) -> bool:
    from django.conf import settings

    eager = getattr(settings, "QUEUEING_EAGER", False)
    if eager is True or (not isinstance(eager, bool) and queue_name in eager):
        return True
    return not get_queue(queue_name).is_async  # RQ_QUEUES[queue_name]["ASYNC"] = False


def split(pushes: Sequence[Push]) -> tuple[list[Push], list[Push]]:
    """(eager pushes, the others)."""
    eager: list[Push] = []
    others: list[Push] = []
    answers: dict[str, bool] = {}  # per queue, once per commit (a fan-out holds thousands of pushes)
    for push in pushes:
        name = push.spec.queue_name
        if name not in answers:
            answers[name] = is_eager(name)
        (eager if answers[name] else others).append(push)
    return eager, others


def run(pushes: Sequence[Push]) -> None:
    """Push each job signed, then run it here as a worker would, its retries at once."""
    # The project's in-process worker (refusals, outcomes, the outbox row's end), loaded only when a
    # job runs eagerly: a web process otherwise never imports the worker.
    from .workers import InProcessWorker

    connection = redis_connection()
    for push in pushes:
        queue = rq_compat.asynchronous(get_queue(push.spec.queue_name))  # ASYNC=False: RQ would run it unchecked
        rq_compat.push_if_absent(connection, [(queue, [push._replace(due_at=None)])])
        worker = InProcessWorker([queue], connection=connection, name=f"eager-{os.getpid()}-{push.job_id[:8]}")
        for _attempt in range(push.spec.max_retries + 2):  # bounded: a job a worker hands back stays queued
            job = QueueingJob.fetch(push.job_id, connection=connection, serializer=queue.serializer)
            status = job.get_status(refresh=False)
            if status == JobStatus.SCHEDULED:  # a retry's backoff: not waited
                ScheduledJobRegistry(queue=queue).remove(job)  # type: ignore[no-untyped-call]  # rq leaves it untyped
                rq_compat.requeue_at_front(queue, job)  # a new push, as RQ's scheduler makes it: claimed afresh
            elif status != JobStatus.QUEUED:
                break  # finished, failed, refused: the worker recorded it
            # Taken, as a one-queue worker's dequeue takes it: out of the queue, into its intermediate
            # list, where the worker's claim (rq_compat.claim_popped) takes it out before it starts it.
            with connection.pipeline() as pipe:
                pipe.lrem(queue.key, 0, job.id)
                pipe.rpush(rq_compat.intermediate_key(queue.name), job.id)
                pipe.execute()
            worker.execute_job(job, queue)

