"""django-rq's admin pages, with every delete recorded in the outbox before Redis forgets the job.

django-rq 4.2's delete views (one job, the bulk "delete" action, "clear failed jobs") fetch jobs
with rq's own `Job` class, not the configured JOB_CLASS, so `QueueingJob.delete` never ran: the
job's outbox row stayed pending and the reconciler re-sent the job a few seconds later. An
operator's delete must be final, so these three views close the rows first (as `cancelled`), and
refuse to delete when that cannot be recorded (a database error: an error page, nothing deleted).
Every other page is django-rq's own (a worker's page only for a worker's key: django-rq answers
500 for any other); "empty queue" goes through `DeclaredJobsQueue.empty`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern
from django.views.decorators.cache import never_cache
from django_rq import urls as django_rq_urls
from django_rq import views
from django_rq.queues import get_queue_by_index
from rq.registry import FailedJobRegistry

from . import rq_compat
from .outbox_ends import mark_cancelled

app_name = django_rq_urls.app_name
rq_compat.django_rq.GATE.check()  # the wrapped views are django-rq 4.2's: another version is said once


@never_cache
@staff_member_required
def delete_job(request: HttpRequest, queue_index: int, job_id: str) -> HttpResponse:
    if request.method == "POST":
        mark_cancelled([job_id], "deleted by an operator (django-rq)", strict=True)
    return views.delete_job(request, queue_index, job_id)


@never_cache
@staff_member_required
def actions(request: HttpRequest, queue_index: int) -> HttpResponse:
    if request.method == "POST" and request.POST.get("action") == "delete":
        mark_cancelled(request.POST.getlist("job_ids"), "deleted by an operator (django-rq)", strict=True)
    return views.actions(request, queue_index)


@never_cache
@staff_member_required
def delete_failed_jobs(request: HttpRequest, queue_index: int) -> HttpResponse:
    if request.method == "POST":
        # Failed rows are closed already, but a failure the worker could not record left its row
        # pending (the reconciler would read the end from the job's hash, deleted here).
        failed = FailedJobRegistry(queue=get_queue_by_index(queue_index))
        mark_cancelled(failed.get_job_ids(cleanup=False), "deleted by an operator (django-rq, failed jobs cleared)", strict=True)
    return views.delete_failed_jobs(request, queue_index)


@never_cache
@staff_member_required
def worker_details(request: HttpRequest, queue_index: int, key: str) -> HttpResponse:
    # django-rq answers 500 for a key that is not a worker's (Worker.find_by_key raises).
    if not rq_compat.is_worker_key(key):
        raise Http404("No such worker.")
    return views.worker_details(request, queue_index, key)


_DELETING_VIEWS: dict[str, Any] = {
    "delete_job": delete_job,
    "actions": actions,
    "delete_failed_jobs": delete_failed_jobs,
}
_WRAPPED_VIEWS: dict[str, Any] = {**_DELETING_VIEWS, "worker_details": worker_details}


def _patterns() -> list[URLPattern]:
    """django-rq's own URL patterns, the same routes and names, its deleting views wrapped."""
    patterns: list[URLPattern] = []
    for pattern in django_rq_urls.urlpatterns:
        view = _WRAPPED_VIEWS.get(pattern.name or "")
        patterns.append(URLPattern(pattern.pattern, view, pattern.default_args, pattern.name) if view else pattern)
    missing = set(_WRAPPED_VIEWS) - {p.name for p in django_rq_urls.urlpatterns}
    if missing:  # a django-rq upgrade renamed them: its deletes would bypass the outbox again
        raise ImproperlyConfigured(f"django-rq has no URL named {sorted(missing)}; check app/queueing/django_rq_pages.py")
    return patterns


urlpatterns = _patterns()
