"""Redis, attacked: a client that reaches it without credentials, or with the app's but wanting
more than the app needs (rewriting the server's config to write files, wiping every DB)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from rq import Queue, SimpleWorker

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "redis" / "entrypoint.sh"
APP_USER = "egoejo"


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """The compose Redis's own start-up script, run with a real redis-server on a free port."""
    if not shutil.which("redis-server"):
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port, password = free_port(), uuid.uuid4().hex
    env = {**os.environ, "REDIS_USERNAME": APP_USER, "REDIS_PASSWORD": password, "REDIS_ACL_FILE": str(tmp_path / "users.acl")}
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=port, username=APP_USER, password=password, socket_connect_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield port, password
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_anonymous_client_is_refused(acl_redis):
    port, _ = acl_redis
    anonymous = redis.Redis(port=port)
    with pytest.raises(redis.AuthenticationError):  # NOAUTH
        anonymous.ping()
    with pytest.raises(redis.AuthenticationError):
        anonymous.lpush("rq:queue:emails", "forged-job")
    with pytest.raises(redis.AuthenticationError):  # the old default user is off, with any password
        redis.Redis(port=port, password="anything").ping()


def test_the_app_user_runs_queues_but_not_the_server(acl_redis):
    port, password = acl_redis
    connection = redis.Redis.from_url(f"redis://{APP_USER}:{password}@127.0.0.1:{port}/2")
    # What the app does: a queue, a worker registering itself (CLIENT SETNAME/INFO), a job run.
    queue = Queue("emails", connection=connection)
    job = queue.enqueue("builtins.len", "four")
    SimpleWorker([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.return_value() == 4
    # What an intruder holding the app's password would want next.
    for command in (("CONFIG", "SET", "dir", "/tmp"), ("FLUSHALL",), ("SHUTDOWN", "NOSAVE"), ("ACL", "SETUSER", "x", "on")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            connection.execute_command(*command)


def test_compose_redis_requires_credentials_and_the_app_url_carries_them():
    service = compose()["services"]["redis"]
    assert "redis-entrypoint.sh" in " ".join(service["entrypoint"])
    assert any(str(volume).startswith("./deploy/redis/entrypoint.sh:") for volume in service["volumes"])
    assert "ports" not in service
    assert "healthcheck" in " ".join(service["healthcheck"]["test"])  # the check authenticates too
    env = {}
    for line in (ROOT / "deploy" / "compose.env.example").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    url = urlsplit(env["REDIS_URL"])
    assert url.username == env["REDIS_USERNAME"] and url.password == env["REDIS_PASSWORD"]
