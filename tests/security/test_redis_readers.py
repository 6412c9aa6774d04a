"""Nothing read from Redis runs code, in any process that reads jobs.

A pickle that runs `touch <marker>` when unpickled is planted in every field of a job (data,
meta, result, a result stream's return value), for a job in each queue, in each registry, in
rq-scheduler's schedule and as a running worker's current job. Then every page that reads jobs
is opened (rq-dashboard's every GET route, django-rq's every route, the API, /healthz, /metrics),
every command that reads jobs is run, and the workers, the sweeps, the reconciler and both
schedulers make a pass: the marker never appears, every page answers 200, the loops go on.
"""

from __future__ import annotations

import base64
import os
import pickle
import re
import zlib
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import django_rq
import pytest
from django.core.management import call_command
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.queueing import outbox, rq_compat
from app.queueing.dashboard import create_app
from app.queueing.recovery import sweep
from app.queueing.scheduling import ProjectScheduler
from app.queueing.workers import ForkingWorker, InProcessWorker
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

QUEUES = ("emails", "images", "metrics")
REGISTRIES = ("started", "failed", "finished", "scheduled", "deferred", "canceled")
AUTH = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode()}


class RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _poison(connection, job_id: str, marker: Path) -> None:  # type: ignore[no-untyped-def]
    bomb = pickle.dumps(RunsACommand(marker))
    connection.hset(
        rq_compat.job_key(job_id),
        mapping={
            "data": zlib.compress(pickle.dumps(("app.jobs.emails.send_welcome_email", None, [RunsACommand(marker)], {}))),
            "meta": bomb,
            "result": bomb,
            "exc_info": zlib.compress(bomb),
        },
    )
    connection.xadd(
        f"rq:results:{job_id}",
        {"type": "1", "worker_name": "w", "return_value": base64.b64encode(bomb).decode(), "execution_id": "e"},
    )


@pytest.fixture
def planted(redis_conn, tmp_path):  # type: ignore[no-untyped-def]
    """Poisoned jobs everywhere RQ, rq-scheduler and the project look; returns (marker, ids by place)."""
    marker = tmp_path / "code-ran"
    ids: dict[str, str] = {}
    for name in QUEUES:
        queue = Queue(name, connection=redis_conn, serializer=JSONSerializer)  # RQ's own: what an intruder can write
        queued = queue.enqueue_call("app.jobs.emails.send_welcome_email", args=[1])
        ids[f"{name}:queued"] = queued.id
        for registry_name in REGISTRIES:
            job = queue.create_job("app.jobs.emails.send_welcome_email", args=[1], status=JobStatus.QUEUED)
            job.save()
            member = f"{job.id}:exec1" if registry_name == "started" else job.id
            key = {"started": "wip"}.get(registry_name, registry_name)
            redis_conn.zadd(f"rq:{key}:{name}", {member: (datetime.now(UTC) + timedelta(seconds=-5 if registry_name == "scheduled" else 600)).timestamp()})
            ids[f"{name}:{registry_name}"] = job.id
    # rq-scheduler's schedule, with a class name in its meta beside the pickle.
    scheduled = Queue("emails", connection=redis_conn, serializer=JSONSerializer).create_job("app.jobs.emails.send_welcome_email", args=[1])
    scheduled.meta = {"queue_class_name": "os.system", "interval": 1}
    scheduled.save()
    redis_conn.zadd("rq:scheduler:scheduled_jobs", {scheduled.id: 0})
    ids["rq-scheduler"] = scheduled.id
    # A busy worker whose current job is poisoned, registered as RQ registers one.
    busy = InProcessWorker([Queue("emails", connection=redis_conn)], connection=redis_conn, name="busy-worker")
    busy.register_birth()
    with redis_conn.pipeline() as pipe:
        Execution.create(Job.fetch(ids["emails:started"], connection=redis_conn, serializer=JSONSerializer), 600, pipeline=pipe, worker_name=busy.name)
        busy.set_state("busy", pipeline=pipe)
        pipe.execute()
    for job_id in ids.values():
        _poison(redis_conn, job_id, marker)
    return marker, ids


def _dashboard_get_routes(app, job_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    values = {"instance_number": "0", "queue_name": "emails", "registry_name": "started", "per_page": "10", "page": "1", "order": "asc", "job_id": job_id}
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint.endswith("static") or "requeue" in rule.rule:
            continue
        paths.append(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m.group(1), "x"), rule.rule))
    return sorted(set(paths))


def test_no_dashboard_page_runs_code_and_each_shows_the_job(planted, settings):
    marker, ids = planted
    client = create_app(settings.RQ_QUEUES_URL, "operator", "s3cret").test_client()
    paths = _dashboard_get_routes(client.application, ids["emails:queued"])
    for registry_name in ("queued", *REGISTRIES):
        paths.append(f"/0/data/jobs/emails/{registry_name}/10/asc/1.json")
    for job_id in ids.values():
        paths += [f"/0/view/job/{job_id}", f"/0/data/job/{job_id}.json"]
    assert len(paths) > 20
    for path in paths:
        response = client.get(path, headers=AUTH, follow_redirects=True)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
    workers = client.get("/0/data/workers.json", headers=AUTH).get_json()
    busy = next(w for w in workers["workers"] if w["name"] == "busy-worker")
    assert busy["current_job"]["job_id"] == ids["emails:started"]  # the busy worker's job is in sight
    job = client.get(f"/0/data/job/{ids['emails:queued']}.json", headers=AUTH).get_json()
    assert "unreadable" in job["description"] + job["metadata"] + str(job["result"])
    assert not marker.exists()
    assert client.get("/0/data/job/no-such-job.json", headers=AUTH).status_code == 404  # not a 500


def test_no_django_rq_page_runs_code_and_each_answers(planted, client):
    from tests.security.test_django_rq_routes import _sample, queue_routes

    marker, ids = planted
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    emails = [q["name"] for q in django_rq.settings.get_queues_list()].index("emails")
    paths = [_sample(route) for route, pattern in queue_routes() if "<str:job_id>" not in route and "cron" not in route]
    paths += [f"/admin/django-rq/queues/{emails}/{job_id}/" for job_id in ids.values()]
    paths += ["/admin/django-rq/workers/0/", f"/admin/django-rq/workers/{emails}/{'rq:worker:busy-worker'}/"]
    for path in paths:
        response = client.get(path)
        # 302: a form page asked with GET; 404: a sample it does not know; 405: a POST-only action
        assert response.status_code in (200, 302, 404, 405), path
    for job_id in ids.values():
        assert client.get(f"/admin/django-rq/queues/{emails}/{job_id}/").status_code == 200
    assert client.get(f"/admin/django-rq/workers/{emails}/").status_code == 200
    assert client.get(f"/admin/django-rq/workers/{emails}/rq:worker:busy-worker/").status_code == 200
    # "Clear failed jobs", which read every failed job with RQ's default serializer.
    assert client.post(f"/admin/django-rq/queues/{emails}/failed/clear/").status_code in (200, 302)
    assert not marker.exists()


def test_no_command_or_endpoint_runs_code(planted, client, settings):
    marker, ids = planted
    settings.METRICS_TOKEN = "metrics-token-0123456789abcdef"
    for command, args in (("rqstats", []), ("failedjobs", ["--queue", "emails"]), ("failedjobs", [])):
        call_command(command, *args, stdout=StringIO(), stderr=StringIO())
    bearer = {"HTTP_AUTHORIZATION": "Bearer metrics-token-0123456789abcdef"}
    assert client.get("/metrics", **bearer).status_code == 200
    assert client.get("/healthz", **bearer).status_code in (200, 503)
    client.force_login(make_user("member"))
    for job_id in ids.values():
        assert client.get(f"/api/jobs/{job_id}/").status_code == 404  # not theirs; read without running anything
    assert not marker.exists()


@pytest.mark.parametrize("worker_class", [InProcessWorker, ForkingWorker], ids=["in-process", "forking"])
def test_workers_sweeps_and_schedulers_go_on_and_fail_what_they_cannot_read(planted, redis_conn, worker_class):
    from rq.scheduler import RQScheduler

    marker, ids = planted
    redis_conn.delete("rq:worker:busy-worker", "rq:workers", "rq:workers:emails")  # its worker is gone: the sweep takes its job
    sweep(redis_conn, list(QUEUES))
    outbox.reconcile(redis_conn)
    ProjectScheduler(queue_name="emails", connection=redis_conn).enqueue_jobs()
    scheduler = RQScheduler(list(QUEUES), connection=redis_conn)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    queues = [django_rq.get_queue(name) for name in QUEUES]
    worker_class(queues, connection=redis_conn).work(burst=True, with_scheduler=False)
    assert not marker.exists()
    for name in QUEUES:
        queued = Job.fetch(ids[f"{name}:queued"], connection=redis_conn)
        assert queued.get_status() == JobStatus.FAILED
        assert "could not be read as a JSON job" in queued.latest_result().exc_string
    assert ids["rq-scheduler"] not in [job.id for job in ProjectScheduler(queue_name="emails", connection=redis_conn).get_jobs()]
    assert not marker.exists()
