"""Worker logs: RQ's idle housekeeping and its per-job duplicates at DEBUG; one line per job outcome at INFO."""

from __future__ import annotations

import logging

import django_rq
import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from app.queueing.workers import InProcessWorker
from tests.signing import sign_in_redis

HOUSEKEEPING = ("cleaning registries", "cleaning group registries", "result is kept for", "Acquired scheduler lock")


def _work(redis_conn) -> str:  # type: ignore[no-untyped-def]
    queue = Queue("metrics", connection=django_rq.get_connection("metrics"), serializer=JSONSerializer)  # RQ\'s own: set-up written into Redis directly
    job = queue.enqueue_call("app.jobs.metrics.refresh_all_dashboards")
    sign_in_redis(redis_conn, job.id)
    # RQ's own work loop (registries cleaned, its scheduler started), jobs run in this process.
    InProcessWorker([queue], connection=redis_conn).work(burst=True, with_scheduler=True)
    return job.id


@pytest.mark.django_db(transaction=True)
def test_housekeeping_is_debug_and_one_line_per_job_outcome_stays_info(redis_conn, caplog):
    caplog.set_level(logging.INFO)
    for name in ("rq.worker", "rq.scheduler"):
        caplog.set_level(logging.INFO, logger=name)
    job_id = _work(redis_conn)
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [line for line in info if any(marker in line for marker in HOUSEKEEPING)], info
    about_the_job = [line for line in info if job_id in line]
    assert about_the_job == [
        f"job {job_id} started queue=metrics func=app.jobs.metrics.refresh_all_dashboards attempt=1",
        *[line for line in about_the_job if line.startswith(f"job {job_id} succeeded ")],
    ], info
    assert len(about_the_job) == 2, info

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="rq.worker")
    _work(redis_conn)
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "cleaning registries" in r.getMessage()]
    assert debug, "with DEBUG on, the housekeeping lines are still there"
