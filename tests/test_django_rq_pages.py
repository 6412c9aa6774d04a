"""django-rq's admin pages as the project serves them: Django 5.2's admin JS, failure reasons, real queues only."""

from __future__ import annotations

import django_rq
import pytest
from django.core.management import call_command
from rq import Queue
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from app.templatetags.egoejo_rq import last_line
from tests.factories import make_user

pytestmark = pytest.mark.django_db

TRACEBACK = 'Traceback (most recent call last):\n  File "/srv/app/jobs/emails.py", line 3\napp.queueing.errors.PermanentJobError: invalid e-mail address \'x@\'\n'


def _index(name: str) -> int:
    return [q["name"] for q in django_rq.settings.get_queues_list()].index(name)


@pytest.fixture
def root(client):  # type: ignore[no-untyped-def]
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def _failed_job(redis_conn) -> str:  # type: ignore[no-untyped-def]
    queue = Queue("emails", connection=django_rq.get_connection("emails"), serializer=JSONSerializer)  # RQ\'s own: set-up written into Redis directly
    job = Job.fetch(
        queue.enqueue_call("app.jobs.emails.send_email", args=["x@", "s", "x"]).id,
        connection=redis_conn, serializer=JSONSerializer,
    )
    Result.create_failure(job, ttl=60, exc_string=TRACEBACK)
    queue.remove(job.id)
    queue.failed_job_registry.add(job, ttl=60)
    return job.id


def test_failed_list_shows_each_jobs_failure_reason(root, redis_conn):
    job_id = _failed_job(redis_conn)
    page = root.get(f"/admin/django-rq/queues/{_index('emails')}/failed/").content.decode()
    assert job_id in page
    assert "PermanentJobError: invalid e-mail address &#x27;x@&#x27;" in page  # escaped once, by Django
    assert last_line(TRACEBACK) == "app.queueing.errors.PermanentJobError: invalid e-mail address 'x@'"


def test_only_the_served_queues_are_listed(root):
    assert [q["name"] for q in django_rq.settings.get_queues_list()] == ["emails", "images", "metrics"]
    page = root.get("/admin/django-rq/").content.decode()
    assert ">default<" not in page and "emails" in page


def test_list_pages_load_the_admin_actions_script_not_the_removed_jquery_plugin(root, redis_conn):
    _failed_job(redis_conn)
    emails = _index("emails")
    for path in ("queues/{i}/", "queues/{i}/failed/", "queues/{i}/finished/", "queues/{i}/started/", "queues/{i}/deferred/", "queues/{i}/scheduled/", "workers/{i}/"):
        response = root.get("/admin/django-rq/" + path.format(i=emails))
        assert response.status_code == 200, path
        page = response.content.decode()
        assert ".actions()" not in page, path
        if not path.startswith("workers/"):
            assert "admin/js/actions.js" in page and "egoejo/django_rq_actions.js" in page, path


def test_suspend_and_resume_work_without_a_default_queue(redis_conn, capsys):
    call_command("rqsuspend")
    assert redis_conn.exists("rq:suspended")
    call_command("rqresume")
    assert not redis_conn.exists("rq:suspended")
    assert "suspended" in capsys.readouterr().out


def _rows(*job_ids: str) -> list[str]:
    from app.queueing.models import BackgroundJob

    states = dict(BackgroundJob.objects.filter(pk__in=job_ids).values_list("pk", "state"))
    return [states[job_id] for job_id in job_ids]


def test_every_delete_in_django_rqs_pages_is_final(root, redis_conn, django_capture_on_commit_callbacks):
    """django-rq's delete views use rq's own Job class, not JOB_CLASS: a job deleted there kept
    its pending outbox row, and the reconciler sent it again seconds later."""
    from datetime import timedelta

    from rq.job import JobStatus

    from app.jobs import emails, metrics
    from app.queueing import outbox

    with django_capture_on_commit_callbacks(execute=True):
        one, bulk, kept, unrecorded = emails.send_welcome_email.delay_many([[1], [2], [3], [4]])
        emptied = metrics.update_impact_dashboard_metrics.delay(5).id
    # A failure its worker could not record (the database was down): failed in Redis, pending row.
    queue = django_rq.get_queue("emails")
    queue.remove(unrecorded)
    job = queue.fetch_job(unrecorded)
    job.set_status(JobStatus.FAILED)
    queue.failed_job_registry.add(job, ttl=60)

    emails_index, metrics_index = _index("emails"), _index("metrics")
    assert root.post(f"/admin/django-rq/queues/{emails_index}/{one}/delete/").status_code == 302
    assert root.post(f"/admin/django-rq/queues/actions/{emails_index}/", {"action": "delete", "job_ids": [bulk]}).status_code == 302
    assert root.post(f"/admin/django-rq/queues/{emails_index}/failed/clear/").status_code == 302
    assert root.post(f"/admin/django-rq/queues/{metrics_index}/empty/").status_code == 302

    assert _rows(one, bulk, unrecorded, emptied) == ["cancelled"] * 4
    assert _rows(kept) == ["pending"]
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 0
    assert queue.get_job_ids() == [kept] and django_rq.get_queue("metrics").get_job_ids() == []


@pytest.mark.django_db(transaction=True)  # the failed UPDATE must not poison the test's own transaction
def test_a_delete_whose_cancel_cannot_be_recorded_deletes_nothing(root, redis_conn, django_capture_on_commit_callbacks):
    """Deleted from Redis with its row still pending, the job would come back: refuse instead."""
    from django.db import OperationalError, connection

    from app.jobs import emails

    with django_capture_on_commit_callbacks(execute=True):
        job_id = emails.send_welcome_email.delay(1).id

    def database_gone(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.lstrip().upper().startswith("UPDATE") and "egoejo_backgroundjob" in sql:
            raise OperationalError("terminating connection due to administrator command")
        return execute(sql, params, many, context)

    root.raise_request_exception = False
    with connection.execute_wrapper(database_gone):
        response = root.post(f"/admin/django-rq/queues/{_index('emails')}/{job_id}/delete/")
    assert response.status_code == 500
    assert django_rq.get_queue("emails").get_job_ids() == [job_id]  # still there, its row pending
    assert _rows(job_id) == ["pending"]


def test_the_deleting_views_are_django_rqs_own_routes_and_names():
    """A django-rq upgrade that renames or moves them must not let deletes bypass the outbox."""
    from django.urls import resolve, reverse

    from app.queueing import django_rq_pages

    assert reverse("django_rq:delete_job", args=[0, "abc"]) == "/admin/django-rq/queues/0/abc/delete/"
    assert resolve("/admin/django-rq/queues/0/abc/delete/").func is django_rq_pages.delete_job
    assert resolve("/admin/django-rq/queues/actions/0/").func is django_rq_pages.actions
    assert resolve("/admin/django-rq/queues/0/failed/clear/").func is django_rq_pages.delete_failed_jobs
    assert resolve("/admin/django-rq/queues/0/").url_name == "jobs"
