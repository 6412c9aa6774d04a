"""Three registration-like views that differ only in what they do about the welcome mail."""

from __future__ import annotations

import itertools
import os

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from app.jobs import dispatch, emails
from app.jobs.queues import EMAILS, enqueue, func_path
from app.queueing.models import BackgroundJob

_serial = itertools.count()


def _create_user() -> int:
    name = f"bench{os.getpid()}-{next(_serial)}"
    return get_user_model().objects.create(username=name, email=f"{name}@example.org").pk


@csrf_exempt
def plain(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        user_id = _create_user()
    return JsonResponse({"id": user_id}, status=201)


@csrf_exempt
def with_enqueue(request: HttpRequest) -> JsonResponse:
    """The project's path: outbox row in the transaction, pushed once the response has gone."""
    with transaction.atomic():
        user_id = _create_user()
        job_id = enqueue(emails.send_welcome_email, user_id, owner_id=user_id)
    return JsonResponse({"id": user_id, "job": job_id}, status=201)


@csrf_exempt
def with_enqueue_no_push(request: HttpRequest) -> JsonResponse:
    """Diagnostic: the project's path with the push after the response skipped. Client and server
    share this machine's two cores, so work the server does after its response can still delay
    the client; this row shows how much of the added time is that."""
    response = with_enqueue(request)
    dispatch._state.pending = []
    return response


@csrf_exempt
def with_push_in_request(request: HttpRequest) -> JsonResponse:
    """The previous design, for comparison: the same outbox row, pushed before the response."""
    with transaction.atomic():
        user_id = _create_user()
        job_id = f"inline-{os.getpid()}-{next(_serial)}"
        path_ = func_path(emails.send_welcome_email)
        BackgroundJob.objects.create(id=job_id, queue=EMAILS.name, func=path_, args=[user_id], kwargs={}, owner_id=user_id)
    dispatch.send([dispatch.Push(EMAILS, job_id, path_, [user_id], {})])
    return JsonResponse({"id": user_id, "job": job_id}, status=201)


urlpatterns = [
    path("bench/plain/", plain),
    path("bench/enqueue/", with_enqueue),
    path("bench/enqueue-no-push/", with_enqueue_no_push),
    path("bench/enqueue-push-in-request/", with_push_in_request),
    path("", include("app.urls")),
]
