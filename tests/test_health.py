"""/healthz: 200 only when the database, Redis, a worker per queue and the scheduler are alive."""

from __future__ import annotations

import time

import django_rq
import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from app.queueing import keys
from app.queueing.connections import DeclaredQueues
from app.queueing.scheduling import ProjectScheduler
from app.queueing.workers import InProcessWorker

pytestmark = pytest.mark.django_db

OPERATOR_TOKEN = "health-token-for-tests-0123456789abcdef"


@pytest.fixture(autouse=True)
def as_monitoring(client, settings):  # type: ignore[no-untyped-def]
    """The report's details are for the metrics token's bearer (tests/security: anyone else gets the verdict)."""
    settings.METRICS_TOKEN = OPERATOR_TOKEN
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {OPERATOR_TOKEN}"


@pytest.fixture
def live_stack(redis_conn):  # type: ignore[no-untyped-def]
    workers = [
        InProcessWorker([django_rq.get_queue(name)], connection=redis_conn) for name in ("emails", "images", "metrics")
    ]
    for worker in workers:
        worker.register_birth()
    ProjectScheduler(queue_name="metrics", interval=5, connection=redis_conn).heartbeat()
    yield workers
    for worker in workers:
        worker.register_death()


def test_healthy_when_everything_answers(client, live_stack):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["checks"]["queue:emails"]["workers"] == 1
    assert body["checks"]["scheduler"]["ok"] is True


def test_no_worker_on_a_queue_is_unhealthy(client, live_stack):
    live_stack[1].register_death()
    body = client.get("/healthz").json()
    assert body["status"] == "unhealthy"
    assert body["reasons"] == ["queue:images: no live worker listens on 'images'"]


def test_a_dead_worker_whose_key_expired_does_not_count(client, live_stack, redis_conn):
    redis_conn.delete(live_stack[0].key)  # what its TTL does when the process is SIGKILLed
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "no live worker listens on 'emails'" in response.json()["reasons"][0]


def test_scheduler_gone_is_unhealthy(client, live_stack, redis_conn):
    redis_conn.delete(keys.SCHEDULER_ALIVE)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["scheduler: no live rqscheduler process"]


def test_backlog_older_than_the_limit_is_unhealthy(client, live_stack, settings):
    settings.HEALTH_MAX_QUEUE_AGE_SECONDS = 1
    Queue("metrics", connection=django_rq.get_queue("metrics").connection, serializer=JSONSerializer).enqueue_call(
        "app.jobs.metrics.refresh_all_dashboards"
    )
    assert client.get("/healthz").status_code == 200
    time.sleep(1.2)
    body = client.get("/healthz").json()
    assert body["checks"]["queue:metrics"]["oldest_job_age_seconds"] > 1
    assert "oldest job on 'metrics' has waited" in body["reasons"][0]


def test_redis_down_is_unhealthy_with_the_reason(client, settings):
    settings.RQ_QUEUES = DeclaredQueues({**settings.RQ_QUEUES.connection, "URL": "redis://127.0.0.1:1/0"})
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["redis: queue Redis unreachable (ConnectionError)"]
