"""One SIGTERM stops every kind of worker process within 10 s, also while Redis or the database is away.

Issue #33: `rqpool` asked to stop while Redis was unreachable ran on until a second SIGTERM; under
compose that is the whole grace period, then a SIGKILL. Each test starts the real process
(`manage.py ...`), lets it settle idle, makes Redis (killed: connections refused; paused: they
hang) or the database unreachable, sends one SIGTERM to that process alone, as `docker stop`
does, and measures how long it takes to exit (app/queueing/worker/stop_deadline.py,
worker/outage_resume.py, management/commands/rqscheduler.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from app.queueing import keys, rq_compat
from tests.e2e import databases
from tests.faults.servers import RedisServer, TcpProxy
from tests.faults.stack import Stack

pytestmark = pytest.mark.e2e

STOP_BOUND = 10.0  # seconds from the SIGTERM to the process's exit (issue #33)
OBSERVED_FOR = 20.0  # how long a stop is waited for before the test gives up and kills it

COMMANDS = {
    "forking rqworker": ["rqworker", "metrics", "--with-scheduler"],  # as compose runs the images worker
    "in-process rqworker": ["rqworker", "metrics", "--worker-class", "app.queueing.workers.InProcessWorker"],
    "rqpool": ["rqpool", "metrics", "--workers", "2"],
    "rqscheduler": ["rqscheduler", "--interval", "2"],
}
IDLE_MEMBERS = {"forking rqworker": 1, "in-process rqworker": 1, "rqpool": 2, "rqscheduler": 0}


@pytest.fixture
def stack(tmp_path: Path, private_redis: RedisServer) -> Iterator[Stack]:
    stack = Stack(tmp_path, private_redis, smtp_port=1)
    try:
        yield stack
    finally:
        if private_redis.process is not None and private_redis.process.poll() is None:
            private_redis.resume()  # a paused server must answer the stack's teardown
        for process in stack.others:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        stack.stop()


def start(stack: Stack, kind: str) -> subprocess.Popen[bytes]:
    process = stack.start_command(COMMANDS[kind], kind.replace(" ", "-"))
    client = stack.redis
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, stack.log_text()
        if kind == "rqscheduler":
            if client.exists(keys.SCHEDULER_ALIVE):
                return process
        else:
            idle = [k for k in client.keys(rq_compat.worker_key("*")) if client.hget(k, "state") == b"idle"]
            if len(idle) >= IDLE_MEMBERS[kind]:
                return process
        time.sleep(0.2)
    raise AssertionError(f"{kind} never went idle\n{stack.log_text()}")


def stop_once(process: subprocess.Popen[bytes]) -> tuple[float, int | None]:
    """One SIGTERM to the process alone (not its group): the seconds it took to exit, and its code."""
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    try:
        code: int | None = process.wait(timeout=OBSERVED_FOR)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - sent
    print(f"stopped in {took:.1f} s, exit code {code}")
    return took, code


def group_gone(process: subprocess.Popen[bytes], within: float = 5.0) -> bool:
    """Its children (pool members, work-horse, scheduler child) are gone with it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("outage", ["redis killed", "redis paused"])
@pytest.mark.parametrize("kind", list(COMMANDS))
def test_one_sigterm_stops_it_within_10_s_while_redis_is_unreachable(stack: Stack, private_redis: RedisServer, kind: str, outage: str):
    process = start(stack, kind)
    if outage == "redis killed":
        private_redis.kill()  # connections refused at once
    else:
        private_redis.pause()  # connections hang, as behind a network cut
    time.sleep(4)  # inside its outage handling: RQ's reconnect loop, the wait for Redis, a hung socket
    took, code = stop_once(process)
    assert took <= STOP_BOUND, f"{kind} took {took:.1f} s to stop ({outage})\n{stack.log_text()}"
    assert code == 0, f"{kind} exited {code}\n{stack.log_text()}"
    assert group_gone(process), f"a child of {kind} outlived it"


JOB_SECONDS = 4.0  # the job that runs when the stop comes


@pytest.mark.parametrize("outage", ["redis killed", "redis paused"])
@pytest.mark.parametrize("kind", ["forking rqworker", "in-process rqworker", "rqpool"])
def test_a_sigterm_mid_job_while_redis_is_unreachable_lets_the_job_finish_then_stops_within_10_s(
    stack: Stack, private_redis: RedisServer, tmp_path: Path, kind: str, outage: str
):
    """RQ's warm shutdown writes the stop's date to Redis from inside its signal handler: with
    Redis away that write raised into the job's own code (an in-process worker runs the job on the
    signal's thread) or hung the handler on a silent socket. The job must finish its work, and the
    process leave within STOP_BOUND of the job's end."""
    process = start(stack, kind)
    marker = tmp_path / "marker"
    stack.shell(f"""
from django.db import transaction
from tests import fixtures
with transaction.atomic():
    job = fixtures.sleep_then_mark.delay({JOB_SECONDS}, {str(marker)!r})
print(job.id)""")
    client = stack.redis
    deadline = time.monotonic() + 30
    while not any(client.type(k) == b"hash" and client.hget(k, "state") == b"busy" for k in client.keys(rq_compat.worker_key("*"))):
        assert time.monotonic() < deadline, f"the job never started\n{stack.log_text()}"
        time.sleep(0.05)
    if outage == "redis killed":
        private_redis.kill()
    else:
        private_redis.pause()
    time.sleep(0.5)
    took, code = stop_once(process)
    assert marker.exists() and len(marker.read_text().split()) == 1, f"the job did not finish its work\n{stack.log_text()}"
    assert took <= JOB_SECONDS + STOP_BOUND, f"{kind} took {took:.1f} s to stop mid-job ({outage})\n{stack.log_text()}"
    assert code == 0, f"{kind} exited {code}\n{stack.log_text()}"
    assert group_gone(process), f"a child of {kind} outlived it"


@pytest.mark.parametrize("outage", ["database cut", "database frozen"])
@pytest.mark.parametrize("kind", ["rqpool", "rqscheduler"])
def test_one_sigterm_stops_it_within_10_s_while_the_database_is_unreachable(stack: Stack, kind: str, outage: str):
    """The pool's stop path and the scheduler's passes (the outbox, every 2 s) meet the database."""
    if databases.server_url() is None:
        pytest.skip("the database is cut behind a TCP proxy: PostgreSQL only (CI=true with a DATABASE_URL)")
    parts = urlsplit(stack.database_url)
    proxy = TcpProxy(parts.port or 5432)
    credentials = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
    stack.env = {**stack.env, "DATABASE_URL": urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))}
    try:
        process = start(stack, kind)
        if outage == "database cut":
            proxy.cut()  # connections refused
        else:
            proxy.freeze()  # connections hang
        time.sleep(4)  # a pass or two meet it
        took, code = stop_once(process)
        assert took <= STOP_BOUND, f"{kind} took {took:.1f} s to stop ({outage})\n{stack.log_text()}"
        assert code == 0, f"{kind} exited {code}\n{stack.log_text()}"
        assert group_gone(process), f"a child of {kind} outlived it"
    finally:
        proxy.cut()
