"""The hardened rq-dashboard: login, CSP, no GET state changes, same-origin POSTs, escaped data."""

from __future__ import annotations

import base64
import json
from datetime import UTC

import django_rq
import pytest

from app.queueing.dashboard import content_security_policy, create_app, escape_strings

AUTH = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode()}
SAME_ORIGIN = {**AUTH, "Origin": "http://localhost"}


@pytest.fixture
def dashboard(redis_db_index, db):  # type: ignore[no-untyped-def]  # db: deletes close outbox rows
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


def test_no_state_change_through_get(dashboard, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        django_rq.get_queue("emails").enqueue_call("app.jobs.emails.send_email", args=["a@b.org", "s", "x"])
    assert dashboard.get("/requeue/emails", headers=AUTH).status_code == 405
    assert dashboard.get("/queue/emails/queued/empty", headers=AUTH).status_code == 405


def test_cross_site_posts_are_refused(dashboard, django_capture_on_commit_callbacks):
    queue = django_rq.get_queue("emails")
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_call("app.jobs.emails.send_email", args=["a@b.org", "s", "x"])
    evil = {**AUTH, "Origin": "http://evil.example"}
    assert dashboard.post("/queue/emails/queued/empty", headers=evil).status_code == 403
    assert dashboard.post("/queue/emails/queued/empty", headers=AUTH).status_code == 403  # no Origin/Referer
    assert queue.count == 1
    assert dashboard.post("/queue/emails/queued/empty", headers=SAME_ORIGIN).status_code == 200
    assert queue.count == 0


def test_json_strings_are_html_escaped(dashboard):
    from rq import Queue
    from rq.serializers import JSONSerializer

    # RQ's own class: whoever writes to Redis chooses the description
    queue = Queue("emails", connection=django_rq.get_queue("emails").connection, serializer=JSONSerializer)
    job = queue.enqueue_call(
        "app.jobs.emails.send_email", args=["<img src=x onerror=alert(1)>@x.org", "s", "x"], description="<script>alert(1)</script>"
    )
    data = json.loads(dashboard.get(f"/0/data/job/{job.id}.json", headers=AUTH).get_data(as_text=True))
    assert "<script>" not in json.dumps(data)
    assert data["description"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escape_strings({"a": ["<b>", 1, None]}) == {"a": ["&lt;b&gt;", 1, None]}


def test_a_job_deleted_in_the_dashboard_stays_deleted(dashboard, redis_conn, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from app.jobs import emails
    from app.queueing import outbox
    from app.queueing.models import BackgroundJob

    with django_capture_on_commit_callbacks(execute=True):
        deleted = emails.send_welcome_email.delay(1)
        emptied = emails.send_welcome_email.delay(2)
    assert dashboard.post(f"/job/{deleted.id}/delete", headers=SAME_ORIGIN).status_code == 200
    assert dashboard.post("/queue/emails/queued/empty", headers=SAME_ORIGIN).status_code == 200
    states = dict(BackgroundJob.objects.values_list("id", "state"))
    assert states == {deleted.id: "cancelled", emptied.id: "cancelled"}
    redis_conn.flushdb()  # even when Redis later loses everything, nothing comes back
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 0


def test_fields_rq_dashboard_escapes_itself_arrive_raw_everything_else_escaped(dashboard, redis_conn):
    """jobs.html escapes a job's description and exc_info itself; escaping them here too showed `&quot;`."""
    from rq import Queue
    from rq.job import Job
    from rq.results import Result
    from rq.serializers import JSONSerializer

    queue = Queue("emails", connection=redis_conn, serializer=JSONSerializer)  # RQ's own: a description of its choice
    job = queue.enqueue_call(
        "app.jobs.emails.send_email", args=["a@b.org", "s", "x"], description="say \"hi\" <b>o'clock</b>", job_id="quoted"
    )
    job = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    traceback = 'Traceback:\n  File "/tmp/x.py", line 1\nValueError: can\'t send to <img src=x>'
    Result.create_failure(job, ttl=60, exc_string=traceback)
    queue.failed_job_registry.add(job, ttl=60)
    listing = json.loads(dashboard.get("/0/data/jobs/emails/failed/8/asc/1.json", headers=AUTH).get_data(as_text=True))
    [row] = listing["jobs"]
    assert row["description"] == "say \"hi\" <b>o'clock</b>"
    assert row["exc_info"] == traceback
    assert row["id"] == "quoted"
    detail = json.loads(dashboard.get("/0/data/job/quoted.json", headers=AUTH).get_data(as_text=True))
    assert detail["description"] == "say &quot;hi&quot; &lt;b&gt;o&#x27;clock&lt;/b&gt;"  # job.html inserts it raw
    assert detail["exc_info"].endswith("can&#x27;t send to &lt;img src=x&gt;")


def test_list_titles_name_their_registry(dashboard):
    finished = dashboard.get("/0/view/jobs/emails/finished/8/asc/1", headers=AUTH).get_data(as_text=True)
    assert "all the finished jobs on queue" in finished and "queued jobs" not in finished
    queued = dashboard.get("/0/view/jobs/emails/queued/8/asc/1", headers=AUTH).get_data(as_text=True)
    assert "all the queued jobs on queue" in queued


def test_recurring_page_lists_rq_scheduler_schedules_with_next_run(dashboard, redis_conn):
    from app.queueing.scheduling import ProjectScheduler, ensure_schedules

    ensure_schedules(ProjectScheduler(queue_name="metrics", connection=django_rq.get_connection("metrics")))
    [(job_id, score)] = redis_conn.zrange("rq:scheduler:scheduled_jobs", 0, -1, withscores=True)
    page = dashboard.get("/0/view/recurring", headers=AUTH)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    from datetime import datetime

    assert job_id.decode() in body and "app.jobs.metrics.refresh_all_dashboards" in body
    assert datetime.fromtimestamp(score, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") in body
    assert "*/15 * * * *" in body
    assert 'href="/0/view/recurring"' in dashboard.get("/", headers=AUTH).get_data(as_text=True)  # in the navbar
    assert page.headers["Content-Security-Policy"] == content_security_policy(body)
