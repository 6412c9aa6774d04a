"""The reliable-RQ layer: declared jobs, the outbox, workers, recovery, the scheduler, monitoring.

It imports rq, django_rq, redis and Django, never the EGOEJO domain: the domain declares its
queues, jobs and schedules to it (app/jobs/). Public API:

    from app.queueing import Retries, declare_queue, job, recurring

    emails = declare_queue("emails", timeout=60, retries=Retries(5, base=10, cap=600))

    @job(emails, owner="user_id")
    def send_welcome_email(user_id: int) -> dict: ...

    send_welcome_email.delay(user.pk)                     # after commit; or django_rq.enqueue(...)
    send_welcome_email.delay_in(timedelta(hours=1), user.pk)
"""

from .declarations import DeclaredJob, job, recurring
from .errors import PermanentJobError, TransientJobError, UndeclaredJobError, UnsupportedJobOption
from .registry import JobSpec, QueueSpec, Retries, declare_callback, declare_queue

__all__ = [
    "DeclaredJob",
    "JobSpec",
    "PermanentJobError",
    "QueueSpec",
    "Retries",
    "TransientJobError",
    "UndeclaredJobError",
    "UnsupportedJobOption",
    "declare_callback",
    "declare_queue",
    "job",
    "recurring",
]
