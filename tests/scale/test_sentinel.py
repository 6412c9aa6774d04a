"""Redis Sentinel on loopback: the master dies mid-run, the replica is promoted, no job is lost,
and the Django cache and the dashboards' coalescing markers keep working."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.e2e.processes import ROOT, manage, stack_env
from tests.faults.servers import RedisServer
from tests.faults.stack import Stack
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e
MASTER = "egoejo"


def require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed: Sentinel runs as `redis-server --sentinel`"
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


def replicated_master(tmp_path: Path) -> tuple[RedisServer, RedisServer, Sentinel]:
    """A master with AOF, its replica, and a sentinel watching them (both failover tests)."""
    require_redis_server()
    master = RedisServer(tmp_path / "master", appendonly=True)
    master.start()
    replica = RedisServer(tmp_path / "replica", appendonly=True)
    replica.start()
    replica.client().replicaof("127.0.0.1", master.port)
    return master, replica, Sentinel(tmp_path / "sentinel", master.port)


def test_failover_loses_no_job(tmp_path: Path):
    master, replica, sentinel = replicated_master(tmp_path)
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
from tests.enqueue import enqueue
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


FOLLOWER = r"""
import sys, time
from django.core.cache import cache
from django.contrib.auth import get_user_model
from app.queueing.connections import redis_connection
from app.services import impact, impact_refresh, redis_keys

user = get_user_model().objects.create_user("ana", "ana@example.org", "pw-long-enough-1")
cache.set("before", "kept", 600)
first, again = impact_refresh.request_refresh(user.pk), impact_refresh.request_refresh(user.pk)
cache._cache.get_client(write=True).wait(1, 5000)  # the replica has it all before the master dies
redis_connection().wait(1, 5000)
print("ready", first == again, flush=True)
sys.stdin.readline()  # meanwhile the test kills the master and the replica is promoted
deadline = time.monotonic() + 30
while True:
    try:
        cache.set("after", "written", 600)
        break
    except Exception as exc:  # the pool's first try may meet the dead master's socket
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
before, after = cache.get("before"), cache.get("after")
impact.start_refresh(user.pk, first)  # as the refresh job does when it starts
third, fourth = impact_refresh.request_refresh(user.pk), impact_refresh.request_refresh(user.pk)
marker = redis_connection().get(redis_keys.impact_pending(user.pk))
print("after", before, after, third != first, third == fourth, marker is not None and marker.decode() == third, flush=True)
"""


def test_the_cache_and_the_coalescing_markers_follow_a_failover(tmp_path: Path):
    master, replica, sentinel = replicated_master(tmp_path)
    env = stack_env(tmp_path, master.url, 2, REDIS_SENTINELS=f"127.0.0.1:{sentinel.port}", REDIS_SENTINEL_MASTER=MASTER)
    process = None
    try:
        deadline = time.monotonic() + 10
        while replica.client().info("replication").get("master_link_status") != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
        manage(env, "migrate", "--noinput")
        # One long-lived process, as web is: its pools must follow the failover, not just new processes.
        process = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", FOLLOWER], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().split() == ["ready", "True"], process.stderr.read() if process.poll() is not None else ""
        assert master.client(1).keys("egoejo:*before"), "the cache is not on the master's cache DB"
        master.kill()
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 30 and sentinel.master_port() != replica.port:
            time.sleep(0.2)
        assert sentinel.master_port() == replica.port, "the sentinel did not promote the replica"
        process.stdin.write("go\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=60)
        # The cache kept what it had (it was on the master that is now the replica) and writes
        # again; a refresh requested after the failover is coalesced again (one marker, one job).
        assert out.split() == ["after", "kept", "written", "True", "True", "True"], (out, err[-3000:])
        assert replica.client(1).get("egoejo:1:after") is not None  # the cache's own DB, on the new master
        assert "without coalescing" not in err, err[-3000:]
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        sentinel.stop()
        replica.stop()
        master.stop()
