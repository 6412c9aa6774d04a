"""/metrics: durations, queue wait, outcomes per function; per-queue gauges; refuses anonymous callers."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from app.jobs import emails
from tests.enqueue import enqueue
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in\n{text}")


def test_metrics_refuse_anonymous_and_wrong_token(client, settings):
    settings.METRICS_TOKEN = "prom-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    client.force_login(make_user("staffer", is_staff=True))  # staff is not enough
    assert client.get("/metrics").status_code == 401


def test_metrics_report_job_durations_outcomes_and_queues(client, settings, smtp_sink, run_worker, redis_conn, django_capture_on_commit_callbacks):
    settings.METRICS_TOKEN = "prom-token"
    with django_capture_on_commit_callbacks(execute=True):
        for index in range(3):
            enqueue(emails.send_email, f"user{index}@example.org", "Hi", "<p>x</p>")
        enqueue(emails.send_email, "broken@", "Hi", "<p>x</p>")  # fails permanently
    run_worker("emails")
    with django_capture_on_commit_callbacks(execute=True):
        from app.jobs import metrics

        refresh = enqueue(metrics.refresh_all_dashboards)
    # The refresh has waited 30 s (its enqueued_at set back): the gauge reads that age, not 0.
    waited_since = time.time() - 30
    redis_conn.hset(f"rq:job:{refresh}", "enqueued_at", datetime.fromtimestamp(waited_since, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer prom-token")
    assert response.status_code == 200
    text = response.content.decode()
    func = "app.jobs.emails.send_email"
    assert sample(text, "egoejo_job_outcomes_total", function=func, outcome="success") == 3
    assert sample(text, "egoejo_job_outcomes_total", function=func, outcome="failure") == 1
    assert sample(text, "egoejo_job_duration_seconds_count", function=func) == 4
    assert sample(text, "egoejo_job_queue_wait_seconds_count", function=func) == 4
    assert sample(text, "egoejo_job_duration_seconds_bucket", function=func, le="+Inf") == 4
    assert sample(text, "egoejo_queue_failed_jobs", queue="emails") == 1
    assert sample(text, "egoejo_queue_depth", queue="metrics") == 1
    assert 30 <= sample(text, "egoejo_queue_oldest_job_age_seconds", queue="metrics") <= time.time() - waited_since + 1
    assert sample(text, "egoejo_queue_workers_alive", queue="emails") == 0  # the burst worker has left
    assert sample(text, "egoejo_scheduler_alive") == 0
    assert re.search(r'egoejo_job_duration_seconds_sum\{function="app.jobs.emails.send_email",queue="emails"\} [0-9.e-]+', text)


def test_metrics_feed_the_alert_rules(client, settings, redis_conn, django_capture_on_commit_callbacks):
    """Outbox age, abandoned requeues, Redis memory, queue budgets, scheduler heartbeat (deploy/prometheus/rules.yml)."""
    from datetime import timedelta

    from rq.job import JobStatus

    from app.queueing import keys
    from app.queueing.jobclass import QueueingJob as JSONJob
    from app.queueing.models import BackgroundJob
    from app.queueing.recovery import sweep

    settings.METRICS_TOKEN = "prom-token"
    with django_capture_on_commit_callbacks(execute=True):
        running = enqueue(emails.send_email, "a@example.org", "Hi", "<p>x</p>")
    with django_capture_on_commit_callbacks(execute=False):  # recorded, never pushed: pending in the outbox
        stuck = enqueue(emails.send_email, "b@example.org", "Hi", "<p>x</p>")
    BackgroundJob.objects.filter(pk=stuck).update(created_at=BackgroundJob.objects.get(pk=stuck).created_at - timedelta(seconds=600))
    # The first job was taken by a worker that then died: it sits in the started registry.
    redis_conn.lrem("rq:queue:emails", 0, running)
    job = JSONJob.fetch(running, connection=redis_conn)
    job.set_status(JobStatus.STARTED)
    redis_conn.hset(job.key, "worker_name", "dead-worker")
    redis_conn.zadd("rq:wip:emails", {f"{running}:exec": time.time() + 60})
    assert sweep(redis_conn, ["emails"]) == [running]
    redis_conn.set(keys.SCHEDULER_ALIVE, time.time() - 42, ex=60)

    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer prom-token").content.decode()
    assert sample(text, "egoejo_abandoned_requeues_total", queue="emails") == 1
    assert sample(text, "egoejo_abandoned_requeues_total", queue="images") == 0
    assert sample(text, "egoejo_outbox_pending_jobs") == 2  # the requeued one has not ended either
    assert 600 <= sample(text, "egoejo_outbox_oldest_pending_age_seconds") < 700
    assert sample(text, "egoejo_redis_memory_used_bytes") > 0
    assert sample(text, "egoejo_redis_memory_max_bytes") == int(redis_conn.config_get("maxmemory")["maxmemory"])
    assert sample(text, "egoejo_queue_wait_budget_seconds", queue="emails") == 60
    assert 42 <= sample(text, "egoejo_scheduler_heartbeat_age_seconds") < 100
    assert sample(text, "egoejo_scheduler_alive") == 1
