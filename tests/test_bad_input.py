"""Bad input fails once with a clear reason in the failed registry, and the worker goes on."""

from __future__ import annotations

import django_rq
import pytest
from rq.job import JobStatus

from app.jobs import emails, images, metrics
from app.queueing import keys
from tests.enqueue import enqueue
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.django_db


def test_each_bad_input_fails_once_and_the_worker_goes_on(media_root, run_worker, django_capture_on_commit_callbacks):
    corrupt = media_root / "uploads" / "originals" / "corrupt.jpg"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(jpeg_bytes((1200, 900))[:2000])  # a truncated JPEG: opens, fails to decode
    with django_capture_on_commit_callbacks(execute=True):
        bad_image = enqueue(images.process_image, "uploads/originals/corrupt.jpg")
        escaping = enqueue(images.process_image, "../../etc/passwd")
        bad_address = enqueue(emails.send_email, "nobody@", "Hi", "<p>x</p>")
        missing_user = enqueue(metrics.update_impact_dashboard_metrics, 424242)
        good = enqueue(emails.send_email, "ok@example.org", "Hi", "<p>x</p>")
    run_worker("emails", "images", "metrics")

    def job(queue: str, job_id: str):  # type: ignore[no-untyped-def]
        return django_rq.get_queue(queue).fetch_job(job_id)

    for queue, job_id, reason in [
        ("images", bad_image, "truncated"),
        ("images", escaping, "media root"),
        ("emails", bad_address, "invalid e-mail address"),
    ]:
        failed = job(queue, job_id)
        assert failed.get_status() == JobStatus.FAILED, job_id
        assert failed.retries_left == 0  # permanent: no retry burnt
        exc = failed.latest_result().exc_string
        assert "PermanentJobError" in exc and reason in exc, exc
    assert set(django_rq.get_queue("images").failed_job_registry.get_job_ids()) == {bad_image, escaping}
    assert django_rq.get_queue("images").scheduled_job_registry.get_job_ids() == []
    # A user deleted since the trigger is logged and skipped (not an error to retry).
    assert job("metrics", missing_user).return_value() == {"user_id": 424242, "updated": False}
    assert job("emails", good).get_status() == JobStatus.FINISHED


def test_a_transient_error_is_retried_with_backoff(run_worker, django_capture_on_commit_callbacks, settings, redis_conn):
    # An SMTP server that refuses connections: a transient condition.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    import time

    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_email, "ok@example.org", "Hi", "<p>x</p>")
    before = time.time()
    run_worker("emails")
    after = time.time()
    queue = django_rq.get_queue("emails")
    job = queue.fetch_job(job_id)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.retries_left == 4
    assert queue.scheduled_job_registry.get_job_ids() == [job_id]
    # The backoff, measured: the retry is due the declared first interval after the failure.
    [(_, due)] = redis_conn.zrange(queue.scheduled_job_registry.key, 0, -1, withscores=True)
    first_interval = job.retry_intervals[0]
    assert first_interval > 0
    assert before + first_interval - 1 <= due <= after + first_interval + 1, (due - before, job.retry_intervals)
    assert queue.failed_job_registry.get_job_ids() == []
    stats = redis_conn.hgetall(keys.job_stats("app.jobs.emails.send_email"))
    assert stats[b"retry"] == b"1" and b"failure" not in stats


def test_a_permanent_failure_on_its_first_run_is_logged_as_attempt_1(run_worker, caplog, django_capture_on_commit_callbacks):
    """The attempt number is read before the failure triage clears retries_left (it said attempt=6)."""
    import logging

    caplog.set_level(logging.INFO, logger="app.queueing.workers")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_email, "nobody@", "Hi", "<p>x</p>")
    run_worker("emails")
    lines = [r.getMessage() for r in caplog.records if r.name == "app.queueing.workers" and job_id in r.getMessage()]
    assert any("failed (attempt 1/6, permanent)" in line for line in lines), lines
    assert not any("attempt=6" in line or "attempt 6" in line for line in lines), lines
