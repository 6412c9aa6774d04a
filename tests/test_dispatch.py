"""Inside a request, committed jobs reach Redis once the response has gone, all in one round trip."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import django_rq
import pytest
import redis.client
from django.db import transaction

from app.jobs import emails, metrics
from app.queueing import catalog as registry
from app.queueing import dispatch
from app.queueing.connections import DeclaredQueues
from app.queueing.models import BackgroundJob
from app.queueing.outbox import reconcile
from tests.enqueue import enqueue, enqueue_many

pytestmark = pytest.mark.django_db(transaction=True)  # real commits, real on_commit callbacks


def queued(name: str) -> list[str]:
    return django_rq.get_queue(name).get_job_ids()


def test_jobs_committed_during_a_request_wait_for_its_end_then_go_together(redis_conn, settings, monkeypatch):
    settings.QUEUEING_FAST_PATHS = True  # one round trip for the request's jobs: the fast path's batching (RQ's path pushes one by one)
    round_trips: list[int] = []
    real_execute = redis.client.Pipeline.execute

    def execute(pipe, *args, **kwargs):  # type: ignore[no-untyped-def]
        round_trips.append(len(pipe.command_stack))
        return real_execute(pipe, *args, **kwargs)

    dispatch.on_request_started()
    try:
        with transaction.atomic():
            welcome = enqueue(emails.send_welcome_email, 1)
        with transaction.atomic():
            refreshes = enqueue_many(metrics.update_impact_dashboard_metrics, [[1], [2]])
        assert queued("emails") == [] and queued("metrics") == []  # committed, recorded, not yet pushed
        assert BackgroundJob.objects.filter(pk__in=[welcome, *refreshes]).count() == 3
        monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    finally:
        dispatch.on_request_finished()
    assert queued("emails") == [welcome]
    assert queued("metrics") == refreshes
    assert round_trips == [2]  # three jobs, two queues: one pipeline of two script calls


def test_outside_a_request_a_committed_job_is_pushed_at_once():
    with transaction.atomic():
        job_id = enqueue(emails.send_welcome_email, 7)
    assert queued("emails") == [job_id]


def test_a_real_request_pushes_its_job_after_the_response(client):
    response = client.post(
        "/api/auth/register/",
        data=json.dumps({"username": "lea", "email": "lea@example.org", "password": "a-long-pass-phrase-42"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    assert queued("emails") == [response.json()["job_id"]]


def test_redis_away_at_the_end_of_the_request_loses_nothing(settings, redis_conn):
    real_queues = settings.RQ_QUEUES
    settings.RQ_QUEUES = DeclaredQueues({**real_queues.connection, "URL": "redis://127.0.0.1:1/0"})
    dispatch.on_request_started()
    with transaction.atomic():
        job_id = enqueue(emails.send_welcome_email, 9)
    dispatch.on_request_finished()  # logs, does not raise
    settings.RQ_QUEUES = real_queues
    assert queued("emails") == []
    assert BackgroundJob.objects.get(pk=job_id).state == BackgroundJob.State.PENDING
    assert reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 1
    assert queued("emails") == [job_id]


def test_recorded_jobs_read_back_through_the_orm_whatever_their_number():
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create_user("rec", "rec@example.org", "pw-long-enough-1")
    with transaction.atomic():
        single = enqueue(emails.send_welcome_email, owner.pk, owner_id=owner.pk)
        # More rows than one statement may carry on SQLite (999 parameters): several INSERTs.
        many = enqueue_many(metrics.update_impact_dashboard_metrics, [[i] for i in range(300)], owner_id=owner.pk)
    row = BackgroundJob.objects.get(pk=single)
    assert (row.queue, row.func, row.args, row.kwargs, row.owner_id) == ("emails", "app.jobs.emails.send_welcome_email", [owner.pk], {}, owner.pk)
    assert row.state == BackgroundJob.State.PENDING and row.failure_reason == "" and row.ended_at is None
    assert row.created_at.tzinfo is not None
    assert sorted(BackgroundJob.objects.filter(pk__in=many).values_list("args", flat=True)) == sorted([i] for i in range(300))
    assert queued("metrics") == many


def test_a_queue_receives_its_jobs_in_the_order_they_were_enqueued():
    first, second, third = (dispatch.Push(registry.spec_for(path), uuid.uuid4().hex, [1], {}, None) for path in
                            ("tests.fixtures.echo_call", "tests.fixtures.say_hello", "tests.fixtures.echo_call"))
    assert dispatch.send([first, second, third]) == 3
    assert queued("metrics") == [first.job_id, second.job_id, third.job_id]


def test_a_late_push_leaves_a_job_that_ended_meanwhile_alone(redis_conn, run_worker, monkeypatch):
    """A response slower than the reconciler: the reconciler sent the job, it ran and ended, then
    Redis lost its hash (a flush, a failover) before the request's own push went. The conditional
    push found no hash and queued the job a second time; a late push now asks the database first."""
    monkeypatch.setattr(dispatch, "LATE_AFTER", 0.0, raising=False)
    dispatch.on_request_started()
    try:
        with transaction.atomic():
            ended = enqueue(metrics.update_impact_dashboard_metrics, 1)
            waiting = enqueue(metrics.update_impact_dashboard_metrics, 2)
        # The request is still writing its response; the reconciler sends the first job meanwhile.
        dispatch.send([dispatch.Push(registry.spec_for(metrics.update_impact_dashboard_metrics), ended, [1], {}, None)])
        run_worker("metrics")
        assert BackgroundJob.objects.get(pk=ended).state == BackgroundJob.State.FINISHED
        redis_conn.flushdb()
    finally:
        dispatch.on_request_finished()
    assert queued("metrics") == [waiting]  # the ended job is not queued again; the pending one goes


def test_a_late_push_that_cannot_ask_the_database_leaves_its_jobs_to_the_reconciler(redis_conn, monkeypatch):
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    monkeypatch.setattr(dispatch, "LATE_AFTER", 0.0, raising=False)
    dispatch.on_request_started()
    with transaction.atomic():
        job_id = enqueue(emails.send_welcome_email, 3)

    def database_gone(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("the database is restarting")

    monkeypatch.setattr(QuerySet, "values_list", database_gone)
    dispatch.on_request_finished()
    monkeypatch.undo()
    assert queued("emails") == []
    assert reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 1
    assert queued("emails") == [job_id]
