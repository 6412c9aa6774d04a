"""The reliable-RQ layer: declared jobs, the outbox, workers, recovery, the scheduler, monitoring.

It imports rq, django_rq, redis and Django, never the EGOEJO domain: the domain declares its
queues, jobs and schedules to it (app/jobs/). Public API:

    from app.queueing import Retries, declare_queue, job, recurring

    emails = declare_queue("emails", timeout=60, retries=Retries(5, base=10, cap=600))

    @job(emails, owner="user_id")
    def send_welcome_email(user_id: int) -> dict: ...

    send_welcome_email.delay(user.pk)                     # after commit; or django_rq.enqueue(...)
    send_welcome_email.delay_in(timedelta(hours=1), user.pk)

    report_progress(done)   # in a long job, as it goes: its workers' deaths then don't count
                            # toward the abandon limit (recovery.py)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import JobSpec, QueueSpec, Retries, declare_queue
    from .declarations import DeclaredJob, job, recurring
    from .errors import PermanentJobError, TransientJobError, UndeclaredJobError, UnsupportedJobOption
    from .recovery import report_progress

# Loaded on first use: settings import app.queueing.connections, which must not pull in django-rq
# (django-rq reads the settings at import, while they are still being defined).
_PUBLIC = {
    "DeclaredJob": "declarations", "job": "declarations", "recurring": "declarations",
    "PermanentJobError": "errors", "TransientJobError": "errors", "UndeclaredJobError": "errors", "UnsupportedJobOption": "errors",
    "JobSpec": "catalog", "QueueSpec": "catalog", "Retries": "catalog", "declare_queue": "catalog",
    "report_progress": "recovery",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DeclaredJob",
    "JobSpec",
    "PermanentJobError",
    "QueueSpec",
    "Retries",
    "TransientJobError",
    "UndeclaredJobError",
    "UnsupportedJobOption",
    "declare_queue",
    "job",
    "recurring",
    "report_progress",
]
