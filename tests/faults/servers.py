"""A private redis-server per test, which the test may kill, flush, restart or cut off."""

from __future__ import annotations

import os
import signal
import socket
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


class TcpProxy:
    """A TCP forwarder to 127.0.0.1:`target_port` that a test cuts or freezes: a server made
    unreachable without touching it (a database shared with other tests, say). After `cut()` its
    port refuses connections and the open ones are dropped; after `freeze()` nothing passes any
    more either way and new connections are accepted but never answered, as behind a network cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        self._frozen = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            if self._frozen.is_set():
                with self._lock:
                    self._sockets.append(client)  # held open, never answered
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._cut:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self._frozen.is_set() and not self._cut:
                    time.sleep(0.05)  # held: the bytes never arrive
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def freeze(self) -> None:
        self._frozen.set()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, []
        self.listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
