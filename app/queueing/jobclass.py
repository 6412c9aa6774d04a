"""django-rq's JOB_CLASS: JSON, never pickle, and only declared functions.

A job's function is resolved through the registry of declared jobs, never by importing the
name Redis holds: a hand-written hash naming `os.system` gets an UndeclaredJobError and nothing is
imported. An operator's delete or cancel (django-rq's admin, `failedjobs --delete`) closes the
job's outbox row as cancelled, so the reconciler never brings it back.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer

from . import registry, rq_compat
from .ends import mark_cancelled
from .errors import UndeclaredJobError


class QueueingJob(Job):
    """An RQ job that defaults to JSON and runs only declared functions."""

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=serializer or JSONSerializer)

    @property
    def func(self) -> Any:
        refusal = registry.refusal(self.func_name, [])
        if refusal is not None or self.instance is not None:
            raise UndeclaredJobError(refusal or f"{self.func_name!r}: jobs on instances are not declared jobs")
        return registry.declared_function(self.func_name)  # type: ignore[arg-type]

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
    refusal = registry.refusal(job.func_name, rq_compat.callback_names(job))
    if refusal is not None:
        raise UndeclaredJobError(refusal)


def refusal_of(job: Job) -> str | None:
    """Why a dequeued job may not run here (undeclared function or callback, unreadable data)."""
    try:
        return registry.refusal(job.func_name, rq_compat.callback_names(job))
    except Exception as exc:  # corrupt or foreign data: JSON that does not decode, a pickle, ...
        return f"UnreadableJobError: the job's data could not be read as a JSON job ({type(exc).__name__})"
