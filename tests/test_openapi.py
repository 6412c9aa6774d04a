"""app/openapi.yaml against the API's real requests and answers: every operation, every documented status.

A client walks the API as a browser app would (CSRF cookie and header, sessions), each request
and each answer is validated with openapi-core, and the test fails if the description documents
an operation or a status the walk did not see, or if the URLconf has an API route it lacks.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import django_rq
import pytest
import yaml
from django.http import HttpResponse
from django.http.request import RawPostDataException
from django.test import Client
from django.urls import URLPattern, get_resolver
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

from app.queueing.scheduling import ProjectScheduler
from app.queueing.workers import InProcessWorker
from app.views.schema import OPENAPI_PATH
from tests.factories import confirmation_token, jpeg_bytes, make_project, reset_token

pytestmark = pytest.mark.django_db

SPEC = OpenAPI.from_file_path(str(OPENAPI_PATH))
DOCUMENT = yaml.safe_load(OPENAPI_PATH.read_text())
METHODS = ("get", "post", "put", "patch", "delete")


class _Request(DjangoOpenAPIRequest):
    @property
    def body(self) -> bytes:
        try:
            return super().body
        except RawPostDataException:  # a multipart upload, read by the view as a stream
            return b""


def _openapi_path(route: str) -> str:
    return route.replace("<int:", "{").replace("<str:", "{").replace("<path:", "{").replace(">", "}")


class Walker:
    """A Django test client with CSRF enforced that validates every exchange against the description."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.seen: set[tuple[str, str, int]] = set()

    @property
    def token(self) -> str:
        return self.client.cookies["csrftoken"].value

    def call(self, method: str, path: str, *, body: object = None, form: dict | None = None, csrf: bool = True, valid_request: bool = True, **extra):  # type: ignore[no-untyped-def]
        headers = dict(extra)
        if csrf and "csrftoken" in self.client.cookies:
            headers["HTTP_X_CSRFTOKEN"] = self.token
        if form is not None:  # an HTML form's submission, as a browser sends it
            response = getattr(self.client, method)(path, data=urlencode(form), content_type="application/x-www-form-urlencoded", **headers)
        elif isinstance(body, dict) and "image" in body:
            response = getattr(self.client, method)(path, data=body, **headers)
            valid_request = False  # the multipart body was consumed by the view; its schema is checked by hand below
        elif body is not None:
            response = getattr(self.client, method)(path, data=json.dumps(body), content_type="application/json", **headers)
        else:
            response = getattr(self.client, method)(path, **headers)
        request = _Request(response.wsgi_request)
        if valid_request:
            SPEC.validate_request(request)
        checked = response
        if response.streaming:  # a file: validated as the bytes it streams
            checked = HttpResponse(b"".join(response.streaming_content), status=response.status_code, content_type=response["Content-Type"])
        SPEC.validate_response(request, DjangoOpenAPIResponse(checked))
        route = "/" + _openapi_path(str(response.wsgi_request.resolver_match.route))
        self.seen.add((route, method, response.status_code))
        return response


def documented() -> set[tuple[str, str, int]]:
    return {
        (path, method, int(status))
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in METHODS
        for status in operation["responses"]
    }


@pytest.fixture
def walker(redis_conn, settings) -> Iterator[Walker]:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    # Small budgets and limits, so that the walk meets each 429 and the 413 (tests/security attacks them in earnest).
    settings.THROTTLE_REGISTRATIONS_PER_ADDRESS = "1/hour"
    settings.THROTTLE_LOGIN_FAILURES_PER_CLIENT_ACCOUNT = "2/15minutes"
    settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = "2/15minutes"
    settings.THROTTLE_LOGIN_FAILURES_PER_IP = "6/15minutes"
    settings.THROTTLE_PASSWORD_RESETS_PER_ADDRESS = "1/hour"
    settings.THROTTLE_UPLOADS_PER_USER = "4/hour"
    settings.THROTTLE_CONTRIBUTIONS_PER_USER = "7/hour"
    settings.IMAGE_UPLOAD_MAX_BYTES = 256 * 1024
    yield Walker()


def test_every_operation_answers_as_described(walker: Walker, redis_conn, django_capture_on_commit_callbacks):
    w = walker
    project = make_project("jardin")

    # Anonymous
    assert w.call("get", "/api/projects/").status_code == 200
    assert w.call("get", "/api/impact/", valid_request=False).status_code == 401
    assert w.call("get", "/api/images/1/", valid_request=False).status_code == 401
    assert w.call("get", "/media/uploads/renditions/x/y/thumbnail-240x320.jpg", valid_request=False).status_code == 401
    assert w.call("get", "/api/jobs/nope/", valid_request=False).status_code == 401
    assert w.call("post", "/api/auth/login/", body={"username": "x", "password": "y"}, valid_request=False).status_code == 403
    assert w.call("get", "/api/auth/csrf/").status_code == 200
    assert w.call("post", f"/api/projects/{project.pk}/contributions/", body={"amount": "5"}, valid_request=False).status_code == 401
    assert w.call("post", "/api/images/", body={"image": io.BytesIO(b"x")}).status_code == 401
    assert w.call("post", "/api/auth/register/", body={"username": "", "email": "no", "password": "1"}, valid_request=False).status_code == 400
    assert w.call("post", "/api/auth/register/", body={"username": "ana"}, csrf=False, valid_request=False).status_code == 403
    for path in ("/api/auth/confirm/", "/api/auth/password-reset/", "/api/auth/password-reset/confirm/"):
        assert w.call("post", path, body={}, csrf=False, valid_request=False).status_code == 403

    # Register, log in, then the member's own operations
    with django_capture_on_commit_callbacks(execute=True):
        registered = w.call(
            "post", "/api/auth/register/",
            body={"username": "ana", "email": "ana@example.org", "password": "a-long-pass-phrase-42", "first_name": "Ana"},
        )
    assert registered.status_code == 202
    again = {"username": "ana2", "email": "ana@example.org", "password": "a-long-pass-phrase-42"}
    assert w.call("post", "/api/auth/register/", body=again).status_code == 429
    # Unconfirmed: the login fails like a wrong password, until the mailed link is followed.
    assert w.call("post", "/api/auth/login/", body={"username": "ana", "password": "a-long-pass-phrase-42"}).status_code == 400
    stranger = {"REMOTE_ADDR": "192.0.2.99"}  # spends its own failure budget, not the walk's
    for expected in (400, 400, 400, 400, 400, 400, 429):
        assert w.call("post", "/api/auth/confirm/", body={"token": "MQ.forged-token", "password": "x"}, **stranger).status_code == expected
    assert w.call("post", "/api/auth/confirm/", body={"token": confirmation_token("ana"), "password": "a-long-pass-phrase-42"}).status_code == 200
    assert w.call("post", "/api/auth/logout/").status_code == 200
    for expected in (400, 400, 429):
        assert w.call("post", "/api/auth/login/", body={"username": "ghost", "password": "wrong"}).status_code == expected
    assert w.call("post", "/api/auth/login/", body={"username": "ana", "password": "a-long-pass-phrase-42"}).status_code == 200
    assert w.call("post", "/api/auth/logout/").status_code == 200
    assert w.call("post", "/api/auth/logout/", csrf=False, valid_request=False).status_code == 403
    assert w.call("post", "/api/auth/login/", body={"username": "ana", "password": "wrong"}).status_code == 400
    assert w.call("post", "/api/auth/login/", body={"username": "ana", "password": "a-long-pass-phrase-42"}).status_code == 200
    assert w.call("get", f"/api/jobs/{registered.json()['job_id']}/").status_code == 200
    assert w.call("get", "/api/jobs/not-a-job/").status_code == 404

    # The pages the mailed links open: a form (GET changes nothing), its submission.
    with django_capture_on_commit_callbacks(execute=True):
        w.call("post", "/api/auth/register/", body={"username": "bea", "email": "bea@example.org", "password": "a-long-pass-phrase-42"})
    bea = confirmation_token("bea")
    assert w.call("get", f"/account/confirm/{bea}/").status_code == 200
    assert w.call("post", f"/account/confirm/{bea}/", form={"password": "not-hers"}).status_code == 400
    assert w.call("post", f"/account/confirm/{bea}/", form={"password": "x"}, **stranger).status_code == 429
    with django_capture_on_commit_callbacks(execute=True):
        assert w.call("post", f"/account/confirm/{bea}/", form={"password": "a-long-pass-phrase-42"}).status_code == 200
    # Password reset: asked for (the same answer for any address), then set with the mailed token.
    with django_capture_on_commit_callbacks(execute=True):
        assert w.call("post", "/api/auth/password-reset/", body={"email": "ana@example.org"}).status_code == 202
    assert w.call("post", "/api/auth/password-reset/", body={"email": "ana@example.org"}).status_code == 429
    assert w.call("post", "/api/auth/password-reset/", body={"email": "not an address"}).status_code == 400
    assert w.call("post", "/api/auth/password-reset/confirm/", body={"token": reset_token("ana"), "password": "123"}).status_code == 400
    assert w.call("post", "/api/auth/password-reset/confirm/", body={"token": "x", "password": "y"}, **stranger).status_code == 429
    assert w.call("post", "/api/auth/password-reset/confirm/", body={"token": reset_token("ana"), "password": "a-new-pass-phrase-43"}).status_code == 200
    bea_reset = reset_token("bea")
    assert w.call("get", f"/account/reset/{bea_reset}/").status_code == 200
    assert w.call("post", f"/account/reset/{bea_reset}/", form={"password": "123"}).status_code == 400
    assert w.call("post", f"/account/reset/{bea_reset}/", form={"password": "x"}, **stranger).status_code == 429
    assert w.call("post", f"/account/reset/{bea_reset}/", form={"password": "a-new-pass-phrase-44"}).status_code == 200
    assert w.call("post", "/api/auth/login/", body={"username": "ana", "password": "a-new-pass-phrase-43"}).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        assert w.call("post", f"/api/projects/{project.pk}/contributions/", body={"amount": "25.5"}).status_code == 201
    assert w.call("post", f"/api/projects/{project.pk}/contributions/", body={"amount": "-1"}).status_code == 400
    assert w.call("post", "/api/projects/999999/contributions/", body={"amount": "5"}).status_code == 404
    closed = make_project("ferme")
    closed.status = "closed"
    closed.save()
    assert w.call("post", f"/api/projects/{closed.pk}/contributions/", body={"amount": "5"}).status_code == 409
    with django_capture_on_commit_callbacks(execute=True):
        keyed = {"body": {"amount": "7"}, "HTTP_IDEMPOTENCY_KEY": "walk-1"}
        assert w.call("post", f"/api/projects/{project.pk}/contributions/", **keyed).status_code == 201
    assert w.call("post", f"/api/projects/{project.pk}/contributions/", **keyed).status_code == 200
    assert w.call("post", f"/api/projects/{project.pk}/contributions/", body={"amount": "8"}, HTTP_IDEMPOTENCY_KEY="walk-1").status_code == 422
    assert w.call("post", f"/api/projects/{project.pk}/contributions/", body={"amount": "5"}).status_code == 429
    assert w.call("post", f"/api/projects/{project.pk}/contributions/", body={"amount": "5"}, csrf=False, valid_request=False).status_code == 403
    assert w.call("get", "/api/impact/").status_code == 200

    photo = io.BytesIO(jpeg_bytes((640, 480)))
    photo.name = "photo.jpg"
    with django_capture_on_commit_callbacks(execute=True):
        uploaded = w.call("post", "/api/images/", body={"image": photo})
    assert uploaded.status_code == 202
    junk = io.BytesIO(b"not an image at all")
    junk.name = "junk.jpg"
    assert w.call("post", "/api/images/", body={"image": junk}).status_code == 400
    assert w.call("post", "/api/images/", body={"image": photo}, csrf=False).status_code == 403
    oversized = io.BytesIO(b"\xff" * (300 * 1024))
    oversized.name = "big.jpg"
    assert w.call("post", "/api/images/", body={"image": oversized}).status_code == 413
    assert w.call("post", "/api/images/", body={"image": photo}).status_code == 429
    assert w.call("get", f"/api/images/{uploaded.json()['id']}/").status_code == 200
    assert w.call("get", "/api/images/999999/").status_code == 404
    InProcessWorker([django_rq.get_queue("images")], connection=redis_conn).work(burst=True, with_scheduler=False)
    renditions = w.call("get", f"/api/images/{uploaded.json()['id']}/").json()["renditions"]
    thumbnail = urlsplit(renditions["thumbnail"]["url"]).path
    assert w.call("get", thumbnail).status_code == 200
    assert w.call("get", thumbnail.replace("thumbnail", "nothing")).status_code == 404

    # Operations
    assert w.call("get", "/api/schema/").status_code == 200
    assert w.call("get", "/livez").status_code == 200
    assert w.call("get", "/healthz").status_code == 503  # no worker, no scheduler yet
    workers = [InProcessWorker([django_rq.get_queue(name)], connection=redis_conn) for name in ("emails", "images", "metrics")]
    for worker in workers:
        worker.register_birth()
    ProjectScheduler(queue_name="metrics", interval=5, connection=redis_conn).heartbeat()
    assert w.call("get", "/healthz").status_code == 200
    for worker in workers:
        worker.register_death()
    assert w.call("get", "/metrics", valid_request=False).status_code == 401
    assert w.call("get", "/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789").status_code == 200

    missing = documented() - w.seen
    assert not missing, f"documented but never seen: {sorted(missing)}"
    undocumented = w.seen - documented()
    assert not undocumented, f"answered but not documented: {sorted(undocumented)}"


def test_every_api_route_is_described():
    routes = set()
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLPattern):
            route = "/" + str(pattern.pattern)
            routes.add(_openapi_path(route))
    assert routes == set(DOCUMENT["paths"]), "app/urls.py and app/openapi.yaml disagree"


def test_the_description_is_served_as_written(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/yaml")
    assert response.content == OPENAPI_PATH.read_bytes()
