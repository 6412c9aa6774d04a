from __future__ import annotations

import pytest
from rq.job import JobStatus

from app.jobs import emails
from app.queueing.models import BackgroundJob
from tests.enqueue import enqueue
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_send_email_delivers_html_and_text_over_smtp(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_email, "bob@example.org", "Hello", "<p>Hi <b>Bob</b> &amp; co</p>")
    run_worker("emails")
    [(rcpts, message)] = smtp_sink.wait_for(1)
    assert rcpts == ["bob@example.org"]
    assert message["Subject"] == "Hello"
    assert message["Reply-To"] == "contact@egoejo.org"
    assert message.get_body(("plain",)).get_content().strip() == "Hi Bob & co"
    assert "<b>Bob</b>" in message.get_body(("html",)).get_content()
    assert BackgroundJob.objects.get(id=job_id).state == BackgroundJob.State.FINISHED


def test_welcome_email_after_registration(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    user = make_user("camille", first_name="Camille <script>")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(emails.send_welcome_email, user.pk)
    run_worker("emails")
    [(rcpts, message)] = smtp_sink.wait_for(1)
    assert rcpts == ["camille@example.org"]
    assert "Bienvenue" in message["Subject"]
    html = message.get_body(("html",)).get_content()
    assert "Camille &lt;script&gt;" in html and "<script>" not in html
    assert "Camille <script>" in message.get_body(("plain",)).get_content()


def test_welcome_email_for_missing_user_is_skipped_not_failed(smtp_sink, run_worker, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_welcome_email, 999_999)
    worker = run_worker("emails")
    job = worker.queues[0].fetch_job(job_id)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {"user_id": 999_999, "sent": False}
    assert smtp_sink.messages == []


def test_invalid_address_fails_once_with_reason(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bad = enqueue(emails.send_email, "not-an-address", "Hi", "<p>x</p>")
        good = enqueue(emails.send_email, "ok@example.org", "Hi", "<p>x</p>")
    worker = run_worker("emails")
    queue = worker.queues[0]
    failed = queue.fetch_job(bad)
    assert failed.get_status() == JobStatus.FAILED
    assert failed.retries_left == 0
    assert "invalid e-mail address 'not-an-address'" in failed.latest_result().exc_string
    assert queue.failed_job_registry.get_job_ids() == [bad]
    assert queue.scheduled_job_registry.get_job_ids() == []  # no retry scheduled
    assert queue.fetch_job(good).get_status() == JobStatus.FINISHED  # the worker went on
    assert len(smtp_sink.wait_for(1)) == 1
    record = BackgroundJob.objects.get(id=bad)
    assert record.state == BackgroundJob.State.FAILED
    assert "invalid e-mail address" in record.failure_reason
