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
def test_a_backend_error_raised_in_a_view_answers_503_with_retry_after(api, url):
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


# -- the real thing: the project's own views, with the backend actually out of reach -----------


def _closed_port() -> int:
    from tests.smtp import free_port

    return free_port()  # bound a moment ago, released: nothing listens there


@pytest.fixture
def database_unreachable(transactional_db):  # type: ignore[no-untyped-def]
    """The default connection pointed at a database nobody serves (a closed port, or a SQLite
    file in a directory that does not exist), restored before the test database is flushed."""
    from django.db import connection

    saved = dict(connection.settings_dict)
    held = connection.connection  # set aside, not closed (a SQLite test database lives in memory)
    connection.connection = None
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent/egoejo/db.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
        connection.settings_dict.setdefault("OPTIONS", {})["connect_timeout"] = 3
    yield
    connection.connection = None
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)
    connection.connection = held


def _assert_503(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response.json() == {"error": "The service is briefly unavailable; try again in a few seconds."}


def test_the_project_list_answers_503_while_the_database_is_unreachable(api, database_unreachable):
    _assert_503(api.get("/api/projects/", HTTP_ACCEPT_LANGUAGE="en"))


@pytest.mark.django_db
def test_a_login_goes_through_while_the_throttles_redis_is_unreachable(api, settings):
    """Redis really out of reach (a closed port): the throttle fails open (app/services/throttling.py),
    the login is answered on its merits, never a 500 or a 503."""
    from tests.factories import make_user

    make_user("walter")
    settings.THROTTLE_REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = api.post(
        "/api/auth/login/", {"username": "walter", "password": "wrong"}, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 400 and response.json() == {"error": "Invalid username or password."}
