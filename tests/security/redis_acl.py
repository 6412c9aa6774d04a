"""The compose Redis's start-up script (deploy/redis/entrypoint.sh) run with a real redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "redis" / "entrypoint.sh"
APP_USER = "egoejo"


def script_env(tmp_path: Path, password: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "REDIS_USERNAME": APP_USER, "REDIS_PASSWORD": password,
            "REDIS_ACL_FILE": str(tmp_path / "users.acl"), **extra}


@contextmanager
def acl_redis_server(tmp_path: Path, password: str, **extra: str) -> Iterator[int]:
    """Yield the port of a redis-server started by the compose entrypoint script."""
    if not shutil.which("redis-server"):
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""],
        env=script_env(tmp_path, password, **extra), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                redis.Redis(port=port, username=APP_USER, password=password, socket_connect_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
