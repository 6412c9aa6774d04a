"""Every URL of app/urls.py, attacked with bad input: never a 500, and on the API a readable JSON 4xx.

The routes are enumerated from the URLconf (a route added later is swept without touching this
file): each is called with every method, with its path parameters malformed (non-numeric,
negative, huge, NUL bytes, traversal), with hostile bodies (malformed JSON, JSON of the wrong
type, NaN/Infinity, huge numbers, deep nesting, an oversize body, wrong or broken Content-Types),
hostile headers (garbage Accept-Language, huge and garbage cookies, bad Host, X-Forwarded-For and
Authorization garbage) and hostile query strings. The requests go through Django's whole stack
(middleware, URL resolution, handlers) in this process, with a member logged in; the raw-socket
limits in front of it (header count and size) are attacked by tests/security/test_uploads.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from app.models import UploadedImage
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
HUGE = "9" * 40


def routes() -> list[str]:
    """The top-level routes of app/urls.py (the included admin and django-rq pages are swept at their root)."""
    found = []
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLPattern):
            found.append("/" + str(pattern.pattern))
        elif isinstance(pattern, URLResolver):
            found.append("/" + str(pattern.pattern))
    return found


ROUTES = routes()
API_ROUTES = [route for route in ROUTES if route.startswith("/api/")]


@dataclass
class World:
    client: Client
    project_id: int
    image_id: int
    stem: str

    def sample(self, route: str) -> str:
        """A path of `route` with well-formed parameters that exist and belong to the member."""
        path = route.replace("<int:project_id>", str(self.project_id)).replace("<int:image_id>", str(self.image_id))
        path = path.replace("<str:job_id>", "some-job-id").replace("<str:token>", "MQ.c1a2b3-0123456789abcdef")  # a well-formed, dead account link
        path = path.replace("<path:key>", f"uploads/renditions/{self.stem}/v1/thumbnail-1x1.jpg")
        assert "<" not in path, f"no sample for a parameter of {route}: add one here"
        return path

    def malformed(self, route: str) -> list[str]:
        """Paths of `route` with each parameter malformed in every way a client can send it."""
        values = {
            "int": ["abc", "-1", "0", HUGE, "1e5", "1.5", "%00", "%ff%fe", "١٢", "+1"],
            "str": ["%00", "x" * 5000, "..", "%2e%2e", "%ff%fe", "é" * 300, "a%0d%0aSet-Cookie:x=1", "*", "%25"],
            "path": [
                "../../../etc/passwd", "%00", f"uploads/renditions/{self.stem}/%00/x.jpg",
                f"uploads/renditions/{self.stem}/v/%00.jpg", f"uploads/renditions/{self.stem}/../../x/y.jpg",
                "uploads/originals/x.jpg", "a/" * 2000, "%ff%fe/x/y/z/w", f"uploads/renditions/{self.stem}/v/" + "x" * 5000,
                "//etc/passwd", "uploads\\renditions\\a\\b\\c",
            ],
        }
        paths = []
        for converter, name in re.findall(r"<(\w+):(\w+)>", route):
            for value in values[converter]:
                path = re.sub(rf"<{converter}:{name}>", lambda _m, v=value: v, route)
                paths.append(self.sample(path))
        return paths


@pytest.fixture
def world(settings, media_root) -> Iterator[World]:  # type: ignore[no-untyped-def]
    settings.THROTTLE_UPLOADS_PER_USER = "100000/hour"  # the sweep attacks the parser, not the budget
    settings.THROTTLE_REGISTRATIONS_PER_IP = "100000/hour"
    settings.THROTTLE_CONTRIBUTIONS_PER_USER = "100000/hour"
    settings.THROTTLE_LOGIN_FAILURES_PER_IP = "100000/hour"
    settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = "100000/hour"
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    user = make_user("mallory")
    project = make_project("jardin")
    stem = "0" * 32
    image = UploadedImage.objects.create(
        owner=user, original_path=f"uploads/originals/{stem}.jpg", original_name="x.jpg",
        original_format="JPEG", original_width=1, original_height=1,
    )
    client = Client(raise_request_exception=False)
    client.force_login(user)
    yield World(client, project.pk, image.pk, stem)


def problems_with(route: str, response, *, method: str = "get") -> list[str]:  # type: ignore[no-untyped-def]
    """What is wrong with an answer to hostile input: a 5xx anywhere; on the API, a 4xx that is not a JSON error."""
    status = response.status_code
    if status == 503 and route in ("/healthz", "/livez"):
        return []  # their answer when the platform is not running (no worker here): tests/test_health.py
    if status >= 500:
        return [f"{status}"]
    if not route.startswith("/api/") or status < 400 or method == "head":
        return []
    if not response.get("Content-Type", "").startswith("application/json"):
        return [f"{status} answered as {response.get('Content-Type')!r}, not JSON"]
    try:
        body = json.loads(response.content)
    except ValueError:
        return [f"{status} with a body that is not JSON"]
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"].strip():
        return [f"{status} without a readable 'error': {body!r}"]
    return []


def call(client: Client, method: str, path: str, data: bytes = b"", content_type: str = "application/octet-stream", **extra: str):  # type: ignore[no-untyped-def]
    """The request exactly as given: raw body bytes, raw content type, raw WSGI headers."""
    return client.generic(method.upper(), path, data=data, content_type=content_type, **extra)


def test_the_sweep_knows_every_route():
    # Every parameter of every route has a sample and a set of malformed values (World.sample).
    assert "/api/projects/<int:project_id>/contributions/" in ROUTES and "/media/<path:key>" in ROUTES
    for route in ROUTES:
        for converter, _name in re.findall(r"<(\w+):(\w+)>", route):
            assert converter in ("int", "str", "path"), route


@pytest.mark.parametrize("route", ROUTES)
def test_every_method_on_every_route_is_answered_without_a_5xx(world: World, route: str):
    failures = []
    for method in METHODS:
        response = call(world.client, method, world.sample(route))
        failures += [f"{method.upper()} {route}: {p}" for p in problems_with(route, response, method=method)]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("route", [route for route in ROUTES if "<" in route])
def test_malformed_path_parameters_are_a_json_4xx(world: World, route: str):
    failures = []
    for path in world.malformed(route):
        for method in ("get", "post"):
            response = call(world.client, method, path)
            if route.startswith("/api/") and response.status_code < 400 and method == "get":
                failures.append(f"{method.upper()} {path[:120]}: {response.status_code} for a malformed parameter")
            failures += [f"{method.upper()} {path[:120]}: {p}" for p in problems_with(route, response, method=method)]
    assert not failures, "\n".join(failures)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (content type, body): what a broken or hostile client sends as a request body.
HOSTILE_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b"{"),
    ("application/json", b"not json"),
    ("application/json", b""),
    ("application/json", b"\xff\xfe\x00garbage"),
    ("application/json", b"[]"),
    ("application/json", b"[1, 2, 3]"),
    ("application/json", b'"a string"'),
    ("application/json", b"42"),
    ("application/json", b"null"),
    ("application/json", b"true"),
    ("application/json", b'{"amount": NaN, "username": NaN, "password": NaN}'),
    ("application/json", b'{"amount": Infinity, "username": Infinity, "email": -Infinity}'),
    ("application/json", b'{"amount": "NaN"}'),
    ("application/json", b'{"amount": "sNaN"}'),
    ("application/json", b'{"amount": "-Infinity"}'),
    ("application/json", b'{"amount": "1e999999999"}'),
    ("application/json", b'{"amount": 1e308}'),
    ("application/json", b'{"amount": 1e400}'),
    ("application/json", b'{"amount": ' + b"9" * 4000 + b"}"),
    ("application/json", b'{"amount": ' + b"9" * 5000 + b"}"),
    ("application/json", b'{"amount": "' + b"9" * 100_000 + b'"}'),
    ("application/json", b'{"amount": "0.' + b"0" * 100_000 + b'1"}'),
    ("application/json", b'{"amount": "12", "amount": "13"}'),
    ("application/json", b'{"amount": ["12"], "username": ["a"], "password": {"x": 1}, "email": 5}'),
    ("application/json", b'{"amount": {"$gt": 0}, "username": {"a": 1}, "password": [], "email": []}'),
    ("application/json", b'{"amount": true, "username": true, "password": false, "email": true}'),
    ("application/json", b'{"amount": null, "username": null, "password": null, "email": null}'),
    ("application/json", b'{"amount": "1\\u0000", "username": "a\\u0000b", "password": "\\u0000", "email": "a@b\\u0000.org"}'),
    ("application/json", b'{"amount": "\\ud800", "username": "\\ud800", "password": "\\udfff", "email": "\\ud800@x.org"}'),
    ("application/json", b'{"username": "' + b"u" * 100_000 + b'", "password": "' + b"p" * 100_000 + b'", "email": "a@b.org"}'),
    ("application/json", _nested(100_000).encode()),
    ("application/json", ('{"a":' * 50_000 + "1" + "}" * 50_000).encode()),
    ("application/json", b'{"amount": "5"}' + b" " * (3 * 1024 * 1024)),  # over DATA_UPLOAD_MAX_MEMORY_SIZE
    ("application/json; charset=utf-16", '{"amount": "5"}'.encode("utf-16")),
    ("application/json; charset=bogus-charset", b'{"amount": "5"}'),
    ("text/plain", b'{"amount": "5"}'),
    ("application/xml", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>"),
    ("application/x-www-form-urlencoded", b"amount=5"),
    ("application/x-www-form-urlencoded", "&".join(f"f{n}=1" for n in range(5000)).encode()),
    ("application/x-www-form-urlencoded; charset=bogus", b"amount=%ff%fe"),
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=image\r\n\r\nabc\r\n--x--\r\n"),
    ("multipart/form-data; boundary=", b"----\r\n"),
    ("multipart/form-data; boundary=x", b"garbage without any boundary"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\n" + b"X-Header: y\r\n" * 5000 + b"\r\nbody\r\n--x--\r\n"),
    ("multipart/form-data; boundary=" + "b" * 1000, b"--" + b"b" * 1000 + b"\r\n\r\n"),
    ("multipart/form-data; boundary=x", b"".join(b"--x\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\n1\r\n" % n for n in range(2000)) + b"--x--\r\n"),
    ("multipart/form-data; boundary=x", b"".join(b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"%d.jpg\"\r\n\r\n1\r\n" % n for n in range(200)) + b"--x--\r\n"),
    ("image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 100),
    ("", b"amount=5"),
    ("garbage/;;;===", b"{}"),
]


@pytest.mark.parametrize("route", ROUTES)
def test_hostile_bodies_are_a_json_4xx(world: World, route: str):
    failures = []
    path = world.sample(route)
    for method in ("post", "put", "patch"):
        for content_type, body in HOSTILE_BODIES:
            response = call(world.client, method, path, data=body, content_type=content_type)
            failures += [f"{method.upper()} {route} [{content_type[:40]}] {body[:40]!r}: {p}" for p in problems_with(route, response)]
    assert not failures, "\n".join(failures)


HOSTILE_HEADERS: list[dict[str, str]] = [
    {"HTTP_ACCEPT_LANGUAGE": "x" * 10_000},
    {"HTTP_ACCEPT_LANGUAGE": "*;q=xyz, fr;q=-1, en;q=NaN, ;;;, " + "de-DE-1996-x-" * 200},
    {"HTTP_ACCEPT_LANGUAGE": "\u00e9\u00e8;q=1, \x00, ../../etc"},
    {"HTTP_ACCEPT_LANGUAGE": ",".join(f"l{n};q=0.{n % 9}" for n in range(5000))},
    {"HTTP_COOKIE": "sessionid=" + "a" * 100_000},
    {"HTTP_COOKIE": "; ".join(f"c{n}=v" for n in range(5000))},
    {"HTTP_COOKIE": 'sessionid="\\x00\\xff"; csrftoken=;;;=; =; "=="'},
    {"HTTP_COOKIE": "sessionid=../../../etc/passwd; csrftoken=\u00e9"},
    {"HTTP_HOST": "evil.example.org"},
    {"HTTP_HOST": "a" * 5000},
    {"HTTP_HOST": "[::1"},
    {"HTTP_HOST": "localhost:notaport"},
    {"HTTP_HOST": "local host"},
    {"HTTP_HOST": ""},
    {"HTTP_X_FORWARDED_FOR": "not-an-ip, " * 2000},
    {"HTTP_X_FORWARDED_FOR": "\x00, 999.999.999.999, ::ffff:zz, " + "1.2.3.4," * 3000},
    {"HTTP_X_FORWARDED_HOST": "evil.example.org", "HTTP_X_FORWARDED_PROTO": "gopher"},
    {"HTTP_AUTHORIZATION": "Bearer " + "x" * 100_000},
    {"HTTP_AUTHORIZATION": "Bearer \u00e9\x00"},
    {"HTTP_AUTHORIZATION": "Basic !!!notbase64"},
    {"HTTP_AUTHORIZATION": "Bearer"},
    {"HTTP_X_CSRFTOKEN": "x" * 100_000},
    {"HTTP_X_CSRFTOKEN": "\x00\xff"},
    {"HTTP_ACCEPT": "application/openmetrics-text; version=\x00; q=abc, */*;q=" + "9" * 5000},
    {"HTTP_IDEMPOTENCY_KEY": "k" * 100_000},
    {"HTTP_IDEMPOTENCY_KEY": "\x00\u00e9"},
    {"HTTP_RANGE": "bytes=-99999999999999999999999"},
    {"HTTP_IF_MODIFIED_SINCE": "yesterday"},
    {"HTTP_REFERER": "\x00" * 100},
    {"CONTENT_LENGTH": "-1"},
    {"CONTENT_LENGTH": "abc"},
    {"CONTENT_LENGTH": HUGE},
]


@pytest.mark.parametrize("route", ROUTES)
def test_hostile_headers_are_never_a_5xx(world: World, route: str):
    failures = []
    path = world.sample(route)
    for headers in HOSTILE_HEADERS:
        for method in ("get", "post"):
            kwargs = {"data": b'{"amount": "5"}', "content_type": "application/json"} if method == "post" else {}
            response = call(world.client, method, path, **kwargs, **headers)
            label = ", ".join(f"{k}={v[:30]!r}" for k, v in headers.items())
            failures += [f"{method.upper()} {route} [{label}]: {p}" for p in problems_with(route, response)]
    assert not failures, "\n".join(failures)


HOSTILE_QUERIES = [
    "?" + "&".join(f"a{n}=1" for n in range(5000)),
    "?page=-1&limit=" + HUGE + "&offset=NaN",
    "?%ff%fe=%00",
    "?" + "x" * 50_000,
    "?a=1&a=2&a[]=3&a[b]=4",
    "?format=json&callback=alert(1)",
]


@pytest.mark.parametrize("route", ROUTES)
def test_hostile_query_strings_are_never_a_5xx(world: World, route: str):
    failures = []
    path = world.sample(route)
    for query in HOSTILE_QUERIES:
        for method in ("get", "post"):
            response = call(world.client, method, path + query)
            failures += [f"{method.upper()} {route}{query[:40]}: {p}" for p in problems_with(route, response)]
    assert not failures, "\n".join(failures)


def test_an_anonymous_client_gets_the_same_json_errors(world: World):
    anonymous = Client(raise_request_exception=False)
    failures = []
    for route in API_ROUTES:
        for method in METHODS:
            response = call(anonymous, method, world.sample(route), data=b"{", content_type="application/json")
            failures += [f"{method.upper()} {route}: {p}" for p in problems_with(route, response, method=method)]
    assert not failures, "\n".join(failures)


def test_an_unknown_api_path_is_a_json_404(world: World):
    for path in ("/api/", "/api/nothing/", "/api/projects/abc/contributions/", "/api/images/-1/", f"/api/images/{HUGE}/x"):
        response = world.client.get(path)
        assert response.status_code == 404, path
        assert problems_with("/api/", response) == [], path
