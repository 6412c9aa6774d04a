"""The hardened rq-dashboard: login, CSP, no GET state changes, same-origin POSTs, escaped data."""

from __future__ import annotations

import base64
import json

import django_rq
import pytest

from app.queueing.dashboard import content_security_policy, create_app, escape_strings

AUTH = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode()}
SAME_ORIGIN = {**AUTH, "Origin": "http://localhost"}


@pytest.fixture
def dashboard(redis_db_index):  # type: ignore[no-untyped-def]
    from django.conf import settings

    app = create_app(settings.RQ_QUEUES_URL, "operator", "s3cret")
    return app.test_client()


def test_login_is_required(dashboard):
    assert dashboard.get("/").status_code == 401
    assert dashboard.get("/", headers={"Authorization": "Basic " + base64.b64encode(b"operator:wrong").decode()}).status_code == 401
    assert dashboard.get("/0/data/queues.json").status_code == 401
    assert dashboard.get("/", headers=AUTH).status_code == 200


def test_refuses_to_start_without_credentials(redis_db_index):
    with pytest.raises(ValueError):
        create_app("redis://127.0.0.1:6379/2", "", "")


def test_pages_carry_a_csp_that_allows_only_their_own_scripts(dashboard):
    response = dashboard.get("/", headers=AUTH)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-eval' 'sha256-" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert policy == content_security_policy(response.get_data(as_text=True))


def test_no_state_change_through_get(dashboard):
    django_rq.get_queue("emails").enqueue_call("app.jobs.emails.send_email", args=["a@b.org", "s", "x"])
    assert dashboard.get("/requeue/emails", headers=AUTH).status_code == 405
    assert dashboard.get("/queue/emails/queued/empty", headers=AUTH).status_code == 405


def test_cross_site_posts_are_refused(dashboard):
    queue = django_rq.get_queue("emails")
    queue.enqueue_call("app.jobs.emails.send_email", args=["a@b.org", "s", "x"])
    evil = {**AUTH, "Origin": "http://evil.example"}
    assert dashboard.post("/queue/emails/queued/empty", headers=evil).status_code == 403
    assert dashboard.post("/queue/emails/queued/empty", headers=AUTH).status_code == 403  # no Origin/Referer
    assert queue.count == 1
    assert dashboard.post("/queue/emails/queued/empty", headers=SAME_ORIGIN).status_code == 200
    assert queue.count == 0


def test_json_strings_are_html_escaped(dashboard):
    queue = django_rq.get_queue("emails")
    job = queue.enqueue_call(
        "app.jobs.emails.send_email", args=["<img src=x onerror=alert(1)>@x.org", "s", "x"], description="<script>alert(1)</script>"
    )
    data = json.loads(dashboard.get(f"/0/data/job/{job.id}.json", headers=AUTH).get_data(as_text=True))
    assert "<script>" not in json.dumps(data)
    assert data["description"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escape_strings({"a": ["<b>", 1, None]}) == {"a": ["&lt;b&gt;", 1, None]}
