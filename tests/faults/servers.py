"""A private redis-server per test, which the test may kill, flush, restart or cut off."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import redis

from tests.smtp import free_port


class RedisServer:
    def __init__(
        self, directory: Path, appendonly: bool = False, extra_binds: tuple[str, ...] = (), password: str = ""
    ) -> None:
        self.directory = directory
        self.extra_binds = extra_binds
        self.password = password
        self.port = free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None
        self._starting = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def client(self, db: int = 2) -> redis.Redis:
        return redis.Redis.from_url(f"{self.url}/{db}")

    def start(self) -> None:
        # One server at a time: two restarts at once (the chaos campaign can schedule them) used
        # to start a second server, which failed to bind and replaced the handle of the first,
        # left running untracked (the restarts after it did nothing; it outlived its test).
        with self._starting:
            if self.process is None or self.process.poll() is not None:
                self.process = subprocess.Popen(
                    ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", *self.extra_binds, "--dir", str(self.directory),
                     "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                     *(["--requirepass", self.password] if self.password else [])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def pause(self) -> None:
        """Unreachable but alive: connections hang, like a network cut."""
        assert self.process
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.process.terminate()
            self.process.wait(timeout=10)
