"""Mail over real SMTP: languages, once-only delivery, 4xx/5xx, connection reuse, STARTTLS, fan-out."""

from __future__ import annotations

import time

import django_rq
import pytest
from django.core.exceptions import ValidationError
from rq import Queue
from rq.job import JobStatus
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from app.jobs import emails
from app.models import MemberPreferences, SentMail
from app.queueing import keys
from app.queueing.models import BackgroundJob
from app.services.mail.enqueueing import queue_bulk_email, queue_email
from tests.enqueue import enqueue
from tests.factories import make_user
from tests.signing import sign_in_redis
from tests.smtp import SmtpSink, point_mail_at

pytestmark = pytest.mark.django_db


def member(username: str, language: str = "fr", **extra):  # type: ignore[no-untyped-def]
    user = make_user(username, **extra)
    MemberPreferences.objects.create(user=user, language=language)
    return user


def fire_due_retries() -> None:
    """Make scheduled retries due now and let RQ's scheduler move them back to their queue."""
    queue = django_rq.get_queue("emails")
    registry = queue.scheduled_job_registry
    for job_id in registry.get_job_ids():
        queue.connection.zadd(registry.key, {job_id: 1})
    scheduler = RQScheduler([queue], connection=queue.connection)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()


def test_welcome_mail_in_the_members_language_with_both_parts(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    french = member("amelie", first_name="Amélie <b>")
    english = member("john", language="en", first_name="John & Co")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(emails.send_welcome_email, french.pk)
        enqueue(emails.send_welcome_email, english.pk)
    run_worker("emails")
    by_recipient = {rcpts[0]: message for rcpts, message in smtp_sink.wait_for(2)}
    fr, en = by_recipient["amelie@example.org"], by_recipient["john@example.org"]
    # The member's name is in the body, never in the Subject (a header anyone registering controls).
    assert fr["Subject"] == "Bienvenue sur EGOEJO !"
    assert en["Subject"] == "Welcome to EGOEJO!"
    assert "Amélie &lt;b&gt;" in fr.get_body(("html",)).get_content()
    assert "John &amp; Co" in en.get_body(("html",)).get_content()
    assert "Your EGOEJO account is ready" in en.get_body(("plain",)).get_content()
    assert fr["Message-ID"].endswith("@egoejo.org>")


def test_a_rerun_of_the_same_job_delivers_nothing_new(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    user = member("solene")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_welcome_email, user.pk)
    run_worker("emails")
    smtp_sink.wait_for(1)
    # The same job runs again (a worker died after sending, say): the record stops it.
    Queue("emails", connection=django_rq.get_queue("emails").connection, serializer=JSONSerializer).enqueue_call(
        "app.jobs.emails.send_welcome_email", args=[user.pk], job_id=job_id
    )
    sign_in_redis(django_rq.get_queue("emails").connection, job_id)  # the layer's job, pushed again
    run_worker("emails")
    assert len(smtp_sink.messages) == 1
    assert django_rq.get_queue("emails").fetch_job(job_id).return_value()["sent"] is False
    assert SentMail.objects.filter(job_id=job_id).count() == 1


def test_451_then_250_delivers_once(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    smtp_sink.defer_data = 1
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_email, "later@example.org", "Hi", "<p>x</p>")
    run_worker("emails")
    assert smtp_sink.deferred == 1, "the 451 was not answered"
    queue = django_rq.get_queue("emails")
    assert queue.fetch_job(job_id).get_status() == JobStatus.SCHEDULED  # transient: retried with backoff
    assert smtp_sink.messages == []
    fire_due_retries()
    run_worker("emails")
    assert queue.fetch_job(job_id).get_status() == JobStatus.FINISHED
    assert smtp_sink.recipients() == ["later@example.org"]


def test_550_fails_once_without_retry(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    smtp_sink.reject_recipients = {"gone@example.org"}
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_email, "gone@example.org", "Hi", "<p>x</p>")
    run_worker("emails")
    job = django_rq.get_queue("emails").fetch_job(job_id)
    assert job.get_status() == JobStatus.FAILED and job.retries_left == 0
    assert "550" in job.latest_result().exc_string and "No such mailbox" in job.latest_result().exc_string
    assert BackgroundJob.objects.get(id=job_id).state == BackgroundJob.State.FAILED


def test_one_smtp_session_serves_many_jobs(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for index in range(5):
            enqueue(emails.send_email, f"r{index}@example.org", "Hi", "<p>x</p>")
    run_worker("emails")  # a non-forking worker, like the light-queue pool
    assert len(smtp_sink.wait_for(5)) == 5
    assert len(smtp_sink.sessions) == 1


def test_starttls(tls_smtp_sink, run_worker, django_capture_on_commit_callbacks):
    user = member("tina", language="en")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(emails.send_welcome_email, user.pk)
    run_worker("emails")
    [(rcpts, message)] = tls_smtp_sink.wait_for(1)
    assert rcpts == ["tina@example.org"] and tls_smtp_sink.tls_flags == [True]


def test_addresses_are_checked_before_anything_is_queued(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(ValidationError):
            queue_email("not an address", "Hi", "<p>x</p>")
        with pytest.raises(ValidationError):
            queue_bulk_email("no-such-template", [1])
    assert django_rq.get_queue("emails").count == 0
    assert not BackgroundJob.objects.exists()


def test_bulk_to_1000_members_with_3_refused(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create([User(username=f"m{i}", email=f"m{i}@example.org", first_name=f"M{i}") for i in range(1000)])
    ids = list(User.objects.order_by("pk").values_list("pk", flat=True))
    smtp_sink.reject_recipients = {"m10@example.org", "m500@example.org", "m999@example.org"}
    with django_capture_on_commit_callbacks(execute=True):
        job_ids = queue_bulk_email("announcement", ids)
    assert len(job_ids) == 10 and django_rq.get_queue("emails").count == 10  # 100 members per job
    run_worker("emails")
    assert len(smtp_sink.wait_for(997, timeout=60)) == 997
    queue = django_rq.get_queue("emails")
    reports = [queue.fetch_job(job_id).return_value() for job_id in job_ids]
    failed = {address: reason for report in reports for address, reason in report["failed"].items()}
    assert set(failed) == {"m10@example.org", "m500@example.org", "m999@example.org"}
    assert all(reason.startswith("550") for reason in failed.values())
    assert sum(report["sent"] for report in reports) == 997
    assert len(set(smtp_sink.recipients())) == 997  # nobody twice
    assert len(smtp_sink.sessions) == 1  # one connection for the whole fan-out
    # Each batch told the queueing layer how far it got (the abandon limit reads it).
    assert [int(queue.connection.get(keys.progress(job_id))) for job_id in job_ids] == [report["sent"] for report in reports]

    # Re-running a batch sends nothing again.
    Queue("emails", connection=queue.connection, serializer=JSONSerializer).enqueue_call(
        "app.jobs.emails.send_bulk_email", args=["announcement", ids[:100]], job_id=job_ids[0]
    )
    sign_in_redis(queue.connection, job_ids[0])  # the layer's job, pushed again
    run_worker("emails")
    assert len(smtp_sink.messages) == 997
    assert queue.fetch_job(job_ids[0]).return_value()["already_sent"] == 99


def test_bulk_retries_only_the_deferred_recipients(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    users = [member(f"b{i}") for i in range(3)]
    smtp_sink.defer_data = 1  # the first recipient gets "451 try later"
    with django_capture_on_commit_callbacks(execute=True):
        [job_id] = queue_bulk_email("announcement", [user.pk for user in users])
    run_worker("emails")
    assert smtp_sink.deferred == 1, "the 451 was not answered"
    queue = django_rq.get_queue("emails")
    assert queue.fetch_job(job_id).get_status() == JobStatus.SCHEDULED
    assert sorted(smtp_sink.recipients()) == ["b1@example.org", "b2@example.org"]
    fire_due_retries()
    run_worker("emails")
    report = queue.fetch_job(job_id).return_value()
    assert (report["sent"], report["already_sent"]) == (1, 2)
    assert sorted(smtp_sink.recipients()) == ["b0@example.org", "b1@example.org", "b2@example.org"]


def test_a_session_the_server_dropped_is_reopened_for_the_next_batch(settings, run_worker, django_capture_on_commit_callbacks):
    from app.services.mail import delivery as mail

    sink = SmtpSink(idle_timeout=0.5)
    sink.start()
    point_mail_at(settings, sink)
    try:
        users = [make_user(f"s{i}") for i in range(3)]
        with django_capture_on_commit_callbacks(execute=True):
            queue_bulk_email("announcement", [user.pk for user in users[:2]])
        run_worker("emails")
        assert len(sink.wait_for(2)) == 2
        time.sleep(3.0)  # the server closes the idle session after 0.5 s: 2.5 s to spare on a loaded machine
        with django_capture_on_commit_callbacks(execute=True):
            [job_id] = queue_bulk_email("announcement", [users[2].pk])
        run_worker("emails")
        # The batch checked its session first (NOOP) and opened a new one: no failure, no retry.
        assert django_rq.get_queue("emails").fetch_job(job_id).get_status() == JobStatus.FINISHED
        assert sorted(sink.recipients()) == ["s0@example.org", "s1@example.org", "s2@example.org"]
        assert len(sink.sessions) == 2
    finally:
        mail.close_connection()
        sink.stop()


def test_recording_a_mail_twice_keeps_one_row():
    SentMail.record("<job.abc@egoejo.test>", "job", "a@example.org", "Hi")
    SentMail.record("<job.abc@egoejo.test>", "other-run", "a@example.org", "Hi")  # an overlapping run: no error
    assert list(SentMail.objects.values_list("job_id", flat=True)) == ["job"]
