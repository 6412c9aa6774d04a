"""The compose Redis's start-up script (deploy/redis/entrypoint.sh) run with a real redis-server:
one ACL user per role (deploy/redis/roles.acl), each with its own password."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "redis" / "entrypoint.sh"
ROLES_FILE = ROOT / "deploy" / "redis" / "roles.acl"
ROLES = ("web", "worker", "scheduler", "dashboard", "metrics")


def user(role: str) -> str:
    return f"egoejo-{role}"


def new_passwords() -> dict[str, str]:
    return {role: uuid.uuid4().hex for role in ROLES}


def role_rules() -> dict[str, str]:
    """role → its ACL rules, as deploy/redis/roles.acl lists them."""
    rules = {}
    for line in ROLES_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            role, _, rest = line.partition(" ")
            rules[role] = rest
    return rules


def script_env(tmp_path: Path, passwords: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update({f"REDIS_{role.upper()}_PASSWORD": password for role, password in passwords.items()})
    return {**env, "REDIS_ACL_FILE": str(tmp_path / "users.acl"), **extra}


@contextmanager
def acl_redis_server(tmp_path: Path, passwords: dict[str, str], *server_args: str, **extra: str) -> Iterator[int]:
    """Yield the port of a redis-server started by the compose entrypoint script (extra server arguments after it)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "", *server_args],
        env=script_env(tmp_path, passwords, **extra), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                redis.Redis(port=port, username=user("metrics"), password=passwords["metrics"], socket_connect_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        if process.poll() is not None:
            raise AssertionError(f"redis-server exited with {process.returncode}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
