"""Busy and retrying work in sight on every operator's view, and `rqsuspend` holding every worker kind.

Real Redis and real worker processes (rqworker forking or in-process, rqpool); the dashboards are
rq-dashboard's app (app/queueing/dashboard.py) and django-rq's pages through Django's client.
"""

from __future__ import annotations

import base64
import time
from io import StringIO
from pathlib import Path

import django_rq
import pytest
import redis
from django.core.management import call_command
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.queueing import work_in_sight
from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env
from tests.enqueue import enqueue
from tests.factories import make_user
from tests.fixtures import fail_until_attempt
from tests.signing import enqueue_signed

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

AUTH = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode()}
TOKEN = "work-in-sight-token-0123456789abcdef"
WORKER_KINDS = {
    "forking rqworker": ["manage.py", "rqworker", "metrics"],
    "in-process rqworker": ["manage.py", "rqworker", "metrics", "--worker-class", "app.queueing.workers.InProcessWorker"],
    "rqpool members": ["manage.py", "rqpool", "metrics", "--workers", "2"],
}


def wait_until(predicate, timeout: float = 30.0, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


@pytest.fixture
def dashboard(redis_db_index):  # type: ignore[no-untyped-def]
    from django.conf import settings

    from app.queueing.dashboard import create_app

    return create_app(settings.RQ_QUEUES_URL, "operator", "s3cret").test_client()


@pytest.fixture
def root(client):  # type: ignore[no-untyped-def]
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def _index(name: str) -> int:
    return [q["name"] for q in django_rq.settings.get_queues_list()].index(name)


def rq_dashboard_workers(dashboard) -> str:  # type: ignore[no-untyped-def]
    response = dashboard.get("/0/view/workers", headers=AUTH)
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


def django_rq_workers(root) -> str:  # type: ignore[no-untyped-def]
    response = root.get(f"/admin/django-rq/workers/{_index('metrics')}/")
    assert response.status_code == 200
    return str(response.content.decode())


def enqueue_raw(redis_conn: redis.Redis, func: str, *args: object) -> Job:
    return enqueue_signed(Queue("metrics", connection=redis_conn, serializer=JSONSerializer), func, *args)


def status(redis_conn: redis.Redis, job_id: str) -> JobStatus | None:
    return Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer).get_status()


def env_for(tmp_path: Path, redis_db_index: int) -> dict[str, str]:
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    manage(env, "migrate", "--noinput")
    return env


def test_a_busy_workers_job_is_on_both_dashboards(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis, dashboard, root):
    env = env_for(tmp_path, redis_db_index)
    job = enqueue_raw(redis_conn, "tests.fixtures.sleep_for", 20)
    log_dir = tmp_path / "logs"
    with running(env, WORKER_KINDS["forking rqworker"], log_dir=log_dir):
        assert wait_until(lambda: status(redis_conn, job.id) == JobStatus.STARTED), logs(log_dir)
        assert wait_until(lambda: any(w.job_id == job.id for w in work_in_sight.workers(redis_conn).workers), timeout=5), logs(log_dir)
        for page in (rq_dashboard_workers(dashboard), django_rq_workers(root)):
            assert job.id in page
            assert "tests.fixtures.sleep_for" in page
            assert 'data-state="busy"' in page
            started = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).started_at
            assert started is not None and started.strftime("%Y-%m-%d %H:%M:%S") in page  # since when


def test_a_retrying_jobs_attempt_next_run_and_last_error_are_everywhere(
    run_worker, redis_conn: redis.Redis, dashboard, root, client, settings, tmp_path: Path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = enqueue(fail_until_attempt, str(tmp_path / "attempts"), 3)
    run_worker("metrics")  # attempt 1 fails (transiently): the retry waits 30 s in the scheduled registry
    score = redis_conn.zscore("rq:scheduled:metrics", job_id)
    assert score is not None
    from datetime import UTC, datetime

    next_run = datetime.fromtimestamp(score, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    error = "app.queueing.errors.TransientJobError: attempt 1"
    for page in (rq_dashboard_workers(dashboard), django_rq_workers(root)):
        assert job_id in page and "attempt 2/3" in page and next_run in page and error in page
    data = dashboard.get(f"/0/data/job/{job_id}.json", headers=AUTH).get_json()
    assert data["retry"] == {
        "id": job_id, "func": "tests.fixtures.fail_until_attempt", "queue": "metrics", "attempt": 2, "attempts": 3,
        "next_run": datetime.fromtimestamp(score, tz=UTC).isoformat(), "last_error": error,
    }
    assert 'data-role="retry"' in dashboard.get(f"/0/view/job/{job_id}", headers=AUTH).get_data(as_text=True)
    detail = root.get(f"/admin/django-rq/queues/{_index('metrics')}/{job_id}/").content.decode()
    assert "attempt 2/3" in detail and next_run in detail and error in detail

    out = StringIO()
    call_command("failedjobs", "--queue", "metrics", stdout=out)
    listing = out.getvalue()
    assert "metrics: 0 failed" in listing and "retrying: 1" in listing
    assert f"{job_id}  metrics  tests.fixtures.fail_until_attempt  attempt 2/3  next run {next_run} UTC  last error: {error}" in listing

    out = StringIO()
    call_command("rqstats", stdout=out)
    table = out.getvalue()
    header = next(line for line in table.splitlines() if line.startswith("| Name"))
    assert [cell.strip() for cell in header.strip("|").split("|")][6:8] == ["Scheduled", "Retrying"], table
    [metrics_row] = [line for line in table.splitlines() if line.startswith("| metrics ")]
    assert [cell.strip() for cell in metrics_row.strip("|").split("|")][6:8] == ["1", "1"], table  # scheduled, retrying
    out = StringIO()
    call_command("rqstats", "--json", stdout=out)
    import json

    assert {q["name"]: q["retrying_jobs"] for q in json.loads(out.getvalue())["queues"]}["metrics"] == 1

    settings.METRICS_TOKEN = TOKEN
    health = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert health["checks"]["retrying"] == {"ok": True, "jobs": 1, "by_function": {"tests.fixtures.fail_until_attempt": 1}}
    metrics = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert 'egoejo_jobs_retrying{function="tests.fixtures.fail_until_attempt",queue="metrics"} 1.0' in metrics


def test_retry_state_read_from_a_forged_hash_is_text_and_escaped(redis_conn: redis.Redis, dashboard, root):
    """Redis is untrusted: a hand-written meta is read as data, shown escaped, never breaks a page."""
    job = enqueue_raw(redis_conn, "tests.fixtures.say_hello")
    forged = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    forged.meta.update(errors=[{"traceback": "Boom\nValueError: <script>alert(1)</script>"}], max_retries="x")
    forged.save_meta()
    real = enqueue_raw(redis_conn, "tests.fixtures.say_hello")
    kept = Job.fetch(real.id, connection=redis_conn, serializer=JSONSerializer)
    kept.meta.update(errors=[{"traceback": "ValueError: <img src=x onerror=alert(1)>"}], max_retries=2)
    kept.retries_left = 1
    kept.save()
    [row] = work_in_sight.retrying_jobs(redis_conn, ["metrics"])  # the unreadable count is left out
    assert row.id == real.id and row.attempt_label == "2/3"
    for page in (rq_dashboard_workers(dashboard), django_rq_workers(root)):
        assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    shown = dashboard.get(f"/0/data/job/{real.id}.json", headers=AUTH).get_json()["retry"]
    assert shown["last_error"] == "ValueError: &lt;img src=x onerror=alert(1)&gt;"  # job.html inserts it raw
    assert dashboard.get(f"/0/data/job/{job.id}.json", headers=AUTH).get_json()["retry"] is None


@pytest.mark.parametrize("kind", sorted(WORKER_KINDS))
def test_rqsuspend_stops_every_worker_kind_within_a_second(
    kind: str, tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis, dashboard, root
):
    env = env_for(tmp_path, redis_db_index)
    log_dir = tmp_path / "logs"
    with running(env, WORKER_KINDS[kind], log_dir=log_dir):
        warm = [enqueue_raw(redis_conn, "tests.fixtures.say_hello") for _ in range(4)]  # every member is in its loop
        assert wait_until(lambda: all(status(redis_conn, j.id) == JobStatus.FINISHED for j in warm)), logs(log_dir)
        expected = 2 if kind == "rqpool members" else 1
        assert wait_until(lambda: len(work_in_sight.workers(redis_conn).workers) == expected), logs(log_dir)
        time.sleep(0.5)  # idle, blocked in their dequeue

        call_command("rqsuspend", stdout=StringIO())
        suspended_at = time.monotonic()
        held = enqueue_raw(redis_conn, "tests.fixtures.say_hello")
        for page in (rq_dashboard_workers(dashboard), django_rq_workers(root)):
            assert "data-role=\"suspended\"" in page
            assert page.count('data-state="suspended"') == expected, page
        assert time.monotonic() - suspended_at < 1.0
        time.sleep(3)
        assert status(redis_conn, held.id) == JobStatus.QUEUED, logs(log_dir)
        assert redis_conn.lrange("rq:queue:metrics", 0, -1) == [held.id.encode()]  # back at the front, once

        call_command("rqresume", stdout=StringIO())
        assert wait_until(lambda: status(redis_conn, held.id) == JobStatus.FINISHED, timeout=10), logs(log_dir)
        assert 'data-role="suspended"' not in rq_dashboard_workers(dashboard)


def test_pool_members_are_grouped_with_processed_counts(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis, dashboard, root):
    env = env_for(tmp_path, redis_db_index)
    log_dir = tmp_path / "logs"
    with running(env, WORKER_KINDS["rqpool members"], ["manage.py", "rqworker", "metrics"], log_dir=log_dir) as [pool, _]:
        assert wait_until(lambda: len(work_in_sight.workers(redis_conn).workers) == 3), logs(log_dir)
        jobs = [enqueue_raw(redis_conn, "tests.fixtures.say_hello") for _ in range(9)]
        assert wait_until(lambda: all(status(redis_conn, j.id) == JobStatus.FINISHED for j in jobs)), logs(log_dir)
        assert wait_until(lambda: sum(w.successful for w in work_in_sight.workers(redis_conn).workers) == 9, timeout=5)
        sight = work_in_sight.workers(redis_conn)
        [pool_row, own] = sight.pool_rows()
        assert pool_row["pool"].endswith(f":{pool.pid}") and len(pool_row["members"]) == 2
        assert own["pool"] == "" and len(own["members"]) == 1
        pool_done = pool_row["successful"]
        for page in (rq_dashboard_workers(dashboard), django_rq_workers(root)):
            assert f"{pool_row['pool']}<br><small>2 members, {pool_done} / 0 processed</small>" in page
            assert "(own process)" in page
