"""Uploads, attacked: a body far over the limit, many uploads in a row, oversized request headers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import jpeg_bytes, make_user

from .web import UPLOAD_LIMIT, Web, read_status, web_fixture  # noqa: F401  (the `web` fixture)

ROOT = Path(__file__).resolve().parents[2]


def multipart_head(web: Web, declared_length: int, boundary: str = "b0undary") -> bytes:
    return (
        f"POST /api/images/ HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\nCookie: {web.cookie_header()}\r\n"
        f"X-CSRFToken: {web.csrf_token()}\r\nReferer: http://127.0.0.1:{web.port}/\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared_length}\r\n\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()


@pytest.mark.e2e
def test_an_upload_declared_far_over_the_limit_is_refused_before_its_body_is_read(web: Web):
    declared = 200 * UPLOAD_LIMIT
    connection = web.raw(multipart_head(web, declared) + b"\xff" * 65536, timeout=10)
    try:
        # The server answers while 199 MiB are still unsent; a server reading the body first would
        # wait for them (this recv would time out).
        assert read_status(connection) == 413, web.logs()
    finally:
        connection.close()


@pytest.mark.e2e
def test_an_upload_streaming_past_the_limit_is_stopped_and_refused(web: Web):
    # Declared length within the framing allowance, so the stream itself must be counted.
    body = b"\xff" * (UPLOAD_LIMIT + 16 * 1024) + b"\r\n--b0undary--\r\n"
    head = multipart_head(web, 0)
    head_only = head.split(b"\r\n\r\n", 1)[1]
    request = head.replace(b"Content-Length: 0", f"Content-Length: {len(head_only) + len(body)}".encode())
    connection = web.raw(request + body, timeout=10)
    try:
        assert read_status(connection) == 413, web.logs()
    finally:
        connection.close()


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_a_413_from_the_view(client, settings):
    settings.IMAGE_UPLOAD_MAX_BYTES = 100 * 1024
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024
    client.force_login(make_user())
    response = client.post("/api/images/", {"image": SimpleUploadedFile("big.jpg", b"\xff" * (140 * 1024))})
    assert response.status_code == 413
    assert response.json()["error"]


@pytest.mark.django_db
def test_one_member_uploading_in_a_loop_is_throttled(client, settings, django_capture_on_commit_callbacks):
    settings.THROTTLE_UPLOADS_PER_USER = "3/hour"
    client.force_login(make_user())
    image = jpeg_bytes((64, 48))
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [client.post("/api/images/", {"image": SimpleUploadedFile("a.jpg", image)}).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    client.force_login(make_user("someone-else"))  # the budget is per member
    assert client.post("/api/images/", {"image": SimpleUploadedFile("a.jpg", image)}).status_code == 202


@pytest.mark.e2e
def test_gunicorn_refuses_a_request_with_more_headers_than_any_client_needs(web: Web):
    # 60 headers: under gunicorn's default (100), over deploy/gunicorn.conf.py's 50.
    headers = "".join(f"X-Filler-{n}: {n}\r\n" for n in range(60))
    connection = web.raw(f"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    try:
        assert read_status(connection) in (400, 431)
    finally:
        connection.close()


def test_the_image_and_compose_run_gunicorn_with_its_limits_and_do_not_publish_it():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    web_service = compose["services"]["web"]
    assert web_service["command"][:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    for mapping in web_service.get("ports", []):
        assert str(mapping).startswith("127.0.0.1:"), f"gunicorn published beyond the host: {mapping}"
    assert 'CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py"' in (ROOT / "Dockerfile").read_text()
    conf: dict[str, object] = {}
    exec(compile((ROOT / "deploy" / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), conf)  # noqa: S102
    assert conf["limit_request_fields"] <= 100 and conf["limit_request_field_size"] <= 8190
    assert conf["timeout"] <= 60
