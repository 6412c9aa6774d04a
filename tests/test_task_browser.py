"""The task browser (app/queueing/admin.py BackgroundJobAdmin): the ledger searched, a job's story,
its live state, the safe actions and the graphs. Rows are written as the worker fills them in."""

from __future__ import annotations

import uuid
from datetime import timedelta

import django_rq
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.utils import timezone
from rq.job import JobStatus

from app.queueing import ledger_graphs
from app.queueing.models import BackgroundJob
from tests.enqueue import enqueue
from tests.factories import make_user
from tests.fixtures import fail_permanently, say_hello

pytestmark = pytest.mark.django_db

LIST = "/admin/queueing/backgroundjob/"


@pytest.fixture
def operator(client):  # type: ignore[no-untyped-def]
    user = make_user("opal", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="admin", content_type__app_label="django_rq"))
    client.force_login(user)
    return client


def row(**fields: object) -> BackgroundJob:
    now = timezone.now()
    values: dict[str, object] = {
        "id": uuid.uuid4().hex, "queue": "metrics", "func": "tests.fixtures.say_hello", "args": [], "kwargs": {},
        "state": "finished", "created_at": now - timedelta(minutes=10), "attempts": 1, "max_attempts": 3,
    }
    values.update(fields)
    return BackgroundJob.objects.create(**values)


def listed(client, query: str) -> set[str]:  # type: ignore[no-untyped-def]
    response = client.get(LIST + query)
    assert response.status_code == 200, response.content[:500]
    return {r.id for r in response.context["cl"].result_list}


def test_search_by_id_function_owner_and_argument_text(operator):
    owner = make_user("bertha", email="bertha@example.net")
    by_owner = row(owner=owner)
    by_func = row(func="tests.fixtures.echo_call")
    by_args = row(args=["needle-in-args"], kwargs={})
    by_kwargs = row(kwargs={"to": "kw-needle@example.org"})
    other = row()
    assert listed(operator, f"?q={other.id}") == {other.id}
    assert listed(operator, "?q=echo_call") == {by_func.id}
    assert listed(operator, "?q=bertha") == {by_owner.id}
    assert listed(operator, "?q=example.net") == {by_owner.id}
    assert listed(operator, "?q=needle-in-args") == {by_args.id}
    assert listed(operator, "?q=kw-needle") == {by_kwargs.id}


def test_filters_retrying_state_queue_function_and_time_range(operator):
    retrying = row(state="pending", attempts=1, ended_at=None)
    waiting = row(state="pending", attempts=0, ended_at=None)
    failed = row(state="failed", queue="emails")
    old = row(created_at=timezone.now() - timedelta(days=3), func="tests.fixtures.echo_call")
    assert listed(operator, "?state=retrying") == {retrying.id}
    assert listed(operator, "?state=pending") == {retrying.id, waiting.id}
    assert listed(operator, "?state=failed") == {failed.id}
    assert listed(operator, "?queue=emails") == {failed.id}
    assert listed(operator, "?func=tests.fixtures.echo_call") == {old.id}
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert listed(operator, f"?created_at__gte={since}") == {retrying.id, waiting.id, failed.id}
    before = (timezone.now() - timedelta(days=2)).strftime("%Y-%m-%d")
    assert listed(operator, f"?created_at__lt={before}") == {old.id}
    page = operator.get(LIST + "?state=retrying").content.decode()
    assert ">retrying<" in page  # the state column says so, not "pending"
    assert "1/3" in page  # attempts n/N


def test_a_bad_time_bound_is_refused_not_a_500(operator):
    response = operator.get(LIST + "?created_at__gte=yesterday")
    assert response.status_code in (200, 302)  # the admin's "invalid lookup" answer
    assert response.status_code != 500


@pytest.mark.parametrize("superuser", [False, True])
def test_no_add_no_edit_no_delete(operator, superuser):
    if superuser:  # a superuser had them all: Add answered 500, bulk delete bypassed the outbox
        operator.force_login(make_user("root", is_staff=True, is_superuser=True))
    job = row()
    assert operator.get(LIST + "add/").status_code == 403
    assert operator.get(LIST + f"{job.id}/delete/").status_code == 403
    page = operator.get(LIST).content.decode()
    assert "delete_selected" not in page and 'name="action"' not in page
    assert f"{LIST}add/" not in page
    response = operator.post(LIST + f"{job.id}/change/", {"state": "pending"})
    assert response.status_code == 403
    assert BackgroundJob.objects.get(pk=job.id).state == "finished"


def test_the_job_page_tells_the_whole_story(operator):
    now = timezone.now()
    job = row(
        state="finished", attempts=2, max_attempts=3, last_error="SMTPServerDisconnected: <b>gone</b>",
        started_at=now - timedelta(minutes=9), ended_at=now - timedelta(minutes=8), outcome={"return_value": 42},
        history=[
            {"n": 1, "started_at": "t1", "ended_at": "t2", "duration": 0.5, "worker": "w-one", "host": "h1", "pid": 11,
             "outcome": "failed", "error": "SMTPServerDisconnected: <b>gone</b>"},
            {"n": 2, "started_at": "t4", "ended_at": "t5", "duration": 0.25, "worker": "w-two", "host": "h2", "pid": 22,
             "outcome": "finished", "error": ""},
        ],
        actions=[{"action": "requeue", "by": "root", "at": "t3", "note": "requeued"}],
    )
    response = operator.get(LIST + f"{job.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('data-role="attempt"') == 2 and "w-one" in page and "w-two" in page and ">22<" in page
    assert page.count('data-role="operator-action"') == 1
    assert "&lt;b&gt;gone&lt;/b&gt;" in page and "<b>gone</b>" not in page  # error text escaped
    assert "return_value" in page and "42" in page
    assert "task_browser_live.js" not in page or 'id="live-state"' not in page  # an ended row: no live panel


def test_live_endpoint_reads_a_started_job_from_redis(operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(say_hello, "live")
    queue = django_rq.get_queue("metrics")
    job = queue.fetch_job(job_id)
    job.worker_name = "worker-live-1"
    job.started_at = timezone.now()
    job.save()
    job.set_status(JobStatus.STARTED)
    page = operator.get(LIST + f"{job_id}/change/").content.decode()
    assert 'id="live-state"' in page and "task_browser_live.js" in page
    data = operator.get(LIST + f"{job_id}/live/").json()
    assert data["redis"] == "started" and data["worker"] == "worker-live-1"
    assert data["summary"].startswith("started on worker worker-live-1 since ")
    assert data["state"] == "pending"


def test_live_endpoint_survives_garbage_in_redis(operator, redis_conn):
    job = row(state="pending", ended_at=None)
    redis_conn.hset(f"rq:job:{job.id}", mapping={"data": b"\x80not json", "status": "started"})
    response = operator.get(LIST + f"{job.id}/live/")
    assert response.status_code == 200
    data = response.json()
    assert data["redis"] in (None, "unreadable") and data["summary"]  # said, never a 500


def _act(client, job_id: str, action: str):  # type: ignore[no-untyped-def]
    return client.post(LIST + f"{job_id}/act/{action}/", follow=True)


def _actions(job_id: str) -> list[dict]:
    return list(BackgroundJob.objects.get(pk=job_id).actions or [])


def test_requeue_a_failed_job_is_recorded(operator, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(fail_permanently, "broken")
    run_worker("metrics")
    assert BackgroundJob.objects.get(pk=job_id).state == "failed"
    queue = django_rq.get_queue("metrics")
    assert queue.failed_job_registry.count == 1
    response = _act(operator, job_id, "requeue")
    assert "Requeue: requeued" in response.content.decode()
    assert queue.count == 1 and queue.failed_job_registry.count == 0
    [entry] = _actions(job_id)
    assert entry["action"] == "requeue" and entry["by"] == "opal" and entry["at"]
    assert LogEntry.objects.filter(object_id=job_id, change_message__contains="requeue").exists()
    # a second time: nothing in the failed list any more, refused and not recorded
    response = _act(operator, job_id, "requeue")
    assert "no longer in Redis" in response.content.decode()
    assert len(_actions(job_id)) == 1


def test_cancel_a_queued_job_closes_its_row_and_is_recorded(operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(say_hello, "cancel me")
    response = _act(operator, job_id, "cancel")
    assert "Cancel: cancelled" in response.content.decode()
    saved = BackgroundJob.objects.get(pk=job_id)
    assert saved.state == "cancelled"
    assert django_rq.get_queue("metrics").fetch_job(job_id).get_status() == JobStatus.CANCELED
    assert [e["action"] for e in _actions(job_id)] == ["cancel"]
    assert LogEntry.objects.filter(object_id=job_id).count() == 1


def test_cancel_a_pending_row_redis_lost_closes_it(operator):
    job = row(state="pending", ended_at=None)
    _act(operator, job.id, "cancel")
    assert BackgroundJob.objects.get(pk=job.id).state == "cancelled"
    assert [e["action"] for e in _actions(job.id)] == ["cancel"]


def test_stop_a_running_job_is_sent_and_recorded_and_cancel_is_refused(operator, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(say_hello, "running")
    job = django_rq.get_queue("metrics").fetch_job(job_id)
    job.worker_name = "worker-stop-1"
    job.save()
    job.set_status(JobStatus.STARTED)
    pubsub = redis_conn.pubsub()
    pubsub.subscribe("rq:pubsub:worker-stop-1")
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    refused = _act(operator, job_id, "cancel").content.decode()
    assert "The job is running: stop it instead." in refused
    response = _act(operator, job_id, "stop")
    assert "Stop: stop sent to worker worker-stop-1" in response.content.decode()
    message = pubsub.get_message(timeout=2)
    assert message and b"stop-job" in message["data"] and job_id.encode() in message["data"]
    assert [e["action"] for e in _actions(job_id)] == ["stop"]
    pubsub.close()


def test_actions_refuse_rows_in_the_wrong_state(operator, django_capture_on_commit_callbacks):
    finished = row(state="finished")
    with django_capture_on_commit_callbacks(execute=True):
        queued = enqueue(say_hello, "queued")
    for job_id, action, said in (
        (finished.id, "requeue", "Only a failed job can be requeued"),
        (finished.id, "cancel", "Only a pending job can be cancelled"),
        (finished.id, "stop", "Only a running job can be stopped"),
        (queued, "requeue", "Only a failed job can be requeued"),
        (queued, "stop", "The job is not running (Redis: queued)"),
    ):
        assert said in _act(operator, job_id, action).content.decode(), (action, job_id)
        assert _actions(job_id) == []
    assert BackgroundJob.objects.get(pk=finished.id).state == "finished"
    assert BackgroundJob.objects.get(pk=queued).state == "pending"
    assert LogEntry.objects.count() == 0


def test_actions_are_post_only(operator):
    job = row(state="failed")
    assert operator.get(LIST + f"{job.id}/act/requeue/").status_code == 405
    assert operator.post(LIST + f"{job.id}/act/delete/").status_code == 404


def test_actions_need_the_csrf_token(client):
    from django.test import Client

    user = make_user("csrf-op", is_staff=True, is_superuser=True)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    job = row(state="pending", ended_at=None)
    assert strict.post(LIST + f"{job.id}/act/cancel/").status_code == 403
    assert BackgroundJob.objects.get(pk=job.id).state == "pending"
    page = strict.get(LIST + f"{job.id}/change/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    assert strict.post(LIST + f"{job.id}/act/cancel/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert BackgroundJob.objects.get(pk=job.id).state == "cancelled"


def test_non_operators_are_refused_everywhere(client):
    job = row(state="pending", ended_at=None)
    paths = [LIST, LIST + f"{job.id}/change/", LIST + f"{job.id}/live/", LIST + "graphs/"]
    for path in paths:  # anonymous: the login page
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path
    client.force_login(make_user("stella", is_staff=True))
    for path in paths:
        assert client.get(path).status_code == 403, path
    assert client.post(LIST + f"{job.id}/act/cancel/").status_code == 403
    assert BackgroundJob.objects.get(pk=job.id).state == "pending"


def test_graphs_count_known_rows(operator):
    now = timezone.now().replace(second=30, microsecond=0)
    minute = now.replace(second=0) - timedelta(minutes=5)
    base = minute - timedelta(minutes=1)
    for wait in (1, 2, 3, 4, 5):  # five finished in the same minute, waits 1..5 s, one retried twice
        row(queue="emails", state="finished", created_at=base, started_at=base + timedelta(seconds=wait),
            ended_at=minute + timedelta(seconds=wait), attempts=3 if wait == 5 else 1)
    row(queue="emails", state="failed", created_at=base, started_at=base, ended_at=minute + timedelta(seconds=10), attempts=2)
    row(queue="emails", state="failed", created_at=base, due_at=base + timedelta(seconds=20), started_at=base + timedelta(seconds=22),
        ended_at=minute + timedelta(seconds=40), attempts=1)
    row(queue="emails", state="finished", created_at=now - timedelta(hours=3), ended_at=now - timedelta(hours=2), attempts=1)  # not in the hour
    row(queue="emails", state="pending", ended_at=None, attempts=4)  # not ended: not counted
    hour = ledger_graphs.series("hour", now)["emails"]
    index = int((minute - hour.start) / timedelta(minutes=1))
    assert hour.values["throughput"][index] == 5 and sum(hour.values["throughput"]) == 5
    assert hour.values["failures"][index] == 2 and sum(hour.values["failures"]) == 2
    assert hour.values["retries"][index] == 3  # (3 - 1) + (2 - 1)
    # waits: 1, 2, 3, 4, 5, 0, 2 s (the last from its due time): p95 by linear interpolation
    assert hour.values["wait_p95"][index] == pytest.approx(ledger_graphs.percentile([1, 2, 3, 4, 5, 0, 2], 0.95))
    day = ledger_graphs.series("day", now)["emails"]
    assert sum(day.values["throughput"]) == 6 and sum(day.values["failures"]) == 2
    assert set(ledger_graphs.series("hour", now)) >= {"emails", "images", "metrics"}
    page = operator.get(LIST + "graphs/")
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('<svg class="ledger-graph"') == 2 * 3 * 4  # two windows, three queues, four metrics
    assert "<script" not in body.split('id="content-main"')[1]
    assert "total 5" in body and "total 2" in body and "total 3" in body


def test_the_list_links_the_graphs_and_counts_no_more_than_its_cap(operator, settings):
    from app.queueing import admin as queueing_admin

    for _ in range(4):
        row()
    old_cap = queueing_admin.COUNT_CAP
    queueing_admin.COUNT_CAP = 2
    try:
        response = operator.get(LIST)
    finally:
        queueing_admin.COUNT_CAP = old_cap
    assert response.context["cl"].result_count == 3  # capped: COUNT_CAP + 1 means "more"
    assert LIST + "graphs/" in response.content.decode()


def test_the_action_forms_are_not_nested_in_the_page_form(operator):
    """A form inside the admin's own <form> would submit that one (a 403 POST to change/): tests/browser clicks it."""
    job = row(state="failed")
    page = operator.get(LIST + f"{job.id}/change/").content.decode()
    action_form = page.index(f'action="{LIST}{job.id}/act/requeue/"')
    page_form = page.index('id="backgroundjob_form"')
    assert action_form < page_form
