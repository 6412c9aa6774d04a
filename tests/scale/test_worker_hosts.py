"""Two worker hosts (network namespaces) on one Redis and one PostgreSQL; one is cut off mid-job.

Its job is re-run by the other host within 60 s, with one effect (one mail at the SMTP server),
and when the link comes back the cut-off worker commits no second effect.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.e2e.processes import ROOT, manage, stack_env
from tests.faults.servers import RedisServer
from tests.scale.netns import TcpForward, make_hosts, remove_hosts
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e
ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database() -> str:  # type: ignore[misc]
    name = f"egoejo_hosts_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is needed for the worker-hosts test: {exc}")
        pytest.skip(f"PostgreSQL is needed for the worker-hosts test: {exc}")
    yield name
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_host_cut_off_mid_job_loses_nothing_and_duplicates_nothing(tmp_path: Path, database: str):
    hosts = make_hosts(2)
    redis_server = RedisServer(
        tmp_path / "redis", appendonly=True, extra_binds=tuple(h.root_address for h in hosts), password=uuid.uuid4().hex
    )
    sinks = [SmtpSink(host=h.root_address) for h in hosts]
    pg_port = free_port()
    forward = TcpForward([h.root_address for h in hosts], pg_port, ("127.0.0.1", 5432))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        redis_server.start()
        forward.start()
        for sink in sinks:
            sink.start()
        sinks[0].rcpt_delay = 3.0  # host 0's mail is mid-transaction when its link goes down
        local = stack_env(
            tmp_path, redis_server.url, 2,
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}", LOG_LEVEL="INFO",
        )
        manage(local, "migrate", "--noinput")

        def host_env(index: int) -> dict[str, str]:
            root = hosts[index].root_address
            return {
                **local,
                "REDIS_URL": f"redis://:{redis_server.password}@{root}:{redis_server.port}",
                "DATABASE_URL": f"postgres://postgres@{root}:{pg_port}/{database}",
                "EMAIL_URL": f"smtp://{root}:{sinks[index].port}?timeout=10",
            }

        logs = tmp_path / "logs"
        logs.mkdir()

        def start(argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=open(logs / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            processes.append(process)
            return process

        def log_text() -> str:
            return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))

        start([sys.executable, "manage.py", "rqscheduler", "--interval", "2"], local, "scheduler")
        start(hosts[0].command([sys.executable, "manage.py", "rqworker", "emails"]), host_env(0), "host0-worker")
        assert manage(local, "shell", "-c", """
from app.jobs import emails
from app.queueing.enqueueing import enqueue
print(enqueue(emails.send_email, "cut@example.org", "Hi", "<p>x</p>"))
""").stdout.strip()
        assert sinks[0].rcpt_started.wait(60), log_text()
        hosts[0].cut()
        cut_at = time.monotonic()
        start(hosts[1].command([sys.executable, "manage.py", "rqworker", "emails"]), host_env(1), "host1-worker")
        sinks[1].wait_for(1, timeout=60)
        rerun_after = time.monotonic() - cut_at
        assert rerun_after < 60
        hosts[0].restore()
        time.sleep(25)  # the cut-off worker wakes up, finds Redis again, and must not send twice
        delivered = sinks[0].recipients() + sinks[1].recipients()
        assert delivered == ["cut@example.org"], (delivered, log_text())
        with psycopg.connect(ADMIN_URL.rsplit("/", 1)[0] + f"/{database}") as connection:
            assert connection.execute("select count(*) from egoejo_sentmail").fetchone() == (1,)
            assert connection.execute("select state from egoejo_backgroundjob").fetchall() == [("finished",)]
        print(f"host cut off mid-job: re-run on the other host {rerun_after:.1f} s after the cut; 1 mail in all")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for sink in sinks:
            sink.stop()
        forward.stop()
        redis_server.stop()
        remove_hosts(hosts)
