"""django-rq's JOB_CLASS: JSON, never pickle, only declared functions, only jobs the layer made.

A job's function is resolved through the catalog of declared jobs, never by importing the
name Redis holds: a hand-written hash naming `os.system` gets an UndeclaredJobError and nothing is
imported. Before a job runs, `refusal_of` also checks that the layer made it: its signature and
the fields its hash holds (signing.py). An operator's delete or cancel (django-rq's admin,
`failedjobs --delete`) closes the job's outbox row as cancelled, so the reconciler never brings it
back.
"""

from __future__ import annotations

import logging
from typing import Any

from rq.job import Job, JobStatus
from rq.results import Result

from . import catalog, keys, outcomes, rq_compat, signing
from .errors import UndeclaredJobError
from .outbox_ends import mark_cancelled, mark_ended
from .serialization import JobSerializer

logger = logging.getLogger(__name__)


class QueueingJob(Job):
    """An RQ job that defaults to JSON and runs only declared functions."""

    # The hash's field names as Redis held them at the last read, and whether each field the layer
    # leaves empty was empty (RQ's restore drops what it does not know): signing.refusal reads them.
    hash_fields: frozenset[str] = frozenset()
    empty_fields: dict[str, bool] = {}

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=serializer or JobSerializer)

    def restore(self, raw_data: Any) -> Any:
        fields = {(name.decode() if isinstance(name, bytes) else str(name)): value for name, value in raw_data.items()}
        self.hash_fields = frozenset(fields)
        self.empty_fields = {name: not fields[name] for name in signing.MUST_BE_EMPTY if name in fields}
        return super().restore(raw_data)

    @property
    def func(self) -> Any:
        refusal = catalog.refusal(self.func_name, [])
        if refusal is not None or self.instance is not None:
            raise UndeclaredJobError(refusal or f"{self.func_name!r}: jobs on instances are not declared jobs")
        return catalog.declared_function(self.func_name)  # type: ignore[arg-type]

    @property
    def success_callback(self) -> Any:
        _check_callbacks(self)
        return super().success_callback

    @property
    def failure_callback(self) -> Any:
        _check_callbacks(self)
        return super().failure_callback

    @property
    def stopped_callback(self) -> Any:
        _check_callbacks(self)
        return super().stopped_callback

    def delete(self, pipeline: Any = None, remove_from_queue: bool = True, delete_dependents: bool = False) -> None:
        # An operator's delete (django-rq's admin, failedjobs --delete) is final: the outbox must not re-send it.
        mark_cancelled([self.id], "deleted by an operator")
        super().delete(pipeline=pipeline, remove_from_queue=remove_from_queue, delete_dependents=delete_dependents)

    def cancel(self, pipeline: Any = None, enqueue_dependents: bool = False, remove_from_dependencies: bool = False) -> Any:
        mark_cancelled([self.id], "cancelled by an operator")
        return super().cancel(pipeline=pipeline, enqueue_dependents=enqueue_dependents, remove_from_dependencies=remove_from_dependencies)


def _check_callbacks(job: Job) -> None:
    refusal = catalog.refusal(job.func_name, rq_compat.callback_names(job))
    if refusal is not None:
        raise UndeclaredJobError(refusal)


def refusal_of(job: Job) -> str | None:
    """Why a dequeued job may not run here: unreadable data, an undeclared function or callback,
    or a job the layer did not make (signing.refusal). Imports and calls nothing of the job's."""
    try:
        if job.func_name == rq_compat.UNREADABLE_FUNC:
            return "UnreadableJobError: the job's data could not be read as a JSON job"
        unreadable = getattr(job, "unreadable_fields", ())
        if unreadable:
            return f"UnreadableJobError: fields RQ could not read: {', '.join(unreadable)[:200]}"
        reason = catalog.refusal(job.func_name, rq_compat.callback_names(job)) or signing.refusal(
            job, getattr(job, "hash_fields", ()), getattr(job, "empty_fields", {})
        )
        if reason == signing.UNSIGNED and _pushed_before_signing(job):
            return None
        return reason
    except Exception as exc:  # corrupt or foreign data the checks above could not read
        return f"UnreadableJobError: the job's data could not be read as a JSON job ({type(exc).__name__})"


def record_refusal(connection: Any, job: Job, queue: Any, reason: str, worker_name: str = "", pipeline: Any = None) -> None:
    """A refused job ends failed with its reason (its row too), and the refusal is counted for the alert.

    `queue`: the declared queue it was found on (never the job's own `origin`, which Redis chose).
    `pipeline`: more commands of the caller's to send in the same transaction.
    """
    logger.error("job %s refused on '%s': %s", job.id, queue.name, reason, extra={"job_id": job.id, "queue": queue.name})
    pipe = pipeline if pipeline is not None else connection.pipeline()
    job.set_status(JobStatus.FAILED, pipeline=pipe)
    queue.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=reason, pipeline=pipe)
    Result.create_failure(job, job.failure_ttl, reason, worker_name=worker_name, pipeline=pipe)
    pipe.hincrby(keys.REFUSED, queue.name, 1)
    pipe.execute()
    # The refusal alone in the ledger: a refused job's meta is a stranger's (a forged hash), not its history.
    mark_ended(job.id, failed=True, reason=reason, ledger=outcomes.refusal_ledger(reason, worker_name))


def _pushed_before_signing(job: Job) -> bool:
    """An unsigned job that is exactly a pending outbox row's call: pushed by the layer before jobs
    were signed (queued across the upgrade), so it runs. A hand-written hash has no such row, or
    another call (tests/security/test_forged_jobs.py). One database read, for unsigned jobs only."""
    from django.db import DatabaseError

    from .models import BackgroundJob

    try:
        row = BackgroundJob.objects.filter(pk=job.id, state=BackgroundJob.State.PENDING).values_list("queue", "func", "args", "kwargs").first()
    except DatabaseError:
        return False
    spec = catalog.jobs().get(job.func_name or "")
    return (
        row is not None
        and spec is not None
        and row == (job.origin, job.func_name, list(job.args), dict(job.kwargs))
        and (job.retries_left or 0) <= spec.max_retries
    )
