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
