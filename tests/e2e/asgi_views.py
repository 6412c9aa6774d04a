"""Async views that use only Django's standard task API (and `.adelay()`), served by a real ASGI
server in tests/e2e/test_asgi_tasks.py: the project's URLs plus these."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path

from app.queueing import rq_compat
from app.queueing.connections import redis_connection
from app.urls import urlpatterns as project_urls
from tests import fixtures


def _in_redis(job_id: str) -> bool:
    return bool(redis_connection().exists(rq_compat.job_key(job_id)))


async def enqueue(request: HttpRequest) -> JsonResponse:
    result = await fixtures.add_numbers.aenqueue(int(request.GET["a"]), int(request.GET["b"]))
    job = await fixtures.say_hello.adelay("asgi")
    ready = (await fixtures.add_numbers.aget_result(result.id)).status
    # Recorded and committed (autocommit), not pushed yet: the push waits for the response.
    pushed = await sync_to_async(_in_redis)(result.id) or await sync_to_async(_in_redis)(job.id)
    return JsonResponse({"task_id": result.id, "job_id": job.id, "status": ready, "pushed_before_response": pushed})


def _enqueue_then_fail() -> None:
    with transaction.atomic():
        fixtures.add_numbers.enqueue(1, 1)
        raise RuntimeError("rolled back")


async def rolled_back(request: HttpRequest) -> JsonResponse:
    try:
        await sync_to_async(_enqueue_then_fail)()
    except RuntimeError:
        pass
    return JsonResponse({"rolled_back": True})


async def result(request: HttpRequest, task_id: str) -> JsonResponse:
    answer = await fixtures.add_numbers.aget_result(task_id)
    value = answer.return_value if answer.is_finished and answer.status == "SUCCESSFUL" else None
    return JsonResponse({"status": answer.status, "return_value": value, "attempts": answer.attempts})


urlpatterns = [
    *project_urls,
    path("test/tasks/enqueue/", enqueue),
    path("test/tasks/rolled-back/", rolled_back),
    path("test/tasks/<str:task_id>/", result),
]
