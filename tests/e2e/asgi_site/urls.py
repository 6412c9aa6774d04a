"""Views that enqueue three jobs on two queues and answer in each way a Django view can: a plain
sync view, an `async def` view, a streaming response from a sync iterator and from an async one.

`/t/pipelines/` tells the test how many Redis round trips (pipelines) this process made since it
was last asked, and how many commands each carried: the push is real, it is only counted.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis.client
from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from app.jobs import emails
from tests import fixtures

_pipelines: list[int] = []
_lock = threading.Lock()
_real_execute = redis.client.Pipeline.execute


def _counting_execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
    with _lock:
        _pipelines.append(len(pipe.command_stack))
    return _real_execute(pipe, *args, **kwargs)


redis.client.Pipeline.execute = _counting_execute  # type: ignore[method-assign]


def _enqueue_three() -> list[str]:
    with transaction.atomic():
        return [
            fixtures.say_hello.delay("one").id,
            fixtures.say_hello.delay("two").id,
            emails.send_email.delay("t@example.org", "subject", "<p>body</p>").id,
        ]


@csrf_exempt
def sync_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"jobs": _enqueue_three()})


@csrf_exempt
async def async_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"jobs": await sync_to_async(_enqueue_three)()})


CHUNKS = 20


@csrf_exempt
def streaming_view(request: HttpRequest) -> StreamingHttpResponse:
    jobs = _enqueue_three()

    def body() -> Iterator[bytes]:
        yield b'{"jobs": ["' + '", "'.join(jobs).encode() + b'"], "padding": "'
        for _ in range(CHUNKS):
            yield b"x" * 1024
        yield b'"}'

    return StreamingHttpResponse(body(), content_type="application/json")


@csrf_exempt
async def async_streaming_view(request: HttpRequest) -> StreamingHttpResponse:
    jobs = await sync_to_async(_enqueue_three)()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"jobs": ["' + '", "'.join(jobs).encode() + b'"], "padding": "'
        for _ in range(CHUNKS):
            yield b"x" * 1024
        yield b'"}'

    return StreamingHttpResponse(body(), content_type="application/json")


def pipelines(request: HttpRequest) -> JsonResponse:
    with _lock:
        seen = list(_pipelines)
        _pipelines.clear()
    return JsonResponse({"pipelines": seen})


urlpatterns = [
    path("t/sync/", sync_view),
    path("t/async/", async_view),
    path("t/stream/", streaming_view),
    path("t/astream/", async_streaming_view),
    path("t/pipelines/", pipelines),
    path("", include("app.urls")),
]
