"""A worker whose work loop stops moving while its liveness thread beats leaves and is replaced.

Its liveness thread alone would keep it registered and alive, so nothing would judge it dead
while its queue waits. The thread also watches the work loop's heartbeats (worker/stall_watch.py): past the stall limit it writes
the stacks of every thread and ends the process; what it was running is recovered as abandoned.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from app.queueing.liveness import EX_SOFTWARE
from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env
from tests.signing import enqueue_signed

pytestmark = pytest.mark.e2e

# Past the idle loop's 10 s BLPOP (a healthy idle worker never trips it), and 7 s past the worker
# key's 12 s TTL, where the first test looks: room for a loaded 2-core machine.
STALL_LIMIT = 20


def whole_logs(log_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log")))


def wait_for_text(log_dir: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in whole_logs(log_dir):
            return whole_logs(log_dir)
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged within {timeout} s\n{logs(log_dir)}")


def test_a_worker_stuck_outside_any_job_leaves_with_its_stacks(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index, QUEUEING_WORK_LOOP_STALL_SECONDS=str(STALL_LIMIT))
    manage(env, "migrate", "--noinput")
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqworker", "metrics", "--worker-class", "tests.fixtures.WorkLoopStalls"], log_dir=log_dir) as [worker]:
        deadline = time.monotonic() + 30
        while not redis_conn.smembers("rq:workers") and time.monotonic() < deadline:
            time.sleep(0.1)
        registered_at = time.monotonic()
        assert redis_conn.smembers("rq:workers"), logs(log_dir)
        time.sleep(13)  # past its worker key's TTL (12 s): only the liveness thread keeps it
        assert redis_conn.smembers("rq:workers") and worker.poll() is None, logs(log_dir)
        # ... but its loop is stuck: it leaves once the limit has passed.
        assert worker.wait(timeout=30) == EX_SOFTWARE, logs(log_dir)
        left_after = time.monotonic() - registered_at
    text = whole_logs(log_dir)
    assert "its work loop has not moved" in text
    assert "in dequeue_job_and_maintain_ttl" in text  # where the main thread was stuck
    assert STALL_LIMIT - 1 < left_after < STALL_LIMIT + 10, left_after


def test_an_in_process_job_stuck_past_its_timeout_is_recovered(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    """A job that swallows RQ's timeout (an `except Exception` around its work) runs on past it:
    the in-process worker running it on its main thread leaves after the job's timeout plus the
    stall limit; the pool starts a fresh member and the sweep hands the job back."""
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index, QUEUEING_WORK_LOOP_STALL_SECONDS=str(STALL_LIMIT))
    manage(env, "migrate", "--noinput")
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = enqueue_signed(queue, "tests.fixtures.swallow_timeout", 3600, job_timeout=1)
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqpool", "metrics", "--workers", "1"], log_dir=log_dir) as [pool]:
        text = wait_for_text(log_dir, "its work loop has not moved", timeout=60)
        assert "in swallow_timeout" in wait_for_text(log_dir, "in swallow_timeout", timeout=10)
        assert f"(limit {STALL_LIMIT + 1} s)" in text
        deadline = time.monotonic() + 20
        while Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).meta.get("abandoned") != 1:
            assert time.monotonic() < deadline, logs(log_dir)
            time.sleep(0.2)
        assert pool.poll() is None, logs(log_dir)  # the pool stays, with a fresh member


def test_a_worker_frozen_past_the_stall_limit_is_not_taken_for_stalled(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    """SIGSTOP freezes the liveness thread too: the work loop's silence meanwhile is the whole
    process's, and the worker goes on after SIGCONT (the lease, not the stall limit, covers it)."""
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index, QUEUEING_WORK_LOOP_STALL_SECONDS=str(STALL_LIMIT))
    manage(env, "migrate", "--noinput")
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqworker", "metrics"], log_dir=log_dir) as [worker]:
        deadline = time.monotonic() + 30
        while not redis_conn.smembers("rq:workers") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert redis_conn.smembers("rq:workers"), logs(log_dir)
        os.kill(worker.pid, signal.SIGSTOP)
        time.sleep(STALL_LIMIT + 5)
        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(2 * 3 + 2)  # two liveness ticks
        assert worker.poll() is None, logs(log_dir)
        job = enqueue_signed(Queue("metrics", connection=redis_conn, serializer=JSONSerializer), "tests.fixtures.say_hello", "thawed")
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != "finished" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job.get_status() == "finished", logs(log_dir)
    assert "its work loop has not moved" not in whole_logs(log_dir)
