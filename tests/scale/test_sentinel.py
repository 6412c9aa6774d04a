"""Redis Sentinel on loopback: the master dies mid-run, the replica is promoted, no job is lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.faults.servers import RedisServer
from tests.faults.stack import Stack
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e
MASTER = "egoejo"


def require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed: Sentinel runs as `redis-server --sentinel`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class Sentinel:
    def __init__(self, directory: Path, master_port: int) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.process = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("sentinel did not start")

    def master_port(self) -> int:
        return int(self.client.sentinel_get_master_addr_by_name(MASTER)[1])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_failover_loses_no_job(tmp_path: Path):
    require_redis_server()
    master = RedisServer(tmp_path / "master", appendonly=True)
    master.start()
    replica = RedisServer(tmp_path / "replica", appendonly=True)
    replica.start()
    replica.client().replicaof("127.0.0.1", master.port)
    sentinel = Sentinel(tmp_path / "sentinel", master.port)
    sink = SmtpSink()
    sink.rcpt_delay = 0.02
    sink.start()
    stack = Stack(tmp_path, master, sink.port)
    stack.env.update(REDIS_SENTINELS=f"127.0.0.1:{sentinel.port}", REDIS_SENTINEL_MASTER=MASTER)
    try:
        deadline = time.monotonic() + 10
        while replica.client().info("replication").get("master_link_status") != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
        count = 200
        assert stack.shell(f"""
from django.db import transaction
from app.jobs import emails
from app.queueing.enqueueing import enqueue
with transaction.atomic():
    for i in range({count}):
        enqueue(emails.send_email, f"r{{i}}@example.org", "Hi", "<p>x</p>")
print("ok")
""") == "ok"
        stack.start_scheduler()
        stack.start_workers(2)
        sink.wait_for(30, timeout=60)
        master.kill()
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 30 and sentinel.master_port() != replica.port:
            time.sleep(0.2)
        assert sentinel.master_port() == replica.port, "the sentinel did not promote the replica"
        promoted_in = time.monotonic() - killed_at
        while time.monotonic() - killed_at < 120:
            if stack.query("select count(*) from egoejo_backgroundjob where state = 'finished'")[0][0] == count:
                break
            time.sleep(0.5)
        recovered_in = time.monotonic() - killed_at
        done = stack.query("select count(*) from egoejo_backgroundjob where state = 'finished'")[0][0]
        assert done == count, stack.log_text()
        recipients = sink.recipients()
        assert len(set(recipients)) == count and len(recipients) == count
        print(f"master killed: replica promoted in {promoted_in:.1f} s, all {count} jobs done {recovered_in:.1f} s after the kill")
    finally:
        stack.stop()
        sink.stop()
        sentinel.stop()
        replica.stop()
        master.stop()
