"""Views enqueue exactly what they should, on the right queue, and only after commit."""

from __future__ import annotations

import json

import django_rq
import pytest
from django.contrib.auth.models import User
from django.db import transaction

from app.queueing.models import BackgroundJob
from tests.factories import confirmation_token, jpeg_bytes, make_user

pytestmark = pytest.mark.django_db


def queued(name: str) -> list[str]:
    return django_rq.get_queue(name).get_job_ids()


def post_json(client, url: str, body: dict):  # type: ignore[no-untyped-def]
    return client.post(url, data=json.dumps(body), content_type="application/json")


REGISTRATION = {"username": "nora", "email": "nora@example.org", "password": "a-long-pass-phrase-42"}


def test_register_enqueues_one_confirmation_mail_after_commit(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_json(client, "/api/auth/register/", REGISTRATION)
        assert queued("emails") == []  # nothing reaches Redis before the commit
    assert response.status_code == 202
    for callback in callbacks:
        callback()
    job_id = response.json()["job_id"]
    assert queued("emails") == [job_id]
    assert queued("images") == [] and queued("metrics") == []
    job = django_rq.get_queue("emails").fetch_job(job_id)
    assert job.func_name == "app.jobs.emails.send_confirmation_email"
    assert job.args == [User.objects.get(username="nora").pk]  # an id (never a model instance, nor a token)
    assert job.retries_left and job.retry_intervals[0] < job.retry_intervals[-1]  # exponential backoff


def test_rolled_back_registration_enqueues_nothing(client, django_capture_on_commit_callbacks):
    from app.services.accounts import register_user

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                register_user(username="ghost", email="ghost@example.org", password="a-long-pass-phrase-42")
                raise RuntimeError("the request failed after registering")
    assert queued("emails") == []
    assert not BackgroundJob.objects.exists()


def test_invalid_registration_is_a_400_and_enqueues_nothing(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, "/api/auth/register/", {**REGISTRATION, "email": "nope", "password": "123"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"email", "password"}
    assert queued("emails") == []


def test_register_requires_csrf_token():
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post_json(strict, "/api/auth/register/", REGISTRATION).status_code == 403
    token = strict.get("/api/auth/csrf/").json()["csrfToken"]
    response = strict.post(
        "/api/auth/register/", data=json.dumps(REGISTRATION), content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 202


def test_image_upload_enqueues_processing(client, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(make_user())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/images/", {"image": SimpleUploadedFile("photo.jpg", jpeg_bytes((640, 480)))})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert queued("images") == [body["job_id"]]
    job = django_rq.get_queue("images").fetch_job(body["job_id"])
    assert job.func_name == "app.jobs.images.process_image"
    # The card's call, keyword arguments included: process_image.delay(image_path=...)
    assert job.args == [] and job.kwargs["image_path"].startswith("uploads/originals/") and "photo" not in job.kwargs["image_path"]


def test_image_upload_requires_login(client):
    assert client.post("/api/images/", {}).status_code == 401


@pytest.mark.django_db(transaction=True)  # as in production: a GET runs outside any transaction
def test_impact_enqueues_a_refresh_when_stale(client, django_capture_on_commit_callbacks, run_worker):
    user = make_user()
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.get("/api/impact/").json()
    assert first["dashboard"] is None and first["stale"] is True
    assert queued("metrics") == [first["refresh_job_id"]]
    run_worker("metrics")
    with django_capture_on_commit_callbacks(execute=True):
        second = client.get("/api/impact/").json()
    assert second["stale"] is False and second["refresh_job_id"] is None
    assert second["dashboard"]["contributions_count"] == 0
    assert queued("metrics") == []


def test_job_status_only_for_its_owner(client, django_capture_on_commit_callbacks, run_worker):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, "/api/auth/register/", REGISTRATION)
    job_id = response.json()["job_id"]
    run_worker("emails")
    # Registering opens no session; following the mailed link (with the password) does.
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = post_json(client, "/api/auth/confirm/", {"token": confirmation_token("nora"), "password": REGISTRATION["password"]})
    assert confirmed.status_code == 200
    status = client.get(f"/api/jobs/{job_id}/").json()
    assert status["status"] == "finished"
    assert status["result"]["user_id"] == User.objects.get(username="nora").pk and status["result"]["sent"] is True

    client.force_login(make_user("mallory"))
    assert client.get(f"/api/jobs/{job_id}/").status_code == 404
    assert client.get("/api/jobs/does-not-exist/").status_code == 404
    client.logout()
    assert client.get(f"/api/jobs/{job_id}/").status_code == 401


def test_job_status_survives_redis_losing_the_job(client, django_capture_on_commit_callbacks, redis_conn):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = post_json(client, "/api/auth/register/", REGISTRATION).json()["job_id"]
    assert post_json(client, "/api/auth/confirm/", {"token": confirmation_token("nora"), "password": REGISTRATION["password"]}).status_code == 200
    redis_conn.flushdb()
    assert client.get(f"/api/jobs/{job_id}/").json()["status"] == "pending"
