"""Three registration-like views that differ only in what they do about the welcome mail."""

from __future__ import annotations

import itertools
import os

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from app.jobs import emails
from app.queueing import dispatch
from app.queueing.catalog import Push
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
        job_id = emails.send_welcome_email.delay(user_id).id
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
        spec = emails.send_welcome_email.spec
        BackgroundJob.objects.create(id=job_id, queue=spec.queue_name, func=spec.path, args=[user_id], kwargs={}, owner_id=user_id)
    dispatch.send([Push(spec, job_id, [user_id], {}, None)])
    return JsonResponse({"id": user_id, "job": job_id}, status=201)


urlpatterns = [
    path("bench/plain/", plain),
    path("bench/enqueue/", with_enqueue),
    path("bench/enqueue-no-push/", with_enqueue_no_push),
    path("bench/enqueue-push-in-request/", with_push_in_request),
    path("", include("app.urls")),
]
