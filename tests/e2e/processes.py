"""Real processes for end-to-end tests: the project's commands, on a temp database and the test Redis DB."""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.databases import stack_database_url

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def stack_env(tmp_path: Path, redis_url: str, redis_db: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_", "DATABASE_", "QUEUEING_")) and k != "RQ_FAST_PATHS"}
    env.update(
        DJANGO_SETTINGS_MODULE="app.settings",
        DJANGO_SECRET_KEY="e2e-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_COOKIES="0",
        DATABASE_URL=stack_database_url(tmp_path),  # the configured database's kind (tests/e2e/databases.py)
        EGOEJO_VAR_DIR=str(tmp_path / "var"),
        REDIS_URL=redis_url,
        RQ_REDIS_DB=str(redis_db),
        THROTTLE_REDIS_URL=f"{redis_url}/{redis_db}",  # counters flushed with the test's DB, not shared between runs
        EMAIL_URL="console://",
        PYTHONUNBUFFERED="1",
        QUEUEING_JOB_MODULES="tests.fixtures",
        PUBLIC_BASE_URL="http://127.0.0.1:8000",  # account mail links (a test that follows one sets its port)
    )
    env.update(extra)
    return env


# Which Redis role each command runs as (deploy/redis/roles.acl, docs/operations.md); what is not
# named here (migrate, the operator's commands) runs with the web's.
_ROLE_OF_COMMAND = {"rqworker": "worker", "rqpool": "worker", "rqscheduler": "scheduler", "rqdashboard": "dashboard"}


def role_of(argv: list[str]) -> str:
    words = [word.rsplit("/", 1)[-1] for word in argv]
    if "app.queueing.dashboard:wsgi_app()" in words:
        return "dashboard"
    return next((_ROLE_OF_COMMAND[word] for word in words if word in _ROLE_OF_COMMAND), "web")


def as_role(env: dict[str, str], argv: list[str]) -> dict[str, str]:
    """`env` with the Redis credentials of the role `argv` runs as, on the test Redis where the
    session made its role users (tests/redis_db.py); unchanged for a private server of a test's."""
    from tests import redis_db

    if not redis_db.ROLE_USERS or not env.get("REDIS_URL", "").startswith(redis_db.redis_url()):
        return env
    username, password = redis_db.ROLE_USERS[role_of(argv)]
    return {**env, "REDIS_USERNAME": username, "REDIS_PASSWORD": password}


def manage(env: dict[str, str], *args: str, timeout: float = 120, as_intruder: bool = False) -> subprocess.CompletedProcess[str]:
    """`manage.py ARGS` as its role; `as_intruder`: as Redis's unrestricted user, for a test that
    writes into Redis what no role of the project may (a worker's result, a forged job)."""
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env if as_intruder else as_role(env, list(args)),
        capture_output=True, text=True, timeout=timeout, check=True,
    )


@contextmanager
def running(env: dict[str, str], *commands: list[str], log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start each command (argv after `python`), yield them, then stop them all (SIGTERM, then SIGKILL)."""
    processes: list[subprocess.Popen[bytes]] = []
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for index, argv in enumerate(commands):
            log = open(log_dir / f"process-{index}.log", "wb")
            processes.append(subprocess.Popen([PYTHON, *argv], cwd=ROOT, env=as_role(env, argv), stdout=log, stderr=subprocess.STDOUT))
        yield processes
    finally:
        stop_all(processes)


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process still running, then SIGKILL to any not gone 15 s later."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def logs(log_dir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(log_dir.glob("*.log")))


class HttpClient:
    """A cookie-keeping JSON client that sends Django's CSRF token like a browser app would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def wait_until_up(self, path: str = "/healthz", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.opener.open(self.base_url + path, timeout=2)
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{self.base_url} did not come up in {timeout} s")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        token = next((c.value for c in self.cookies if c.name == "csrftoken"), None)
        if token:
            headers["X-CSRFToken"] = token
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
