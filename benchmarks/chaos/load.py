"""The campaign's load, through the public HTTP API only (and `manage.py shell` for the bulk mail,
which has no HTTP entry point): registrations, image uploads, contributions, dashboard reads."""

from __future__ import annotations

import http.cookiejar
import io
import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from tests.e2e.processes import ROOT

from .stack import ChaosStack

TIMEOUT = 40  # longer than the slow-request fault: a slow answer is not a lost one


def small_jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (1600, 1200), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


class Client:
    """One member's browser: cookies, CSRF header, JSON and multipart bodies."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = next((c.value for c in self.cookies if c.name == "csrftoken"), None)
        if token:
            headers["X-CSRFToken"] = token
        return headers

    def _send(self, req: urllib.request.Request) -> tuple[int, Any]:
        for _ in range(20):  # refused: the request never reached a server (restarting): safe to send again
            status, body = self._send_once(req)
            if status != -1:
                return status, body
            time.sleep(0.5)
        return 0, None

    def _send_once(self, req: urllib.request.Request) -> tuple[int, Any]:
        try:
            with self.opener.open(req, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"null")
            except ValueError:
                return error.code, None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError):
                return -1, None
            return 0, None  # reset or timed out mid-request: it may or may not have committed
        except (OSError, ValueError):
            return 0, None

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        return self._send(urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers))

    def upload(self, path: str, name: str, content: bytes) -> tuple[int, Any]:
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode() + content + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {**self._headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
        return self._send(urllib.request.Request(self.base_url + path, data=body, method="POST", headers=headers))


@dataclass
class LoadLog:
    requests: Counter[str] = field(default_factory=Counter)  # "register 201", "upload 0", ...
    bulk_jobs: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)  # ids of jobs enqueued in transactions rolled back on purpose


def setup_project(stack: ChaosStack) -> int:
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from app.models import Project; print(Project.objects.create(title='Chaos', slug='chaos').pk)"],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, check=True, timeout=120,
    )
    return int(out.stdout.strip().splitlines()[-1])


def queue_bulk_mail(stack: ChaosStack) -> list[str]:
    code = (
        "import json\nfrom django.contrib.auth import get_user_model\n"
        "from app.services.mail.enqueueing import queue_bulk_email\n"
        "ids = list(get_user_model().objects.filter(is_active=True).order_by('pk').values_list('pk', flat=True))\n"
        "print(json.dumps(queue_bulk_email('announcement', ids)))\n"
    )
    for _ in range(5):  # the database or Redis may be mid-fault: the command is retried as an operator would
        result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=stack.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            return json.loads(result.stdout.strip().splitlines()[-1])
        time.sleep(2)
    return []


_ROLLBACK = (
    "import json\nimport django_rq\nfrom django.contrib.auth import get_user_model\nfrom django.db import transaction\n"
    "from app.jobs.emails import send_welcome_email\nfrom app.jobs.metrics import update_impact_dashboard_metrics\n"
    "ids = []\nuser_id = get_user_model().objects.order_by('pk').values_list('pk', flat=True).first()\n"
    "try:\n"
    "    with transaction.atomic():\n"
    "        ids.append(send_welcome_email.delay(user_id).id)\n"
    "        ids.append(django_rq.enqueue(update_impact_dashboard_metrics, user_id).id)\n"
    "        raise RuntimeError('rolled back on purpose')\n"
    "except RuntimeError:\n"
    "    pass\n"
    "print(json.dumps(ids))\n"
)


def rolled_back_enqueues(stack: ChaosStack) -> list[str]:
    """A welcome mail and a dashboard refresh enqueued (the project's idiom and django-rq's) in a
    transaction that then rolls back: neither may run. Their ids go to the checker."""
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", _ROLLBACK], cwd=ROOT, env=stack.env,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return []  # the database or Redis was mid-fault: nothing was enqueued
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


PASSWORD = "chaos-Pass-12345!"
CONFIRM_LINK = re.compile(r"/account/confirm/([A-Za-z0-9_-]+\.[0-9a-z]+-[0-9a-f]+)/")
FIRST_CONFIRMATION_WAIT = 30.0  # seconds a client with no member yet waits for a confirmation mail


def mailed_confirmation(stack: ChaosStack, address: str) -> str | None:
    """The token of the newest confirmation link the sink received for `address`, as its owner reads it."""
    with stack.sink.lock:
        messages = [message for rcpts, message in stack.sink.messages if address in rcpts]
    for message in reversed(messages):
        body = message.get_body(("plain",))
        found = CONFIRM_LINK.search(body.get_content() if body is not None else "")
        if found:
            return found.group(1)
    return None


def confirm_arrived(stack: ChaosStack, pending: list[tuple[Client, str]], members: list[Client],
                    note: Callable[[str], None], wait: float = 0.0) -> None:
    """Follow the confirmation link of every pending registration whose mail has come (waiting up
    to `wait` seconds for the first one); a confirmed client is logged in and becomes a member."""
    deadline = time.monotonic() + wait
    while pending:
        for entry in list(pending):
            client, name = entry
            token = mailed_confirmation(stack, f"{name}@example.org")
            if token is None:
                continue
            pending.remove(entry)
            status, _ = client.json("POST", "/api/auth/confirm/", {"token": token, "password": PASSWORD})
            note(f"confirm {status}")
            if status != 200:  # cut off mid-request (it may have committed): a login tells
                status, _ = client.json("POST", "/api/auth/login/", {"username": name, "password": PASSWORD})
                note(f"login {status}")
            if status == 200:
                members.append(client)
        if members or time.monotonic() >= deadline:
            return
        time.sleep(0.2)


def run_load(stack: ChaosStack, seed: int, jobs: int, project_id: int, duration: float, clients: int = 3) -> LoadLog:
    """About `jobs` outbox rows over `duration` seconds: half registrations, a third contributions,
    the rest uploads, and one bulk mail half-way."""
    log = LoadLog()
    lock = threading.Lock()
    rng = random.Random(seed)
    plan = (["register"] * (jobs // 2) + ["contribute"] * (jobs * 3 // 10) + ["upload"] * max(1, jobs // 7))
    rng.shuffle(plan)
    # Each action needs a member: registrations first within each client's share.
    base_url = f"http://127.0.0.1:{stack.web_port}"
    started = time.monotonic()
    pace = duration / max(1, len(plan))
    bulk_at = len(plan) // 2
    rollback_at = {len(plan) // 4, len(plan) * 3 // 4}

    def note(what: str) -> None:
        with lock:
            log.requests[what] += 1

    def worker(index: int, actions: list[tuple[int, str]]) -> None:
        members: list[Client] = []
        pending: list[tuple[Client, str]] = []  # registered, waiting for their confirmation mail
        local = random.Random(seed * 1000 + index)
        for position, action in actions:
            delay = started + position * pace - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if position == bulk_at:
                with lock:
                    log.bulk_jobs.extend(queue_bulk_mail(stack))
            if position in rollback_at:
                ids = rolled_back_enqueues(stack)
                with lock:
                    log.rolled_back.extend(ids)
            confirm_arrived(stack, pending, members, note, wait=0 if members else FIRST_CONFIRMATION_WAIT)
            if action != "register" and not members:
                action = "register"
            if action == "register":
                client = Client(base_url)
                client.json("GET", "/api/auth/csrf/")
                name = f"m{seed}x{index}x{position}"
                status, _ = client.json("POST", "/api/auth/register/", {
                    "username": name, "email": f"{name}@example.org", "password": PASSWORD,
                    "language": local.choice(["fr", "en"]),
                })
                note(f"register {status}")
                if status in (202, 0):  # accepted (no session: tests/security), or cut off mid-request
                    pending.append((client, name))  # a member once the mailed link is followed
            elif action == "contribute":
                client = local.choice(members)
                status, _ = client.json("POST", f"/api/projects/{project_id}/contributions/",
                                        {"amount": f"{local.randint(1, 500)}.{local.randint(0, 99):02d}"})
                note(f"contribute {status}")
                if local.random() < 0.3:
                    status, _ = client.json("GET", "/api/impact/")
                    note(f"impact {status}")
            else:
                client = local.choice(members)
                status, _ = client.upload("/api/images/", f"photo-{position}.jpg", small_jpeg(seed * 10_000 + position))
                note(f"upload {status}")

    shares: list[list[tuple[int, str]]] = [[] for _ in range(clients)]
    for position, action in enumerate(plan):
        shares[position % clients].append((position, action))
    threads = [threading.Thread(target=worker, args=(i, share), daemon=True) for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return log
