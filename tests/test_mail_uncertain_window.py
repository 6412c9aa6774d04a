"""The window between the SMTP server's 250 and the record of it: each message kind follows its policy.

The database error is injected with Django's execute wrapper on the SentMail statements issued
after the sink has accepted the mail: the real error path of a database blip at that moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import django_rq
import pytest
from django.db import OperationalError, connection
from rq import Queue
from rq.serializers import JSONSerializer

from app.jobs import emails
from app.models import MemberPreferences, SentMail
from app.services.mail import delivery as mail
from app.services.mail.enqueueing import queue_bulk_email
from tests.enqueue import enqueue
from tests.factories import make_user
from tests.smtp import SmtpSink

pytestmark = pytest.mark.django_db


def member(username: str):  # type: ignore[no-untyped-def]
    user = make_user(username)
    MemberPreferences.objects.create(user=user, language="en")
    return user


@contextmanager
def database_down_after_acceptance(sink: SmtpSink, times: int = 100) -> Iterator[list[str]]:
    """Each write to SentMail about a mail the sink has accepted fails (up to `times` failures)."""
    failed: list[str] = []

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statement = sql.lstrip().upper()
        with sink.lock:
            accepted = {message["Message-ID"] for _, message in sink.messages}
        about_accepted = any(isinstance(value, str) and value in accepted for value in params or ())
        if about_accepted and "SENTMAIL" in statement and statement.startswith(("INSERT", "UPDATE")) and len(failed) < times:
            failed.append(sql)
            raise OperationalError("injected: the database went away after the server's 250")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield failed


def test_welcome_mail_not_resent_when_the_record_fails_after_the_250(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    user = member("ines")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_welcome_email, user.pk)
    with database_down_after_acceptance(smtp_sink) as failed:
        run_worker("emails")
    assert failed, "the fault was not injected"
    queue = django_rq.get_queue("emails")
    job = queue.fetch_job(job_id)
    # The mail went out: the job is done, not retried (a retry would send it again).
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else job.get_status()
    assert queue.scheduled_job_registry.count == 0
    assert len(smtp_sink.messages) == 1
    assert SentMail.objects.get(job_id=job_id).state == SentMail.State.ATTEMPTING  # outcome left unrecorded


def test_a_blip_while_recording_is_ridden_out(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    user = member("oscar")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_welcome_email, user.pk)
    with database_down_after_acceptance(smtp_sink, times=1) as failed:
        run_worker("emails")
    assert len(failed) == 1, "the blip was not injected"
    assert SentMail.objects.get(job_id=job_id).state == SentMail.State.SENT
    assert len(smtp_sink.messages) == 1


def test_at_least_once_kind_resends_an_unfinished_attempt_under_the_same_message_id(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    """A sender died after DATA, before the record: the welcome mail goes again, recognisably the same."""
    user = member("paula")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_welcome_email, user.pk)
    message_id = mail.message_id_for(job_id, user.email)
    SentMail.claim(message_id, job_id, user.email, "Welcome")  # what the dead sender left
    run_worker("emails")
    [(_, message)] = smtp_sink.wait_for(1)
    assert message["Message-ID"] == message_id
    row = SentMail.objects.get(message_id=message_id)
    assert (row.state, row.attempts) == (SentMail.State.SENT, 2)


def test_bulk_mail_is_at_most_once(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    """A fan-out treats an unfinished attempt as sent, and survives the record failing after a 250."""
    users = [member(f"m{i}") for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        [job_id] = queue_bulk_email("announcement", [u.pk for u in users])
    uncertain = mail.message_id_for(job_id, users[0].email)
    SentMail.claim(uncertain, job_id, users[0].email, "News")  # an earlier run died after DATA
    with database_down_after_acceptance(smtp_sink) as failed:
        run_worker("emails")
    assert failed, "the fault was not injected"
    job = django_rq.get_queue("emails").fetch_job(job_id)
    assert job.get_status() == "finished"
    assert sorted(r for rcpts, _ in smtp_sink.messages for r in rcpts) == sorted(u.email for u in users[1:])
    assert job.return_value()["already_sent"] == 1 and job.return_value()["sent"] == 2
    # A re-run of the batch sends nothing: every row is there, recorded or not.
    Queue("emails", connection=django_rq.get_queue("emails").connection, serializer=JSONSerializer).enqueue_call(
        "app.jobs.emails.send_bulk_email", args=["announcement", [u.pk for u in users]], job_id=job_id
    )
    run_worker("emails")
    assert len(smtp_sink.messages) == 2


def test_a_refusal_releases_the_attempt(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    """451 at DATA: nothing was accepted, the row goes, and the retry sends (even at-most-once)."""
    users = [member("r0")]
    smtp_sink.defer_data = 1
    with django_capture_on_commit_callbacks(execute=True):
        [job_id] = queue_bulk_email("announcement", [u.pk for u in users])
    run_worker("emails")
    assert smtp_sink.deferred == 1, "the 451 was not answered"
    assert not SentMail.objects.filter(job_id=job_id).exists()
    queue = django_rq.get_queue("emails")
    for retry in queue.scheduled_job_registry.get_job_ids():
        queue.scheduled_job_registry.remove(retry)
        queue.enqueue_job(queue.fetch_job(retry))
    run_worker("emails")
    assert len(smtp_sink.messages) == 1
    assert SentMail.objects.get(job_id=job_id).state == SentMail.State.SENT


def test_a_run_overlapping_a_refused_one_keeps_its_record(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    """Two runs of one job (pushed twice): run A's attempt is refused and released while run B's
    mail goes out. B's record must survive A's release, or A's retry sends the mail again."""
    user = member("quentin")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_welcome_email, user.pk)
    message_id = mail.message_id_for(job_id, user.email)
    SentMail.claim(message_id, job_id, user.email, "Welcome")  # run A's attempt, under way
    released: list[str] = []

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        # Run B's mail has been accepted: now run A's refusal releases the row, before B records.
        if smtp_sink.messages and sql.lstrip().upper().startswith(("INSERT", "UPDATE")) and "SENTMAIL" in sql.upper():
            released.append(sql)
            SentMail.release(message_id)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        run_worker("emails")  # run B
    assert released, "run A's release was not injected between B's 250 and B's record"
    assert len(smtp_sink.messages) == 1
    assert SentMail.objects.get(message_id=message_id).state == SentMail.State.SENT
    # Run A's retry: nothing more goes out.
    Queue("emails", connection=django_rq.get_queue("emails").connection, serializer=JSONSerializer).enqueue_call(
        "app.jobs.emails.send_welcome_email", args=[user.pk], job_id=job_id
    )
    run_worker("emails")
    assert len(smtp_sink.messages) == 1


def _run_due_retries(run_worker) -> None:  # type: ignore[no-untyped-def]
    queue = django_rq.get_queue("emails")
    for retry in queue.scheduled_job_registry.get_job_ids():
        queue.scheduled_job_registry.remove(retry)
        queue.enqueue_job(queue.fetch_job(retry))
    run_worker("emails")


def test_a_refusal_after_an_unfinished_attempt_keeps_the_unfinished_attempt(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    """Attempt 1 is kept by the server but its 250 never arrives (outcome unknown); attempt 2 is
    refused at RCPT. The refusal says nothing about attempt 1: the row must stay `attempting`
    (it was deleted, so attempt 3 started afresh and the second delivery looked like a first)."""
    user = member("rosa")
    smtp_sink.script_faults("drop_after_store", "421")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(emails.send_welcome_email, user.pk)
    message_id = mail.message_id_for(job_id, user.email)
    run_worker("emails")  # attempt 1: kept by the server, the connection dropped before the 250
    assert [fault for _, fault, _ in smtp_sink.refusals] == ["drop_after_store"]
    assert SentMail.objects.get(message_id=message_id).state == SentMail.State.ATTEMPTING
    _run_due_retries(run_worker)  # attempt 2: 421 at RCPT
    assert [fault for _, fault, _ in smtp_sink.refusals] == ["drop_after_store", "421"]
    row = SentMail.objects.get(message_id=message_id)  # not released: attempt 1 may have gone out
    assert (row.state, row.attempts) == (SentMail.State.ATTEMPTING, 2)
    _run_due_retries(run_worker)  # attempt 3: delivered again, at-least-once, the same Message-ID
    assert [m["Message-ID"] for _, m in smtp_sink.messages] == [message_id, message_id]
    row = SentMail.objects.get(message_id=message_id)
    assert (row.state, row.attempts) == (SentMail.State.SENT, 3)
