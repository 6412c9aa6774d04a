"""The light-queue pool: real processes, jobs in-process, recycled after N jobs, timeouts kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env
from tests.signing import sign_in_redis

pytestmark = pytest.mark.e2e


def wait_until(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_pool_runs_jobs_in_long_lived_processes_and_recycles_them(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    manage(env, "migrate", "--noinput")
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    jobs = [queue.enqueue("tests.fixtures.which_process") for _ in range(30)]
    slow = queue.enqueue("tests.fixtures.sleep_for", 30, job_timeout=2)
    for job in [*jobs, slow]:
        sign_in_redis(redis_conn, job.id)
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqpool", "metrics", "--workers", "2", "--max-jobs", "5"], log_dir=log_dir) as [pool]:
        assert wait_until(lambda: all(Job.fetch(j.id, connection=redis_conn, serializer=JSONSerializer).get_status() == JobStatus.FINISHED for j in jobs)), logs(log_dir)
        pids = {Job.fetch(j.id, connection=redis_conn, serializer=JSONSerializer).return_value() for j in jobs}
        # No fork per job: a process runs several jobs; recycling after 5 jobs brings new ones.
        assert 3 <= len(pids) <= 30 // 5 + 2, pids
        assert wait_until(lambda: slow.get_status(refresh=True) == JobStatus.FAILED, timeout=20), logs(log_dir)
        assert "JobTimeoutException" in slow.latest_result().exc_string
        assert pool.poll() is None  # the pool outlives its members
        # No member runs RQ's scheduler child: a killed member's child kept the pool's queue
        # locks 61 s, and no retry of those queues fired meanwhile (rqscheduler fires them).
        assert not redis_conn.exists("rq:scheduler-lock:metrics"), logs(log_dir)
        assert list(redis_conn.scan_iter("rq:scheduler:*")) == [], logs(log_dir)
