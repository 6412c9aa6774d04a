"""The operator's command for failed jobs: list with reasons, requeue, delete."""

from __future__ import annotations

from io import StringIO

import django_rq
import pytest
from django.core.management import call_command

from app.jobs import emails
from tests.enqueue import enqueue

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("failedjobs", *args, stdout=out)
    return out.getvalue()


def test_list_requeue_and_delete_failed_jobs(run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = enqueue(emails.send_email, "broken@", "Hi", "<p>x</p>")
        second = enqueue(emails.send_email, "also-broken@", "Hi", "<p>x</p>")
    run_worker("emails")
    listing = run("--queue", "emails")
    assert "emails: 2 failed" in listing
    assert f"{first}  app.jobs.emails.send_email  app.queueing.errors.PermanentJobError: invalid e-mail address 'broken@'" in listing
    queue = django_rq.get_queue("emails")
    assert "requeued" in run("--queue", "emails", "--requeue", "--limit", "1")
    assert queue.count == 1 and queue.failed_job_registry.count == 1
    assert "deleted" in run("--queue", "emails", "--delete")
    assert queue.failed_job_registry.count == 0
    listing = run("--queue", "emails")
    assert "emails: 0 failed" in listing and "retrying: 1" in listing
    # The requeued job waits in its queue for its second attempt: listed as retrying, not failed.
    [requeued] = queue.job_ids
    assert requeued in (first, second)
    assert f"{requeued}  emails  app.jobs.emails.send_email  attempt 2/" in listing
