"""The worker closes a job's outbox row on the end it sees, at once: no scheduler runs here, so
nothing else (the reconciler reading Redis later) could close it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq.command import send_stop_job_command

from app.queueing import rq_compat
from tests.faults.stack import Stack

pytestmark = pytest.mark.e2e


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def stack(tmp_path: Path, private_redis) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    stack = Stack(tmp_path, private_redis, smtp_port=1)
    try:
        yield stack
    finally:
        stack.stop()


def committed(stack: Stack, call: str) -> str:
    """Record `fixtures.<call>` in a committed transaction and push it, as a web request does."""
    return stack.shell(f"""
from django.db import transaction
from tests import fixtures
with transaction.atomic():
    job = fixtures.{call}
print(job.id)""")


def row(stack: Stack, job_id: str) -> tuple[str, str]:
    [(state, reason)] = stack.query(f"select state, failure_reason from egoejo_backgroundjob where id = '{job_id}'")
    return state, reason


def status(client, job_id: str) -> bytes | None:  # type: ignore[no-untyped-def]
    return client.hget(f"rq:job:{job_id}", "status")


def test_an_operators_stop_closes_the_row_as_cancelled_at_once(stack: Stack, private_redis):
    client = private_redis.client()
    job_id = committed(stack, "sleep_for.delay(60)")
    stack.start_workers(1, queues=("metrics",))
    wait_for(lambda: status(client, job_id) == b"started", 60, stack.log_text())
    send_stop_job_command(client, job_id)
    wait_for(lambda: status(client, job_id) == b"stopped", 15, stack.log_text())
    wait_for(lambda: row(stack, job_id)[0] != "pending", 5, "the stopped job's row is still pending")
    assert row(stack, job_id) == ("cancelled", "stopped by an operator")


def test_a_horse_killed_by_the_kernel_closes_the_row_failed_with_its_reason_at_once(stack: Stack, private_redis):
    """An OOM kill or a segfault raises nothing in the job: only the worker that waited for its
    horse sees the end. Each death is an abandon (requeued at once); a job that kills every horse
    fails after the abandon limit, its row closed by that worker with the death's reason, not a
    week later by the reconciler."""
    client = private_redis.client()
    job_id = committed(stack, "die_like_the_oom_killer.delay()")
    stack.start_workers(1, queues=("metrics",))
    wait_for(lambda: status(client, job_id) == b"failed", 60, stack.log_text())
    wait_for(lambda: row(stack, job_id)[0] != "pending", 5, "the killed job's row is still pending")
    state, reason = row(stack, job_id)
    assert state == "failed"
    assert "AbandonedJobError" in reason and "Work-horse terminated unexpectedly" in reason and "(signal 9)" in reason, reason
    assert client.zscore("rq:failed:metrics", job_id) is not None  # where an operator looks for it
    assert all(process.poll() is None for process in stack.workers)  # the worker goes on


def test_a_success_whose_end_could_not_be_written_is_closed_by_the_reconciler(stack: Stack, private_redis):
    """The job is done in Redis but its row could not be closed (the database out of reach at
    that instant). Left pending, the row would make the reconciler send the job again once RQ's
    hash expired; it reads the end from Redis and closes the row as finished instead."""
    client = private_redis.client()
    job_id = committed(stack, "succeed_then_lose_the_database.delay()")
    stack.start_workers(1, queues=("metrics",))
    wait_for(lambda: status(client, job_id) == b"finished", 60, stack.log_text())
    time.sleep(1)
    assert row(stack, job_id)[0] == "pending"
    assert "could not record the end (finished)" in (stack.logs / "worker-0.log").read_text()
    stack.start_scheduler()
    wait_for(lambda: row(stack, job_id)[0] == "finished", 60, f"the row was not closed from Redis\n{stack.log_text()}")
    assert client.llen("rq:queue:metrics") == 0  # closed, not sent again


def test_a_pool_killed_after_its_jobs_failure_and_before_the_retry_is_recorded_runs_it_again_soon(stack: Stack, private_redis, tmp_path: Path):
    """A member killed with its pool while RQ runs the failed job's exception handlers (after the
    run, before the retry is recorded), its Redis restarted a moment before: the job still says
    `started` on a dead worker, and runs again within seconds. (A retry cut off one step later,
    between RQ's two writes: tests/faults/test_death_on_this_host.py.)"""
    client = private_redis.client()
    marker = tmp_path / "describing"
    pool = stack.start_pool()
    wait_for(lambda: any(client.hget(k, "state") == b"idle" for k in client.keys(rq_compat.worker_key("*"))), 60, stack.log_text())
    private_redis.kill()  # the member waits it out in RQ's own reconnect loop, under its name
    time.sleep(2)
    private_redis.start()
    time.sleep(3)
    job_id = committed(stack, f"fail_slowly_to_describe.delay({str(marker)!r})")
    wait_for(lambda: marker.exists(), 60, stack.log_text())
    os.kill(pool.pid, signal.SIGKILL)  # its member dies with it, inside the exception handlers
    pool.wait()
    first_start = client.hget(rq_compat.job_key(job_id), "started_at")
    assert status(client, job_id) == b"started" and client.zcard(rq_compat.scheduled_key("metrics")) == 0  # no retry recorded
    stack.start_scheduler()
    stack.start_pool("pool-2")
    wait_for(lambda: client.hget(rq_compat.job_key(job_id), "started_at") != first_start, 15, f"not run again\n{stack.log_text()}")
