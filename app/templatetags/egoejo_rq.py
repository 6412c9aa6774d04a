"""Template filters for the project's overrides of django-rq's admin pages."""

from __future__ import annotations

from django import template
from rq.job import Job

register = template.Library()


def last_line(text: str | None) -> str:
    """A traceback's last non-empty line: the exception and its message, the reason an operator needs."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


@register.filter
def failure_reason(job: Job) -> str:
    result = job.latest_result()
    return last_line(result.exc_string if result is not None else None)


@register.inclusion_tag("django_rq/egoejo_work_in_sight.html")
def work_in_sight(queue: object) -> dict[str, object]:
    """The queue's workers grouped by pool (state, current job, since when, processed counts), the
    suspension, and its retrying jobs (app/queueing/work_in_sight.py); autoescaped by Django."""
    from app.queueing import work_in_sight as sight

    name = str(getattr(queue, "name", ""))
    connection = getattr(queue, "connection")  # noqa: B009 - django-rq's Queue, typed loosely here
    work = sight.workers(connection)
    work.workers = [worker for worker in work.workers if name in worker.queues]
    return {"work": work, "pools": work.pool_rows(), "retrying": sight.retrying_jobs(connection, [name])}


@register.filter
def retry_state(job: Job) -> object:
    """The job's next attempt n/N, next run and last error while it waits to be retried, else None."""
    from app.queueing import work_in_sight as sight

    return sight.retry_state(job, sight.next_run_of(job))
