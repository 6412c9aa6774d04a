"""The Railway services of railway/*.json, booted as Railway boots them (docs/deploy.md#railway).

Each service's `startCommand` runs in exec form, as Railway runs it for an image built from a
Dockerfile (no shell: a `$PORT` outside `/bin/sh -c` would reach the program unexpanded), with a
platform-like environment: a random `$PORT` per service, a password-protected Redis
(`redis://default:PASSWORD@…` as Railway's Redis gives it, or a password-only `rediss://` URL to
a TLS Redis), `DATABASE_URL` to a fresh PostgreSQL database, production settings (DEBUG off,
strong secrets). The web's `preDeployCommand` migrates first; no start command migrates. Then
each service must do its work: the web answers Railway's health check on `/livez` (Host
`healthcheck.railway.app`), a registration's welcome mail is delivered, an upload gets its
renditions, the scheduler registers the recurring refresh, the dashboard serves its operator.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.databases import private_pg_database
from tests.e2e.processes import ROOT, HttpClient
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e

RAILWAY = ROOT / "railway"
WEB_SERVICES = {"web", "web-daphne"}


def config(service: str) -> dict[str, Any]:
    return json.loads((RAILWAY / f"{service}.json").read_text())["deploy"]  # type: ignore[no-any-return]


def test_every_service_builds_the_one_image_and_only_the_web_migrates():
    services = sorted(path.stem for path in RAILWAY.glob("*.json"))
    assert services == ["dashboard", "scheduler", "web", "web-daphne", "worker", "worker-images", "worker-light"]
    for service in services:
        document = json.loads((RAILWAY / f"{service}.json").read_text())
        assert document["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}, service
        deploy = document["deploy"]
        assert "migrate" not in deploy["startCommand"], f"{service}: migrations belong to the pre-deploy step"
        assert deploy["restartPolicyType"] == "ALWAYS", service
        if service in WEB_SERVICES:
            assert deploy["preDeployCommand"] == ["python manage.py migrate --noinput"]
            assert deploy["healthcheckPath"] == "/livez"
        else:
            assert "preDeployCommand" not in deploy, f"{service}: only the web migrates, once per deploy"
    # A stop waits for the longest job of the queues a service runs (docker-compose.yml's stop_grace_period).
    assert config("worker-light")["drainingSeconds"] > 600 and config("worker-images")["drainingSeconds"] > 300
    assert config("scheduler")["numReplicas"] == 1 and config("worker-images")["numReplicas"] >= 2


# -- the platform's services ------------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[str]:
    with private_pg_database("egoejo_paas", "the PaaS test") as url:
        yield url


@contextmanager
def redis_server(tmp_path: Path, tls: bool) -> Iterator[tuple[str, redis.Redis]]:
    """A private redis-server that wants a password (and, with `tls`, speaks TLS only); yields the
    REDIS_URL a platform would give and a client on the queues' DB."""
    password = secrets.token_urlsafe(24)
    port = free_port()
    directory = tmp_path / "redis"
    directory.mkdir()
    args = ["redis-server", "--bind", "127.0.0.1", "--dir", str(directory), "--save", "", "--appendonly", "no",
            "--requirepass", password]
    if tls:
        ca, cert, key = make_certificates(directory)
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                 "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
        url = f"rediss://:{password}@127.0.0.1:{port}?ssl_ca_certs={ca}"
    else:
        args += ["--port", str(port)]
        url = f"redis://default:{password}@127.0.0.1:{port}"
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis.from_url(url.split("?")[0] + "/2", **({"ssl_ca_certs": str(ca)} if tls else {}))
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, client
    finally:
        process.terminate()
        process.wait(timeout=10)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, with openssl."""
    ca_key, ca, key, csr, cert = (directory / name for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "1", "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    extensions = directory / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "1", "-extfile", str(extensions))
    return ca, cert, key


def platform_env(tmp_path: Path, database_url: str, redis_url: str, smtp_port: int) -> dict[str, str]:
    """What the service variables of docs/deploy.md#railway give every service (production mode)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_", "DATABASE_", "QUEUEING_", "THROTTLE_", "GUNICORN_", "OTEL_"))}
    env.update(
        # The image's PATH: its Python and the servers' entry points.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DJANGO_SETTINGS_MODULE="app.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="egoejo.up.railway.app,healthcheck.railway.app,127.0.0.1",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://egoejo.up.railway.app",
        # The test's client speaks plain HTTP to the port (Railway's edge speaks HTTPS to browsers).
        DJANGO_SECURE_COOKIES="0",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        RQ_DASHBOARD_USERNAME="operator",
        RQ_DASHBOARD_PASSWORD=secrets.token_urlsafe(24),
        METRICS_TOKEN=secrets.token_urlsafe(32),
        GUNICORN_FORWARDED_ALLOW_IPS="*",
        GUNICORN_WORKERS="1",
        LOG_FORMAT="json",
        EGOEJO_VAR_DIR=str(tmp_path / "var"),  # media on the local disk here; S3 on Railway (a bucket)
        PYTHONUNBUFFERED="1",
    )
    return env


@contextmanager
def services(env: dict[str, str], names: list[str], log_dir: Path) -> Iterator[dict[str, int]]:
    """Run the pre-deploy step, then each service's start command in exec form; yield their $PORTs."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        for command in config(name).get("preDeployCommand", []):
            result = subprocess.run(shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
            assert result.returncode == 0, result.stderr[-3000:]
    ports = {name: free_port() for name in names}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name in names:
            with open(log_dir / f"{name}.log", "wb") as log:
                processes.append(subprocess.Popen(
                    shlex.split(config(name)["startCommand"]), cwd=ROOT, env={**env, "PORT": str(ports[name]),
                    **({"DATABASE_POOL": "4"} if name in WEB_SERVICES else {})},
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                ))
        yield ports
        for name, process in zip(names, processes, strict=True):
            assert process.poll() is None, f"{name} exited:\n{logs(log_dir)}"
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def logs(log_dir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(log_dir.glob("*.log")))


def health_check(port: int, timeout: float = 60) -> None:
    """Railway's: GET the healthcheck path with Host healthcheck.railway.app until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/livez", headers={"Host": "healthcheck.railway.app"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"/livez did not answer 200 on port {port}")
        time.sleep(0.3)


def register_and_get_mail(client: HttpClient, sink: SmtpSink, username: str, log_dir: Path) -> None:
    assert client.request("GET", "/api/auth/csrf/")[0] == 200
    status, body = client.request(
        "POST", "/api/auth/register/", {"username": username, "email": f"{username}@example.org", "password": "a-long-pass-phrase-42"},
    )
    assert status == 202, (body, logs(log_dir))
    try:
        [(recipients, message)] = sink.wait_for(1, timeout=30)
    except AssertionError:
        raise AssertionError(logs(log_dir)) from None
    assert recipients == [f"{username}@example.org"]
    # The mailed confirmation link, followed as its owner would: it activates the account and logs in.
    text = "".join(part.get_content() for part in message.walk() if part.get_content_type() == "text/plain")
    token = re.search(r"/account/confirm/([^/\s\"<]+)/", text)
    assert token, text
    status, _ = client.request("POST", "/api/auth/confirm/", {"token": token.group(1), "password": "a-long-pass-phrase-42"})
    assert status == 200


def upload_image(client: HttpClient) -> dict[str, Any]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 120, 40)).save(buffer, "PNG")
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    token = next(c.value for c in client.cookies if c.name == "csrftoken")
    request = urllib.request.Request(client.base_url + "/api/images/", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "X-CSRFToken": token, "Accept": "application/json"})
    with client.opener.open(request, timeout=10) as response:
        assert response.status == 202
        return json.loads(response.read())  # type: ignore[no-any-return]


def wait_for_image(client: HttpClient, image_id: int, log_dir: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, image = client.request("GET", f"/api/images/{image_id}/")
        if image.get("status") != "pending":
            return image  # type: ignore[no-any-return]
        time.sleep(0.3)
    raise AssertionError(f"image still pending\n{logs(log_dir)}")


def wait_for_schedule(queues: redis.Redis, log_dir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if b"schedule-refresh-all-dashboards" in queues.zrange("rq:scheduler:scheduled_jobs", 0, -1):
            return
        time.sleep(0.3)
    raise AssertionError(f"the scheduler registered no recurring job\n{logs(log_dir)}")


@pytest.mark.parametrize("redis_form", ["railway", "tls-password-only"])
def test_the_seed_layout_daphne_web_and_one_worker_service(tmp_path: Path, database: str, redis_form: str):
    """EGOEJO's layout today: Service 1, Django under Daphne; Service 2, the worker."""
    sink = SmtpSink()
    sink.start()
    log_dir = tmp_path / "logs"
    try:
        with redis_server(tmp_path, tls=redis_form != "railway") as (redis_url, queues):
            env = platform_env(tmp_path, database, redis_url, sink.port)
            with services(env, ["web-daphne", "worker"], log_dir) as ports:
                health_check(ports["web-daphne"])
                client = HttpClient(f"http://127.0.0.1:{ports['web-daphne']}")
                register_and_get_mail(client, sink, "seed", log_dir)
                image = wait_for_image(client, upload_image(client)["id"], log_dir)
                assert image["status"] == "done", (image, logs(log_dir))
                wait_for_schedule(queues, log_dir)
    finally:
        sink.stop()


def test_the_five_services(tmp_path: Path, database: str):
    """The layout for more hosts: web (gunicorn + uvicorn workers), light workers, images workers,
    the scheduler and the dashboard, each a service of its own."""
    sink = SmtpSink()
    sink.start()
    log_dir = tmp_path / "logs"
    try:
        with redis_server(tmp_path, tls=False) as (redis_url, queues):
            env = platform_env(tmp_path, database, redis_url, sink.port)
            names = ["web", "worker-light", "worker-images", "scheduler", "dashboard"]
            with services(env, names, log_dir) as ports:
                health_check(ports["web"])
                client = HttpClient(f"http://127.0.0.1:{ports['web']}")
                register_and_get_mail(client, sink, "five", log_dir)
                image = wait_for_image(client, upload_image(client)["id"], log_dir)
                assert image["status"] == "done", (image, logs(log_dir))
                wait_for_schedule(queues, log_dir)
                # The dashboard serves its operator on $PORT, and nobody else.
                credentials = base64.b64encode(f"operator:{env['RQ_DASHBOARD_PASSWORD']}".encode()).decode()
                dashboard = f"http://127.0.0.1:{ports['dashboard']}/"
                deadline = time.monotonic() + 30
                while True:
                    try:
                        with urllib.request.urlopen(urllib.request.Request(dashboard, headers={"Authorization": f"Basic {credentials}"}),
                                                    timeout=3) as response:
                            assert response.status == 200
                            break
                    except urllib.error.HTTPError:
                        raise
                    except OSError:
                        if time.monotonic() > deadline:
                            raise AssertionError(logs(log_dir)) from None
                        time.sleep(0.3)
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(dashboard, timeout=3)
                assert refused.value.code == 401
    finally:
        sink.stop()
