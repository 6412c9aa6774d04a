"""The whole stack as real processes: gunicorn, `manage.py rqworker`, `manage.py rqscheduler`."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from tests import redis_db
from tests.e2e.processes import HttpClient, logs, manage, running, stack_env
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e


def test_registration_over_http_delivers_the_confirmation_link_then_the_welcome_mail(
    tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis
):
    sink = SmtpSink()
    sink.start()
    port = free_port()
    env = stack_env(
        tmp_path, redis_db.redis_url(), redis_db_index, EMAIL_URL=f"smtp://127.0.0.1:{sink.port}",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    manage(env, "migrate", "--noinput")
    log_dir = tmp_path / "logs"
    try:
        with running(
            env,
            ["-m", "gunicorn", "app.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
            ["manage.py", "rqworker", "emails", "images", "metrics", "--with-scheduler"],
            ["manage.py", "rqscheduler", "--interval", "1"],
            log_dir=log_dir,
        ) as processes:
            client = HttpClient(f"http://127.0.0.1:{port}")
            client.wait_until_up()
            assert client.request("GET", "/api/auth/csrf/")[0] == 200
            status, body = client.request(
                "POST",
                "/api/auth/register/",
                {"username": "e2e", "email": "e2e@example.org", "password": "a-long-pass-phrase-42", "first_name": "Eve"},
            )
            assert status == 202, (body, logs(log_dir))
            started = time.monotonic()
            try:
                [(recipients, message)] = sink.wait_for(1, timeout=20)
            except AssertionError:
                raise AssertionError(logs(log_dir)) from None
            elapsed = time.monotonic() - started
            assert recipients == ["e2e@example.org"]
            text = message.get_body(("plain",)).get_content()
            assert "Eve" in text
            assert {part.get_content_type() for part in message.walk()} >= {"text/plain", "text/html"}
            assert elapsed < 20

            # Not before the address is proved: then the mailed link, followed as a member would.
            status, _ = client.request("POST", "/api/auth/login/", {"username": "e2e", "password": "a-long-pass-phrase-42"})
            assert status == 400
            link = re.search(rf"http://127\.0\.0\.1:{port}/account/confirm/([^/\s]+)/", text)
            assert link, text
            with urllib.request.urlopen(link.group(0), timeout=10) as page:  # the page: a form, nothing changed
                assert page.status == 200 and b'type="password"' in page.read()
            status, member = client.request("POST", "/api/auth/confirm/", {"token": link.group(1), "password": "a-long-pass-phrase-42"})
            assert status == 200 and member["username"] == "e2e", member
            [(recipients, welcome)] = sink.wait_for(2, timeout=20)[1:]
            assert recipients == ["e2e@example.org"] and "EGOEJO" in welcome["Subject"]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                status, job = client.request("GET", f"/api/jobs/{body['job_id']}/")
                if job.get("status") == "finished":
                    break
                time.sleep(0.2)
            assert job["status"] == "finished", job
            assert job["queue"] == "emails"

            # The scheduler registered the recurring refresh under its stable id, once.
            scheduled = [m.decode() for m in redis_conn.zrange("rq:scheduler:scheduled_jobs", 0, -1)]
            assert scheduled.count("schedule-refresh-all-dashboards") == 1, scheduled
            assert all(p.poll() is None for p in processes), logs(log_dir)
    finally:
        sink.stop()
