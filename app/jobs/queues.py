"""The one place that owns queue names, timeouts, TTLs, retry policy and enqueuing.

Every job of the platform is enqueued through `enqueue()`: it records the job in the
database in the caller's transaction (app.models.BackgroundJob, the durable side of the
enqueue) and sends it to Redis only after that transaction commits, so a rolled-back
request enqueues nothing and a committed one loses nothing when Redis is briefly away.
Inside a request the push waits until the response has gone (app.jobs.dispatch).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import django_rq
from django.db import transaction
from rq import Callback, Queue
from rq.job import Retry

from app.jobs import dispatch

@dataclass(frozen=True)
class QueueSpec:
    name: str
    timeout: int  # seconds a job may run before the worker kills it
    result_ttl: int  # seconds a finished job (and its result) stays visible
    failure_ttl: int  # seconds a failed job stays in the failed registry
    max_retries: int
    backoff_base: int  # first retry delay, seconds; doubles each attempt
    backoff_cap: int

    def retry(self) -> Retry | None:
        """RQ's retry policy for one job, or None if the queue doesn't retry."""
        if self.max_retries <= 0:
            return None
        return Retry(max=self.max_retries, interval=self.retry_intervals())

    def retry_intervals(self) -> list[int]:
        """Exponential backoff with ±25 % jitter, drawn per job so that a burst of failures doesn't retry in lockstep."""
        return [
            max(1, round(min(self.backoff_cap, self.backoff_base * 2**attempt) * random.uniform(0.75, 1.25)))
            for attempt in range(self.max_retries)
        ]


EMAILS = QueueSpec("emails", timeout=60, result_ttl=86_400, failure_ttl=7 * 86_400,
                   max_retries=5, backoff_base=10, backoff_cap=600)
IMAGES = QueueSpec("images", timeout=300, result_ttl=86_400, failure_ttl=7 * 86_400,
                   max_retries=3, backoff_base=15, backoff_cap=300)
METRICS = QueueSpec("metrics", timeout=600, result_ttl=3_600, failure_ttl=7 * 86_400,
                    max_retries=3, backoff_base=30, backoff_cap=300)

QUEUES: dict[str, QueueSpec] = {spec.name: spec for spec in (EMAILS, IMAGES, METRICS)}
# One module per queue: a job's module decides its queue.
QUEUE_OF_MODULE: dict[str, QueueSpec] = {
    "app.jobs.emails": EMAILS,
    "app.jobs.images": IMAGES,
    "app.jobs.metrics": METRICS,
}


def func_path(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def spec_for(func: Callable[..., Any] | str) -> QueueSpec:
    path = func if isinstance(func, str) else func_path(func)
    module = path.rpartition(".")[0]
    try:
        return QUEUE_OF_MODULE[module]
    except KeyError:
        raise ValueError(f"{path} is not a job of any queue (expected one of {sorted(QUEUE_OF_MODULE)})") from None


_queues: dict[tuple[str, str], Queue] = {}


def get_queue(spec: QueueSpec) -> Queue:
    """The queue object, built once per process: django_rq.get_queue opens a new Redis
    connection pool on every call, a TCP handshake on every enqueue of a request."""
    from django.conf import settings

    key = (spec.name, repr(settings.RQ_QUEUES[spec.name]))  # settings may change (tests)
    queue = _queues.get(key)
    if queue is None:
        # commit_mode="auto": the on-commit deferral is done here, once, for the whole enqueue.
        queue = _queues[key] = django_rq.get_queue(spec.name, commit_mode="auto")
    return queue


def redis_connection() -> Any:
    """The queues' Redis (all three share it), reusing the per-process connection pool."""
    return get_queue(EMAILS).connection


def enqueue(
    func: Callable[..., Any],
    *args: Any,
    owner_id: int | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> str:
    """Record `func(*args, **kwargs)` as a job and send it to its queue once the transaction commits.

    Arguments must be JSON values (ids, strings, numbers), never model instances. Returns the
    job id, usable with `GET /api/jobs/<id>/` by `owner_id`.
    """
    from app.models import BackgroundJob

    path = func_path(func)
    spec = spec_for(path)
    job_id = job_id or uuid.uuid4().hex
    BackgroundJob.record(spec.name, path, [(job_id, list(args), kwargs)], owner_id)
    push = dispatch.Push(spec, job_id, path, list(args), kwargs)
    transaction.on_commit(lambda: dispatch.after_commit([push]), robust=True)
    return job_id


def enqueue_many(func: Callable[..., Any], calls: Sequence[Sequence[Any]], owner_id: int | None = None) -> list[str]:
    """Record one job per argument list, and send them all in one pipelined round trip after commit.

    For fan-outs (a mail to every member): one INSERT for the records, one Redis round trip
    for the jobs, instead of one of each per job.
    """
    from app.models import BackgroundJob

    path = func_path(func)
    spec = spec_for(path)
    no_kwargs: dict[str, Any] = {}  # one object for all: the record prepares it once
    jobs = [(uuid.uuid4().hex, list(args)) for args in calls]
    BackgroundJob.record(spec.name, path, [(job_id, args, no_kwargs) for job_id, args in jobs], owner_id)
    pushes = [dispatch.Push(spec, job_id, path, args, no_kwargs) for job_id, args in jobs]
    transaction.on_commit(lambda: dispatch.after_commit(pushes), robust=True)
    return [job_id for job_id, _ in jobs]


def job_options(spec: QueueSpec, job_id: str, path: str, args: Sequence[Any]) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "timeout": spec.timeout,
        "result_ttl": spec.result_ttl,
        "failure_ttl": spec.failure_ttl,
        "retry": spec.retry(),
        "meta": {"max_retries": spec.max_retries},
        "on_success": Callback("app.jobs.lifecycle.on_success"),
        "description": describe(path, args),
    }


def send_to_redis(spec: QueueSpec, job_id: str, path: str, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """Push one recorded job to Redis now (the outbox's re-send); False if Redis is away."""
    return dispatch.send([dispatch.Push(spec, job_id, path, list(args), kwargs)]) == 1


def describe(path: str, args: Sequence[Any]) -> str:
    """The job's description in the dashboards: the function's name and its id-like arguments."""
    return f"{path.rpartition('.')[2]}({', '.join(_describe(a) for a in args)})"


def _describe(value: Any) -> str:
    # Job descriptions are shown in the dashboards: ids and numbers only, never user text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return "…"
