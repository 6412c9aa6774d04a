"""A backend outage answers 503 with Retry-After on the API, in JSON; a bug answers 500 in JSON;
other pages keep Django's error page. Django's own handler answered an HTML 500 to an API client
whose request met a terminated database connection (the fault campaign's `pg_terminate`)."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.urls import path
from redis.exceptions import ConnectionError as RedisConnectionError

from app.urls import handler500  # noqa: F401  (the handler this urlconf uses too)


def database_gone(request: HttpRequest) -> HttpResponse:
    raise OperationalError("terminating connection due to administrator command")


def redis_gone(request: HttpRequest) -> HttpResponse:
    raise RedisConnectionError("Connection refused")


def broken(request: HttpRequest) -> HttpResponse:
    raise ValueError("a bug")


urlpatterns = [
    path("api/db/", database_gone),
    path("api/redis/", redis_gone),
    path("api/bug/", broken),
    path("page/db/", database_gone),
]


@pytest.fixture
def api(client):  # type: ignore[no-untyped-def]
    client.raise_request_exception = False
    return client


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/api/db/", "/api/redis/"])
def test_an_unreachable_backend_answers_503_with_retry_after(api, url):
    response = api.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "The service is briefly unavailable; try again in a few seconds."}
    assert "réessayez" in api.get(url).json()["error"]  # French by default, as every answer


@pytest.mark.urls(__name__)
def test_a_bug_answers_500_in_json_without_details(api):
    response = api.get("/api/bug/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error; it has been reported."}
    assert "a bug" not in response.content.decode()


@pytest.mark.urls(__name__)
def test_pages_outside_the_api_keep_djangos_error_page(api):
    response = api.get("/page/db/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
