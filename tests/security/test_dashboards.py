"""Attacks on the operators' dashboards: rq-dashboard's origin check and escaping, django-rq's permission gate.

Each test performs the attack against the real Flask app or Django stack (real Redis) and asserts
the refusal; each failed on the code before the fix.
"""

from __future__ import annotations

import base64
import json

import django_rq
import pytest
from rq import Queue
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from app.queueing.dashboard import create_app
from tests.factories import make_user

AUTH = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode()}
PAYLOAD_ADDRESS = '"<img/src=x/onerror=alert(1)>"@example.org'  # a valid address for Django

pytestmark = pytest.mark.django_db  # a dashboard's delete or empty closes the jobs' outbox rows


def _dashboard(**options):  # type: ignore[no-untyped-def]
    from django.conf import settings

    return create_app(settings.RQ_QUEUES_URL, "operator", "s3cret", **options).test_client()


def _queue_with_one_job():  # type: ignore[no-untyped-def]
    queue = Queue("emails", connection=django_rq.get_connection("emails"), serializer=JSONSerializer)  # RQ\'s own: set-up written into Redis directly
    queue.enqueue_call("app.jobs.emails.send_email", args=["a@example.org", "s", "x"])
    return queue


FOREIGN_ORIGINS = (
    "http://localhost.evil.com",  # our host as a prefix of theirs
    "http://localhost:8080",  # same host, another port
    "https://localhost",  # same host, another scheme
    "http://localhostevil",
    "null",  # sandboxed frames and some redirects
)


def test_dashboard_refuses_a_post_from_a_foreign_origin(redis_db_index):
    dashboard, queue = _dashboard(), _queue_with_one_job()
    for origin in FOREIGN_ORIGINS:
        response = dashboard.post("/queue/emails/queued/empty", headers={**AUTH, "Origin": origin})
        assert response.status_code == 403, origin
        referer = dashboard.post("/queue/emails/queued/empty", headers={**AUTH, "Referer": origin + "/0/view/jobs"})
        assert referer.status_code == 403, origin
    assert queue.count == 1
    same = dashboard.post("/queue/emails/queued/empty", headers={**AUTH, "Origin": "http://localhost"})
    assert same.status_code == 200 and queue.count == 0  # the legitimate action still works


def test_dashboard_behind_a_tls_proxy_accepts_its_https_origin_only_when_configured(redis_db_index):
    queue = _queue_with_one_job()
    forwarded = {**AUTH, "Origin": "https://dash.example.org", "Host": "dash.example.org", "X-Forwarded-Proto": "https"}
    # Not configured: a forwarded header is anyone's to send, so it is not believed.
    assert _dashboard().post("/queue/emails/queued/empty", headers=forwarded).status_code == 403
    assert queue.count == 1
    proxied = _dashboard(proxy_ssl_header="X-Forwarded-Proto: https")
    # Configured, but the request did not come through TLS: still http, so an https origin is foreign.
    plain = {**forwarded, "X-Forwarded-Proto": "http"}
    assert proxied.post("/queue/emails/queued/empty", headers=plain).status_code == 403
    assert queue.count == 1
    assert proxied.post("/queue/emails/queued/empty", headers=forwarded).status_code == 200
    assert queue.count == 0


def test_dashboard_trusted_origins_are_compared_exactly(redis_db_index):
    dashboard = _dashboard(trusted_origins=["https://rq.example.org"])
    queue = _queue_with_one_job()
    for foreign in ("https://rq.example.org:8443", "http://rq.example.org", "https://rq.example.org.evil.com"):
        assert dashboard.post("/queue/emails/queued/empty", headers={**AUTH, "Origin": foreign}).status_code == 403
    assert queue.count == 1
    trusted = {**AUTH, "Origin": "https://rq.example.org:443"}  # the default port, spelled out
    assert dashboard.post("/queue/emails/queued/empty", headers=trusted).status_code == 200
    assert queue.count == 0


def test_dashboard_escapes_keys_of_a_job_result(redis_db_index, redis_conn):
    queue = Queue("emails", connection=django_rq.get_connection("emails"), serializer=JSONSerializer)  # RQ\'s own: set-up written into Redis directly
    job = queue.enqueue_call("app.jobs.emails.send_bulk_email", args=["announcement", [1]])
    # What a bulk job returns when the server refuses an address: the address is a key.
    Result.create(
        Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer),
        Result.Type.SUCCESSFUL,
        ttl=60,
        return_value={"sent": 0, "failed": {PAYLOAD_ADDRESS: "550 <b>no</b>"}},
    )
    body = _dashboard().get(f"/0/data/job/{job.id}.json", headers=AUTH).get_data(as_text=True)
    assert "<img" not in body and "<b>" not in body
    failed = json.loads(body)["result"]["failed"]
    assert failed == {"&quot;&lt;img/src=x/onerror=alert(1)&gt;&quot;@example.org": "550 &lt;b&gt;no&lt;/b&gt;"}


@pytest.mark.django_db
def test_django_rq_mounted_under_a_prefix_still_needs_the_permission(client):
    client.force_login(make_user("staffer", is_staff=True))
    queue = _queue_with_one_job()
    emails = [q["name"] for q in django_rq.settings.get_queues_list()].index("emails")
    assert client.get("/admin/django-rq/", SCRIPT_NAME="/app").status_code == 403
    assert client.get(f"/admin/django-rq/queues/{emails}/", SCRIPT_NAME="/app").status_code == 403
    assert client.post(f"/admin/django-rq/queues/{emails}/empty/", SCRIPT_NAME="/app").status_code == 403
    assert queue.count == 1
    # Anonymous under the prefix: sent to log in, not let in.
    client.logout()
    response = client.get("/admin/django-rq/", SCRIPT_NAME="/app")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
