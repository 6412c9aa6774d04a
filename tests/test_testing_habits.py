"""Testing code that enqueues, as a Celery user expects: eager mode and `mock.patch("<job>.delay")`.

README.md, "Testing code that enqueues": what each habit maps to here.
"""

from __future__ import annotations

from unittest import mock

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rq.job import JobStatus

from app.jobs import emails
from app.models import UploadedImage
from app.queueing.errors import UndeclaredJobError
from app.queueing.job_reports import status_for_owner
from app.queueing.jobclass import QueueingJob
from app.queueing.models import BackgroundJob
from app.services import impact_refresh
from app.services.mail import enqueueing as mail_fanout
from tests import fixtures
from tests.enqueue import enqueue
from tests.factories import confirmation_token, jpeg_bytes, make_user
from tests.test_views import REGISTRATION, post_json

pytestmark = pytest.mark.django_db
State = BackgroundJob.State


def queued(name: str) -> list[str]:
    return django_rq.get_queue(name).get_job_ids()


def upload(client):  # type: ignore[no-untyped-def]
    return client.post("/api/images/", {"image": SimpleUploadedFile("photo.jpg", jpeg_bytes((640, 480)))})


# -- eager mode ---------------------------------------------------------------------------------


def test_eager_upload_processes_the_image_inline_and_closes_its_row(client, settings, django_capture_on_commit_callbacks):
    settings.QUEUEING_EAGER = True
    owner = make_user()
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert queued("images") == []  # run, not left for a worker
    assert UploadedImage.objects.get().status == UploadedImage.Status.DONE
    assert BackgroundJob.objects.get(id=job_id).state == State.FINISHED
    status = status_for_owner(job_id, owner.pk)
    assert status is not None and status.status == "finished" and status.result
    assert client.get(f"/api/jobs/{job_id}/").json()["status"] == "finished"


def test_eager_welcome_mail_arrives(smtp_sink, settings, django_capture_on_commit_callbacks):
    settings.QUEUEING_EAGER = {"emails"}  # only this queue
    user = make_user("camille", first_name="Camille")
    with django_capture_on_commit_callbacks(execute=True):
        job = emails.send_welcome_email.delay(user.pk)
    [(rcpts, message)] = smtp_sink.wait_for(1)
    assert rcpts == ["camille@example.org"] and "Bienvenue" in message["Subject"]
    assert job.get_status(refresh=True) == JobStatus.FINISHED


def test_an_eager_permanent_error_fails_the_job_and_its_row_without_raising(settings, django_capture_on_commit_callbacks):
    settings.QUEUEING_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        job = fixtures.fail_permanently.delay("no such image")
    row = BackgroundJob.objects.get(id=job.id)
    assert row.state == State.FAILED and "PermanentJobError: no such image" in row.failure_reason
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert "PermanentJobError" in job.latest_result().exc_string
    assert len(row.outcome["errors"]) == 1  # run once: a permanent error is not retried


def test_eager_retries_run_at_once_each_attempt_recorded(tmp_path, settings, django_capture_on_commit_callbacks):
    settings.QUEUEING_EAGER = True
    counter = tmp_path / "attempts"
    with django_capture_on_commit_callbacks(execute=True):
        job = fixtures.fail_until_attempt.delay(str(counter), 3)  # backoff 30 s, 60 s: not waited
    assert counter.read_text() == "xxx"
    row = BackgroundJob.objects.get(id=job.id)
    assert row.state == State.FINISHED and row.outcome["return_value"] == 3
    assert [error["exception_class_path"] for error in row.outcome["errors"]] == ["app.queueing.errors.TransientJobError"] * 2

    failing = tmp_path / "always"
    with django_capture_on_commit_callbacks(execute=True):
        job = fixtures.fail_until_attempt.delay(str(failing), 99)
    assert failing.read_text() == "xxx"  # the first run and its two retries, then failed
    assert BackgroundJob.objects.get(id=job.id).state == State.FAILED


def test_eager_scheduled_jobs_run_at_once(settings, django_capture_on_commit_callbacks):
    from datetime import timedelta

    settings.QUEUEING_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        job = fixtures.say_hello.delay_in(timedelta(hours=1), "ana")
    assert job.get_status(refresh=True) == JobStatus.FINISHED and job.return_value() == "hello ana"


def test_eager_mode_refuses_what_a_worker_refuses(redis_conn, settings, django_capture_on_commit_callbacks):
    settings.QUEUEING_EAGER = True
    with pytest.raises(UndeclaredJobError):
        enqueue(fixtures.not_declared, "/tmp/never")
    # A hash written in Redis under the job's id by someone else: the signed push leaves it, and
    # the worker's check refuses it rather than run it.
    redis_conn.hset("rq:job:forged1", mapping={"status": "queued", "origin": "metrics", "data": b"", "meta": "{}"})
    with django_capture_on_commit_callbacks(execute=True):
        fixtures.say_hello.with_options(job_id="forged1").delay("mallory")
    row = BackgroundJob.objects.get(id="forged1")
    assert row.state == State.FAILED and row.failure_reason.startswith(("ForgedJobError", "UnreadableJobError"))
    assert redis_conn.hget("rq:job:forged1", "status") == b"failed"  # refused, never run


def test_eager_mode_still_checks_the_call_in_the_caller(settings):
    settings.QUEUEING_EAGER = True
    with pytest.raises(TypeError, match="unexpected keyword"):
        fixtures.say_hello.delay(nom="ana")


def test_a_queue_whose_settings_say_async_false_runs_eagerly_and_only_it(settings, smtp_sink, django_capture_on_commit_callbacks):
    queues = {name: dict(settings.RQ_QUEUES[name]) for name in ["default", *settings.RQ_QUEUES]}
    queues["emails"]["ASYNC"] = False
    settings.RQ_QUEUES = queues
    user = make_user("camille")
    with django_capture_on_commit_callbacks(execute=True):
        mail = emails.send_welcome_email.delay(user.pk)
        hello = fixtures.say_hello.delay("ana")
    smtp_sink.wait_for(1)
    assert BackgroundJob.objects.get(id=mail.id).state == State.FINISHED  # closed as a worker closes it
    assert queued("metrics") == [hello.id]  # an async queue: left for a worker


# -- mock.patch("<job>.delay") ------------------------------------------------------------------


def test_patching_delay_catches_the_upload_and_nothing_reaches_redis(client, django_capture_on_commit_callbacks):
    owner = make_user()
    client.force_login(owner)
    with mock.patch("app.jobs.images.process_image.delay") as delay, django_capture_on_commit_callbacks(execute=True):
        delay.return_value.id = "job-1"  # the Job the view keeps the id of
        response = upload(client)  # the service calls process_image.with_options(owner_id=...).delay(image_path=...)
    assert response.status_code == 202 and response.json()["job_id"] == "job-1"
    delay.assert_called_once()
    assert delay.call_args.args == () and delay.call_args.kwargs["image_path"].startswith("uploads/originals/")
    assert queued("images") == []
    assert not BackgroundJob.objects.exists()  # the patch took the call: nothing recorded either


def test_patching_delay_catches_registration_and_activation_mails(client, django_capture_on_commit_callbacks):
    with mock.patch("app.jobs.emails.send_confirmation_email.delay") as confirmation, django_capture_on_commit_callbacks(execute=True):
        confirmation.return_value.id = "job-1"
        assert post_json(client, "/api/auth/register/", REGISTRATION).status_code == 202
    with mock.patch("app.jobs.emails.send_welcome_email.delay") as welcome, django_capture_on_commit_callbacks(execute=True):
        body = {"token": confirmation_token("nora"), "password": REGISTRATION["password"]}
        assert post_json(client, "/api/auth/confirm/", body).status_code == 200
    from django.contrib.auth import get_user_model

    nora = get_user_model().objects.get(username="nora")
    confirmation.assert_called_once_with(nora.pk)
    welcome.assert_called_once_with(nora.pk)
    assert queued("emails") == []


def test_patching_delay_catches_every_route_in(django_capture_on_commit_callbacks):
    user = make_user()
    with mock.patch("app.jobs.emails.send_email.delay") as delay, django_capture_on_commit_callbacks(execute=True):
        mail_fanout.queue_email("bob@example.org", "Hi", "<p>Hi</p>", owner_id=user.pk)  # .with_options(...).delay
        enqueue(emails.send_email, "bob@example.org", "Hi", "<p>Hi</p>")
        django_rq.enqueue(emails.send_email, "bob@example.org", "Hi", "<p>Hi</p>")
        emails.send_email.task.enqueue("bob@example.org", "Hi", "<p>Hi</p>")
        emails.send_email.delay_many([["a@example.org", "Hi", "<p>Hi</p>"], ["b@example.org", "Hi", "<p>Hi</p>"]])
    assert delay.call_count == 6
    assert delay.call_args_list[0] == mock.call("bob@example.org", "Hi", "<p>Hi</p>", None)
    assert delay.call_args_list[-1] == mock.call("b@example.org", "Hi", "<p>Hi</p>")
    assert queued("emails") == [] and not BackgroundJob.objects.exists()


def test_patching_delay_many_catches_the_fan_out(django_capture_on_commit_callbacks):
    with mock.patch("app.jobs.emails.send_bulk_email.delay_many", return_value=["j1"]) as delay_many:
        assert mail_fanout.queue_bulk_email("announcement", [1, 2, 3], batch_size=2) == ["j1"]
    delay_many.assert_called_once()
    assert queued("emails") == []


def test_patching_delay_catches_the_impact_refresh(django_capture_on_commit_callbacks):
    user = make_user()
    with mock.patch("app.jobs.metrics.update_impact_dashboard_metrics.delay") as delay, django_capture_on_commit_callbacks(execute=True):
        impact_refresh.request_refresh(user.pk)  # .with_options(job_id=...).delay(user_id)
    delay.assert_called_once_with(user.pk)
    assert queued("metrics") == []


def test_a_patch_that_wraps_delay_records_the_job_once(django_capture_on_commit_callbacks):
    with mock.patch.object(fixtures.say_hello, "delay", wraps=fixtures.say_hello.delay) as delay, django_capture_on_commit_callbacks(execute=True):
        job = fixtures.say_hello.with_options(job_id="wrapped1").delay("ana")
    delay.assert_called_once_with("ana")
    assert queued("metrics") == [job.id] != ["wrapped1"]  # the wrapped method enqueued (without the options)
    assert BackgroundJob.objects.count() == 1


def test_without_a_patch_the_real_path_is_untouched(redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = fixtures.say_hello.with_options(job_id="real1").delay("ana")
    assert job.id == "real1" and queued("metrics") == ["real1"]
    assert QueueingJob.fetch("real1", connection=redis_conn).args == ["ana"]
