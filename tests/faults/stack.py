"""The project's processes against a private Redis, killable as a whole (worker + horse)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e import databases
from tests.e2e.processes import ROOT, manage, stack_env
from tests.faults.servers import RedisServer


class Stack:
    def __init__(self, tmp_path: Path, redis_server: RedisServer, smtp_port: int) -> None:
        self.tmp_path = tmp_path
        self.env = stack_env(
            tmp_path, redis_server.url, 2, EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}", LOG_LEVEL="WARNING"
        )
        self.database_url = self.env["DATABASE_URL"]  # PostgreSQL under CI (tests/e2e/databases.py)
        self.redis = redis_server.client()  # the stack's queues (DB 2)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.others: list[subprocess.Popen[bytes]] = []
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        manage(self.env, "migrate", "--noinput")

    def _start(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")
        # Own process group: killing it kills the worker and its work-horse together.
        return subprocess.Popen(
            [sys.executable, "manage.py", *argv], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_command(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        """Any `manage.py` command of the stack, stopped with the others at the end."""
        process = self._start(argv, name)
        self.others.append(process)
        return process

    def start_workers(self, count: int = 2, queues: tuple[str, ...] = ("emails", "images", "metrics")) -> None:
        for _ in range(count):
            self.workers.append(self._start(["rqworker", *queues, "--with-scheduler"], f"worker-{len(self.workers)}"))

    def start_pool(self, name: str = "pool", queues: tuple[str, ...] = ("metrics",), members: int = 1) -> subprocess.Popen[bytes]:
        pool = self._start(["rqpool", *queues, "--workers", str(members)], name)
        self.others.append(pool)
        return pool

    def start_scheduler(self) -> None:
        self.others.append(self._start(["rqscheduler", "--interval", "2"], "scheduler"))

    def kill_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.workers = []

    def stop(self) -> None:
        for process in self.workers + self.others:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers + self.others:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def shell(self, code: str) -> str:
        return manage(self.env, "shell", "-c", code).stdout.strip().splitlines()[-1]

    def query(self, sql: str) -> list[tuple]:
        return databases.query(self.database_url, sql)

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.logs.glob("*.log")))
