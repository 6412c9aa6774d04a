"""SIGKILL a worker's main process only: its children (RQ's scheduler child, pool members) die with it,
and no job is popped by a connection of the dead worker (a child's inherited copy kept it open)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Queue

from tests.e2e.processes import ROOT, manage, stack_env
from tests.faults.servers import RedisServer
from tests.signing import sign_in_redis

pytestmark = pytest.mark.e2e


def descendants(pid: int) -> set[int]:
    """Every live process under `pid`, from /proc's children lists."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except FileNotFoundError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(what)


def blocked_pops(client) -> int:  # type: ignore[no-untyped-def]
    """Clients Redis holds in a blocking pop (flag b): a live worker's, or a dead one's kept open."""
    return sum(1 for entry in client.client_list() if "b" in entry["flags"])


def idle_workers(client) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for key in client.keys("rq:worker:*") if client.hget(key, "state") == b"idle")


@pytest.mark.parametrize(
    "argv, expected_children",
    [
        (["rqworker", "emails", "--with-scheduler"], 1),  # RQ's scheduler child
        # Two pool members, and no scheduler child since d916540 (rqscheduler fires the pool's retries).
        (["rqpool", "emails", "--workers", "2"], 2),
    ],
    ids=["rqworker", "rqpool"],
)
def test_children_die_with_their_parent_and_pop_nothing(tmp_path: Path, private_redis: RedisServer, argv, expected_children):
    env = stack_env(tmp_path, private_redis.url, 2, LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput")
    client = private_redis.client()
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    children: set[int] = set()
    try:
        wait_until(lambda: len(descendants(process.pid)) >= expected_children, 60, "the worker's children did not start")
        workers = 2 if argv[0] == "rqpool" else 1
        wait_until(lambda: idle_workers(client) >= workers, 60, "the workers did not register")
        time.sleep(1.5)  # each worker now waits in its blocking pop
        children = descendants(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid) for pid in children):
            time.sleep(0.1)
        survivors = [pid for pid in children if alive(pid)]
        assert not survivors, f"children outlived their killed parent: {survivors}"
        # A process whose main thread is a zombie may still have a thread exiting, and Redis sees
        # a socket's close only on its next pass; a copy kept open by a live child never closes.
        # Nobody alive is waiting for a job now, so no blocking pop may stay in Redis.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and blocked_pops(client):
            time.sleep(0.05)
        assert blocked_pops(client) == 0, "a dead worker's blocking pop is still open in Redis"

        # Nobody is left to run a job: it must stay in its queue for the next worker.
        queue = Queue("emails", connection=client)
        job = queue.enqueue("app.jobs.emails.send_email", "x@example.org", "s", "<p>b</p>")
        time.sleep(1.5)
        assert queue.get_job_ids() == [job.id], "the job was popped by a dead worker's connection"
    finally:
        for pid in children | {process.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def test_a_busy_workers_horse_dies_with_it_and_its_job_runs_once(tmp_path: Path, private_redis: RedisServer):
    """SIGKILL a forking worker mid-job: its work-horse goes with it (an orphaned horse would finish
    its run beside the re-run), and the next worker runs the job, whose effect happens once."""
    from rq.job import JobStatus
    from rq.serializers import JSONSerializer

    env = stack_env(tmp_path, private_redis.url, 2, LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput")
    client = private_redis.client()
    marker = tmp_path / "effect"
    job = Queue("metrics", connection=client, serializer=JSONSerializer).enqueue("tests.fixtures.sleep_then_mark", 3, str(marker))
    sign_in_redis(client, job.id)  # the workers run only the layer's jobs (tests/signing.py)
    logs = [open(tmp_path / f"worker-{n}.log", "wb") for n in (1, 2)]
    first = subprocess.Popen([sys.executable, "manage.py", "rqworker", "metrics"], cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    second = None
    horses: set[int] = set()
    try:
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.STARTED, 60, "the job did not start")
        wait_until(lambda: bool(descendants(first.pid)), 10, "no work-horse")
        horses = descendants(first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait()
        wait_until(lambda: not any(alive(pid) for pid in horses), 2, f"the horse outlived its worker: {horses}")
        time.sleep(4)  # past the job's 3 s: an orphaned horse would have written the effect by now
        assert not marker.exists(), "the killed worker's horse finished its run"

        second = subprocess.Popen([sys.executable, "manage.py", "rqworker", "metrics"], cwd=ROOT, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 60, "the job was not re-run")
        assert len(marker.read_text().splitlines()) == 1
    finally:
        for pid in horses | {first.pid} | ({second.pid} if second else set()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in logs:
            log.close()
