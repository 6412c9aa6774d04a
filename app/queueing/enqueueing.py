"""Every way into the queues: declared jobs' `.delay()`, plain django-rq, bulk and delayed.

Each path ends in `submit()`/`submit_many()`: the job's declaration decides its queue and policy,
the job is recorded in the outbox in the caller's transaction, and it is pushed to Redis once
that transaction commits (after the response, inside a request: dispatch.py). A rolled-back
transaction enqueues nothing; a committed one loses nothing while Redis is away (outbox.py).

`DeclaredJobsQueue` is django-rq's QUEUE_CLASS, so the card's idioms get the same guarantees:
`django_rq.enqueue(f, ...)`, `django_rq.get_queue(name).enqueue(...)`, `enqueue_in`/`enqueue_at`,
`@django_rq.job(...)`'s `.delay()` and `enqueue_many`. An undeclared function is refused at
enqueue time; a declared one always lands on its declared queue, whatever queue was asked for.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django_rq.queues import DjangoRQ
from rq.job import Job

from . import catalog, dispatch, patched_jobs, tracing
from .catalog import JobSpec, Push
from .connections import get_queue
from .errors import UnsupportedJobOption

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- the one way in -----------------------------------------------------------------------------


def submit(
    spec: JobSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    owner_id: int | None = None,
    job_id: str | None = None,
    due_at: datetime | None = None,
    at_front: bool = False,
) -> Job:
    """Record one call of a declared job and push it after commit (at `due_at`, if given;
    `at_front`: ahead of what its queue holds)."""
    from .models import BackgroundJob

    # A test's patch of the job's `.delay` (or `.delay_at`, for a scheduled call) takes the call instead.
    name = "delay" if due_at is None else "delay_at"
    patched = patched_jobs.replacement(spec.path, name)
    if patched is not None:
        with patched_jobs.calling_replacement(spec.path, name):
            return patched(*args, **kwargs) if due_at is None else patched(due_at, *args, **kwargs)  # type: ignore[no-any-return]
    _check_call(spec, args, kwargs)
    job_id = job_id or uuid.uuid4().hex
    if due_at is not None and due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware (UTC)")
    traceparent = tracing.current_traceparent()  # None when tracing is off
    BackgroundJob.record(
        spec.queue_name, spec.path, [(job_id, args, kwargs)], owner_id, due_at=due_at, traceparent=traceparent,
        max_attempts=spec.max_retries + 1,
    )
    push = Push(spec, job_id, args, kwargs, due_at, at_front=at_front, traceparent=traceparent)
    transaction.on_commit(lambda: dispatch.after_commit([push]), robust=True)
    return _handle(spec, job_id)


def submit_many(spec: JobSpec, calls: Sequence[list[Any]], *, owner_id: int | None = None) -> list[str]:
    """One job per argument list: one INSERT for the records, one Redis round trip for the jobs.

    For fan-outs (a mail to every member); the first call's arguments are checked against the
    function's signature, each call's against JSON.
    """
    from .models import BackgroundJob

    if not calls:
        return []
    # A test's patch of `.delay_many` takes the fan-out; else a patch of `.delay` takes each call.
    patched = patched_jobs.replacement(spec.path, "delay_many")
    if patched is not None:
        with patched_jobs.calling_replacement(spec.path, "delay_many"):
            return patched(calls, owner_id=owner_id) if owner_id is not None else patched(calls)  # type: ignore[no-any-return]
    patched = patched_jobs.replacement(spec.path, "delay")
    if patched is not None:
        with patched_jobs.calling_replacement(spec.path, "delay"):
            return [getattr(result, "id", result) for result in (patched(*args) for args in calls)]
    no_kwargs: dict[str, Any] = {}  # one object for all: the record prepares it once
    _check_call(spec, calls[0], no_kwargs)
    jobs = [(uuid.uuid4().hex, args) for args in calls]
    traceparent = tracing.current_traceparent()  # None when tracing is off
    BackgroundJob.record(
        spec.queue_name, spec.path, [(job_id, args, no_kwargs) for job_id, args in jobs], owner_id, traceparent=traceparent,
        max_attempts=spec.max_retries + 1,
    )
    pushes = [Push(spec, job_id, args, no_kwargs, None, traceparent=traceparent) for job_id, args in jobs]
    transaction.on_commit(lambda: dispatch.after_commit(pushes), robust=True)
    return [job_id for job_id, _ in jobs]


def _check_call(spec: JobSpec, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    """A call that cannot run is refused here, in the caller, not later in a worker."""
    try:
        catalog.signature_of(catalog.declared_function(spec.path)).bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{spec.path}: {exc}") from None
    try:
        json.dumps([args, kwargs], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{spec.path}: job arguments must be JSON values (ids, strings, numbers, lists, dicts), "
            f"never model instances: {exc}"
        ) from None


def _handle(spec: JobSpec, job_id: str) -> Job:
    """An RQ Job for the caller to keep (`.id`, `.get_status()`); its hash exists once pushed."""
    queue = get_queue(spec.queue_name)
    job: Job = queue.job_class(job_id, connection=queue.connection, serializer=queue.serializer)
    job.origin = spec.queue_name  # what RQ's own enqueue returns: the caller may read the queue from it
    return job


# -- django-rq's way in -------------------------------------------------------------------------

# RQ options that a call may pass: None (RQ's and django-rq's defaults) is always fine.
_CALL_OPTIONS = {"job_id"}
_POLICY_OPTIONS = {"timeout", "result_ttl", "ttl", "failure_ttl", "retry"}


class DeclaredJobsQueue(DjangoRQ):
    """django-rq's QUEUE_CLASS: enqueueing goes through the outbox, to the declared queue.

    RQ's own internals (requeue, retries, the schedulers moving due jobs, dependents) keep using
    `enqueue_job` on existing jobs, which is left as RQ has it: those jobs were admitted here.
    """

    # Every RQ option is accepted here so that a policy option can be refused with its reason.
    def enqueue_call(self, func: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Job:  # type: ignore[override]
        return self._submit(func, list(args or ()), dict(kwargs or {}), options, due_at=None)

    def enqueue_at(self, datetime: datetime, f: Any, *args: Any, **kwargs: Any) -> Job:
        func, call_args, call_kwargs, options = _split_rq_call(f, args, kwargs)
        return self._submit(func, call_args, call_kwargs, options, due_at=_aware(datetime))

    def enqueue_in(self, time_delta: timedelta, func: Any, *args: Any, **kwargs: Any) -> Job:
        return self.enqueue_at(utcnow() + time_delta, func, *args, **kwargs)

    def enqueue_many(self, job_datas: Any, pipeline: Any = None, group_id: Any = None) -> list[Job]:
        if pipeline is not None or group_id is not None:
            raise UnsupportedJobOption("enqueue_many(pipeline=..., group_id=...) is not supported: jobs go through the outbox")
        return [
            self._submit(
                data.func,
                list(data.args or ()),
                dict(data.kwargs or {}),
                {"job_id": data.job_id, "description": data.description, "meta": data.meta, "at_front": data.at_front,
                 "timeout": data.timeout, "result_ttl": data.result_ttl, "ttl": data.ttl, "failure_ttl": data.failure_ttl,
                 "retry": data.retry, "depends_on": data.depends_on, "on_success": data.on_success,
                 "on_failure": data.on_failure, "on_stopped": getattr(data, "on_stopped", None)},
                due_at=None,
            )
            for data in job_datas
        ]

    def empty(self) -> int:
        # An operator emptying a queue (django-rq's admin) deletes its jobs for good.
        from .outbox_ends import mark_cancelled

        mark_cancelled(self.get_job_ids(), f"deleted by an operator (queue '{self.name}' emptied)")
        return int(super().empty())  # type: ignore[no-untyped-call]

    def _submit(self, func: Any, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any], due_at: datetime | None) -> Job:
        spec = catalog.spec_for(func)  # refuses the undeclared, with the reason
        given = {name: value for name, value in options.items() if value not in (None, False, {})}
        unsupported = sorted(set(given) - _CALL_OPTIONS - _POLICY_OPTIONS)
        if unsupported:
            raise UnsupportedJobOption(f"{spec.path}: {', '.join(unsupported)} not supported (jobs go through the outbox)")
        policy = sorted(set(given) & _POLICY_OPTIONS)
        if policy:
            raise UnsupportedJobOption(
                f"{spec.path}: {', '.join(policy)} is declared with the job (@job(..., timeout=, retries=, result_ttl=)), not per call"
            )
        if self.name not in ("default", spec.queue_name):
            logger.warning("%s is declared on '%s': enqueued there, not on '%s'", spec.path, spec.queue_name, self.name)
        owner_id = spec.owner_of(args, kwargs, catalog.declared_function(spec.path))
        return submit(spec, args, kwargs, owner_id=owner_id, job_id=given.get("job_id"), due_at=due_at)


def _split_rq_call(f: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[Any], dict[str, Any], dict[str, Any]]:
    """RQ's `enqueue(f, *args, **kwargs)` convention: reserved option names, or explicit args=/kwargs=."""
    kwargs = dict(kwargs)
    options = {name: kwargs.pop(name) for name in list(kwargs) if name in _CALL_OPTIONS | _POLICY_OPTIONS | _OTHER_RQ_OPTIONS}
    if "job_timeout" in options:
        options["timeout"] = options.pop("job_timeout")
    if "args" in options or "kwargs" in options:
        if args or kwargs:
            raise UnsupportedJobOption("pass either args=/kwargs= or the call's own arguments, not both")
        return f, list(options.pop("args", None) or ()), dict(options.pop("kwargs", None) or {}), options
    return f, list(args), kwargs, options


_OTHER_RQ_OPTIONS = {
    "description", "meta", "at_front", "job_timeout", "depends_on", "on_success", "on_failure", "on_stopped", "pipeline", "args", "kwargs",
    "group_id", "repeat", "unique", "rate_limit",
}


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

