"""Redis killed and restarted, flushed, or away for 10 s at the end of a job: nothing lost, nothing twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.queueing import keys
from tests.e2e.databases import seconds_since
from tests.faults.stack import Stack
from tests.settle import outbox_pending, settle
from tests.smtp import SmtpSink

pytestmark = pytest.mark.e2e


def enqueue_mails(stack: Stack, count: int, offset: int = 0) -> None:
    code = f"""
from django.db import transaction
from app.jobs import emails
from tests.enqueue import enqueue
with transaction.atomic():
    for i in range({offset}, {offset + count}):
        enqueue(emails.send_email, f"r{{i}}@example.org", f"Mail {{i}}", "<p>hello</p>")
print("ok")
"""
    assert stack.shell(code) == "ok"


def wait_all_finished(stack: Stack, total: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = stack.query("select count(*) from egoejo_backgroundjob where state = 'finished'")[0][0]
        if done == total:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"only {done} of {total} jobs finished\n{describe_pending(stack)}\n{stack.log_text()}")


def describe_pending(stack: Stack) -> str:
    """Where each unfinished job is in Redis: the first thing to know when one is stranded."""
    import redis

    client = redis.Redis.from_url(stack.env["REDIS_URL"] + "/2")
    lines = []
    for (job_id,) in stack.query("select id from egoejo_backgroundjob where state != 'finished'"):
        places = [
            key.decode() for key in client.keys("rq:*")
            if (client.type(key) == b"list" and job_id.encode() in client.lrange(key, 0, -1))
            or (client.type(key) == b"zset" and any(m.startswith(job_id.encode()) for m in client.zrange(key, 0, -1)))
        ]
        lines.append(f"{job_id}: {client.hmget(f'rq:job:{job_id}', 'status', 'worker_name', 'retries_left')} in {places}")
    return "\n".join(lines)


def assert_each_mail_once(sink: SmtpSink, count: int, stack: Stack) -> None:
    """Counted once nothing can add a mail: tests/settle.py's end condition, then the sink."""
    settle(stack.redis, outbox_pending(stack.database_url), describe=lambda: describe_pending(stack) + stack.log_text())
    recipients = sink.recipients()
    assert sorted(set(recipients)) == sorted(f"r{i}@example.org" for i in range(count))
    if len(recipients) != count:
        with sink.lock:
            twice = [(m["To"], m["Message-ID"]) for _, m in sink.messages if recipients.count(m["To"]) > 1]
        raise AssertionError(f"delivered twice: {twice}\n{stack.log_text()}")


@pytest.fixture
def sink():  # type: ignore[no-untyped-def]
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def busy_stack(tmp_path: Path, private_redis, sink):  # type: ignore[no-untyped-def]
    """200 mails queued, two workers and the scheduler running, the first 20 delivered."""
    sink.rcpt_delay = 0.02
    stack = Stack(tmp_path, private_redis, sink.port)
    try:
        enqueue_mails(stack, 200)
        stack.start_scheduler()
        stack.start_workers(2)
        sink.wait_for(20, timeout=30)
        yield stack
    finally:
        stack.stop()


def test_redis_killed_and_restarted_with_aof_mid_run(busy_stack: Stack, private_redis, sink):
    private_redis.kill()
    time.sleep(3)
    private_redis.start()  # same port, same AOF
    recovered = wait_all_finished(busy_stack, 200, timeout=90)
    assert_each_mail_once(sink, 200, busy_stack)
    assert all(p.poll() is None for p in busy_stack.workers), "a worker exited on the outage"
    print(f"Redis killed and restarted: all done {recovered:.1f} s after the restart")


def test_redis_flushed_mid_run(busy_stack: Stack, private_redis, sink):
    private_redis.client().flushdb()  # every queued job, every registry: gone
    recovered = wait_all_finished(busy_stack, 200, timeout=90)
    assert_each_mail_once(sink, 200, busy_stack)
    print(f"FLUSHDB: all done {recovered:.1f} s after the flush (outbox re-sent the lost jobs)")


def test_a_job_running_when_redis_is_flushed_runs_once(tmp_path: Path, private_redis, sink):
    """The flush takes the running job's hash and its registry entry; its outbox row is pending
    and older than the reconciler's minimum age. The reconciler must not send a second copy to
    the idle worker while the first still runs."""
    stack = Stack(tmp_path, private_redis, sink.port)
    marker = tmp_path / "effect"
    try:
        stack.start_workers(2, queues=("metrics",))
        stack.start_scheduler()
        job_id = stack.shell(f"""
from django.db import transaction
from tests import fixtures
with transaction.atomic():
    job = fixtures.sleep_then_mark.delay(16, {str(marker)!r})
print(job.id)""")
        client = private_redis.client()
        deadline = time.monotonic() + 30
        while client.hget(f"rq:job:{job_id}", "status") != b"started" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.hget(f"rq:job:{job_id}", "status") == b"started", stack.log_text()
        # Past the reconciler's minimum age (10 s from the row's INSERT): a lost job is re-sent now.
        while stack.query(f"select {seconds_since(stack.database_url, 'created_at')} from egoejo_backgroundjob where id = '{job_id}'")[0][0] < 11:
            time.sleep(0.2)
        client.flushdb()
        wait_all_finished(stack, 1, timeout=40)
        claim = keys.running(job_id)
        deadline = time.monotonic() + 3
        while client.exists(claim) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not client.exists(claim)  # dropped at the job's end, not left for its 12 s TTL
        # A copy sent after the flush would be queued, running or claimed, or would have finished
        # (16 s of work) within the settled window (tests/settle.py).
        settle(client, outbox_pending(stack.database_url), timeout=120, describe=stack.log_text)
        runs = marker.read_text().split()
        assert len(runs) == 1, (runs, stack.log_text())
        assert stack.query("select count(*) from egoejo_backgroundjob where state = 'pending'")[0][0] == 0
    finally:
        stack.stop()


def test_redis_away_for_10_s_at_the_end_of_a_job(tmp_path: Path, private_redis, sink):
    sink.rcpt_delay = 1.0
    stack = Stack(tmp_path, private_redis, sink.port)
    try:
        enqueue_mails(stack, 1)
        stack.start_workers(1, queues=("emails",))
        stack.start_scheduler()
        assert sink.rcpt_started.wait(30), stack.log_text()
        private_redis.kill()  # the job ends (mail accepted) while Redis is away
        sink.wait_for(1, timeout=10)
        time.sleep(10)
        private_redis.start()
        wait_all_finished(stack, 1, timeout=90)
        enqueue_mails(stack, 1, offset=1)  # and the same worker takes new work afterwards
        wait_all_finished(stack, 2, timeout=60)
        assert_each_mail_once(sink, 2, stack)
        assert stack.workers[0].poll() is None, "the worker exited"
    finally:
        stack.stop()


def test_two_restarts_in_a_row_leave_one_server_that_stop_stops(private_redis):
    """The chaos campaign can inject two Redis restarts a second apart: the second kill finds
    nothing to kill, then both restarts come. The second used to start another redis-server,
    which failed to bind and took the handle of the first, left running past its test."""
    private_redis.kill()
    private_redis.kill()
    private_redis.start()
    first = private_redis.process
    private_redis.start()
    assert private_redis.process is first and private_redis.client().ping()
    private_redis.stop()
    assert first is not None and first.poll() is not None
