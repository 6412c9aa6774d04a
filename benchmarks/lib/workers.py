"""Worker processes and a migrated database for benchmarks that need the real job path."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.lib.common import ROOT, setup_django


def bench_env(redis_db: int, **extra: str) -> dict[str, str]:
    directory = Path(tempfile.mkdtemp(prefix="egoejo-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="app.settings",
        DJANGO_SECRET_KEY="benchmark-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SSL_REDIRECT="0",  # plain HTTP on the loopback (request_path): served, not redirected to https
        DATABASE_URL=os.environ.get("DATABASE_URL", f"sqlite:///{directory / 'bench.sqlite3'}"),
        EGOEJO_VAR_DIR=str(directory / "var"),
        REDIS_URL=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        RQ_REDIS_DB=str(redis_db),
        EMAIL_URL="locmem://",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        QUEUEING_JOB_MODULES="benchmarks.lib.jobs",
    )
    env.update(extra)
    return env


def migrated_env(redis_db: int) -> dict[str, str]:
    """bench_env's environment, its database migrated, and Django loaded here on the same database
    and var/ as the worker processes it starts."""
    env = bench_env(redis_db)
    manage(env, "migrate", "--noinput")
    os.environ["DATABASE_URL"] = env["DATABASE_URL"]
    os.environ["EGOEJO_VAR_DIR"] = env["EGOEJO_VAR_DIR"]
    setup_django(RQ_REDIS_DB=str(redis_db))
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
