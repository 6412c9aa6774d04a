"""Redis, attacked: a client that reaches it without credentials, or with the app's but wanting
more than the app needs (rewriting the server's config to write files, wiping every DB)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from rq import Queue, SimpleWorker

from .redis_acl import APP_USER, acl_redis_server

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    password = uuid.uuid4().hex
    with acl_redis_server(tmp_path, password) as port:
        yield port, password


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
