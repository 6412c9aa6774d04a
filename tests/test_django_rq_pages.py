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
