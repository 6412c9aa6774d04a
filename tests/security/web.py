"""The web as the image runs it (the Dockerfile's CMD: gunicorn and its config), a member logged in."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import redis_db
from tests.e2e.processes import HttpClient, logs, manage, running, stack_env
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
UPLOAD_LIMIT = 1024 * 1024


@dataclass
class Web:
    port: int
    client: HttpClient  # logged in as a member, with the CSRF cookie
    log_dir: Path

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.client.cookies)

    def csrf_token(self) -> str:
        return next(c.value for c in self.client.cookies if c.name == "csrftoken")

    def raw(self, request: bytes, timeout: float = 10) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        connection.sendall(request)
        return connection

    def logs(self) -> str:
        return logs(self.log_dir)


def image_command() -> list[str]:
    """The web's command as the image runs it (the Dockerfile's CMD), as argv after `python -m`."""
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd, "the Dockerfile has no exec-form CMD"
    argv = json.loads(cmd.group(1))
    assert argv[0] == "gunicorn", argv
    for option in ("--bind", "-b", "--workers", "-w"):  # ours come from the fixture: loopback only
        while option in argv:
            index = argv.index(option)
            del argv[index : index + 2]
    return ["-m", *argv]


def read_status(connection: socket.socket) -> int:
    """The status code of the response on `connection` (raises socket.timeout if none comes)."""
    data = b""
    while b"\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.fixture(scope="module", name="web")
def web_fixture(tmp_path_factory, redis_db_index: int) -> Iterator[Web]:
    tmp_path = tmp_path_factory.mktemp("web")
    port = free_port()
    env = stack_env(
        tmp_path, redis_db.redis_url(), redis_db_index,
        IMAGE_UPLOAD_MAX_BYTES=str(UPLOAD_LIMIT),
    )
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", "from tests.factories import make_user; make_user('uploader')")
    log_dir = tmp_path / "logs"
    # Its bind and worker count overridden (the command line wins over the config file); all else as in production.
    with running(env, [*image_command(), "--bind", f"127.0.0.1:{port}", "--workers", "2"], log_dir=log_dir):
        client = HttpClient(f"http://127.0.0.1:{port}")
        client.wait_until_up("/livez")
        assert client.request("GET", "/api/auth/csrf/")[0] == 200
        status, body = client.request("POST", "/api/auth/login/", {"username": "uploader", "password": "correct horse battery"})
        assert status == 200, (body, logs(log_dir))
        yield Web(port, client, log_dir)
