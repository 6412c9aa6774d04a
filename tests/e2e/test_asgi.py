"""The web under real ASGI servers (Daphne, uvicorn, gunicorn with uvicorn workers), gunicorn's
sync WSGI workers beside them as the reference: the jobs a request enqueues reach Redis after
its response has gone, all in one round trip, never twice, and never lost when the process dies
between the response and the push.

Redis is a private redis-server the test freezes (SIGSTOP): a response that arrives while Redis
cannot answer was sent before any push; the push, blocked in the server until Redis is thawed,
then lands. A push made before the response would hold the response until the client gave up.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.processes import PYTHON, ROOT, manage, stack_env
from tests.faults.servers import RedisServer
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

# The command lines of docs/deploy.md (Procfile, railway/), on a test port.
SERVERS: dict[str, list[str]] = {
    "gunicorn-sync": ["-m", "gunicorn", "app.wsgi", "--bind", "127.0.0.1:{port}", "--workers", "1"],
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "app.asgi:application"],
    "uvicorn": ["-m", "uvicorn", "app.asgi:application", "--host", "127.0.0.1", "--port", "{port}", "--lifespan", "off"],
    "gunicorn-uvicorn": ["-m", "gunicorn", "app.asgi:application", "-k", "uvicorn_worker.UvicornWorker", "--bind", "127.0.0.1:{port}",
                         "--workers", "1"],
}
# Each way a view can answer (tests/e2e/asgi_site/urls.py): each enqueues two jobs on `metrics`
# and one on `emails`.
VIEWS = ["/t/sync/", "/t/async/", "/t/stream/", "/t/astream/"]
QUEUES_DB = 2


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite database per module; each test works on a copy."""
    directory = tmp_path_factory.mktemp("asgi-db")
    database = directory / "template.sqlite3"
    env = stack_env(directory, "redis://127.0.0.1:1", QUEUES_DB, DATABASE_URL=f"sqlite:///{database}")
    manage(env, "migrate", "--noinput")
    return database


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def site_env(tmp_path: Path, migrated: Path, redis_server: RedisServer) -> dict[str, str]:
    database = tmp_path / "site.sqlite3"
    shutil.copy(migrated, database)
    return stack_env(
        tmp_path, redis_server.url, QUEUES_DB, DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SETTINGS_MODULE="tests.e2e.asgi_site.settings",
    )


@contextmanager
def serving(name: str, env: dict[str, str], log: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The server in its own process group (so a test can kill it whole), up and answering /livez."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in SERVERS[name]]
    with open(log, "wb") as out:
        process = subprocess.Popen([PYTHON, *argv], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/livez", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not come up:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield port, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def request(port: int, method: str, path: str, timeout: float = 10) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None, headers={"Host": "127.0.0.1"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def queued(redis_server: RedisServer) -> dict[str, list[str]]:
    client = redis_server.client(QUEUES_DB)
    return {name: [j.decode() for j in client.lrange(f"rq:queue:{name}", 0, -1)] for name in ("metrics", "emails")}


def wait_for_queues(redis_server: RedisServer, expected: dict[str, list[str]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while queued(redis_server) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert queued(redis_server) == expected


def reconcile(env: dict[str, str]) -> dict[str, int]:
    """One pass of the scheduler's outbox reconciler, without its age thresholds."""
    code = (
        "import json; from datetime import timedelta; from app.queueing.connections import redis_connection; "
        "from app.queueing.outbox import reconcile; "
        "print(json.dumps(reconcile(redis_connection(), min_age=timedelta(0), missing_after=0)))"
    )
    return json.loads(manage(env, "shell", "-v", "0", "-c", code).stdout.strip().splitlines()[-1])


def pending_rows(env: dict[str, str]) -> list[str]:
    code = (
        "from app.queueing.models import BackgroundJob; "
        "print(' '.join(sorted(BackgroundJob.objects.filter(state='pending').values_list('id', flat=True))))"
    )
    return manage(env, "shell", "-v", "0", "-c", code).stdout.split()


@pytest.mark.parametrize("server", list(SERVERS))
def test_a_requests_jobs_reach_redis_after_its_response_in_one_round_trip_once(
    server: str, tmp_path: Path, migrated: Path, redis_server: RedisServer
) -> None:
    env = site_env(tmp_path, migrated, redis_server)
    expected: dict[str, list[str]] = {"metrics": [], "emails": []}
    with serving(server, env, tmp_path / "server.log") as (port, _):
        # Warm-up: the first push loads the push script into this Redis (NOSCRIPT, then again).
        status, body = request(port, "POST", "/t/sync/")
        assert status == 200
        expected = {"metrics": body["jobs"][:2], "emails": body["jobs"][2:]}
        wait_for_queues(redis_server, expected)
        request(port, "GET", "/t/pipelines/")

        for path in VIEWS:
            redis_server.pause()
            try:
                # The whole response, body and end, while Redis cannot answer: nothing of it waited for a push.
                status, body = request(port, "POST", path)
            finally:
                redis_server.resume()
            assert status == 200, (server, path, body)
            jobs = body["jobs"]
            expected = {"metrics": expected["metrics"] + jobs[:2], "emails": expected["emails"] + jobs[2:]}
            wait_for_queues(redis_server, expected)  # the blocked push went through once Redis was back
            # One round trip for the three jobs: one pipeline carrying one script call per queue.
            assert request(port, "GET", "/t/pipelines/")[1] == {"pipelines": [2]}, (server, path)

        # The reconciler finds nothing to send again: every row's job is in Redis, once.
        assert reconcile(env)["resent"] == 0
    assert queued(redis_server) == expected


@pytest.mark.parametrize("server", list(SERVERS))
def test_a_server_killed_between_response_and_push_loses_nothing(
    server: str, tmp_path: Path, migrated: Path, redis_server: RedisServer
) -> None:
    """The process dies after its response and before its push reached Redis (a deploy's SIGKILL,
    the OOM killer): the rows are pending, and the reconciler sends each job once."""
    env = site_env(tmp_path, migrated, redis_server)
    with serving(server, env, tmp_path / "server.log") as (port, process):
        # A fresh process has no Redis connection yet (/livez does not use Redis): its push blocks
        # while connecting (the connection's first command waits for Redis), before a byte of it is sent.
        redis_server.pause()
        try:
            status, body = request(port, "POST", "/t/sync/")
            assert status == 200
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            redis_server.resume()
    jobs = body["jobs"]
    assert queued(redis_server) == {"metrics": [], "emails": []}  # the push never happened
    assert pending_rows(env) == sorted(jobs)
    assert reconcile(env)["resent"] == 3
    sent = {"metrics": sorted(jobs[:2]), "emails": jobs[2:]}
    assert {name: sorted(ids) for name, ids in queued(redis_server).items()} == sent
    assert reconcile(env)["resent"] == 0  # and never twice
    assert {name: sorted(ids) for name, ids in queued(redis_server).items()} == sent
