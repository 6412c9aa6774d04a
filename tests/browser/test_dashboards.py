"""Operators' pages in a real Chromium: rq-dashboard and django-rq, with hostile data everywhere.

Real processes: gunicorn (the Django app), the hardened rq-dashboard, a forking rqworker.
Every user input carries a script payload; no dialog may ever open.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import django_rq.settings
import pytest
import redis

from tests import redis_db
from tests.e2e.processes import HttpClient, logs, manage, running, stack_env
from tests.factories import jpeg_bytes
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

PAYLOAD_NAME = "<script>alert('first_name')</script>"
PAYLOAD_FILE = "\"><img src=x onerror=alert('file')>.jpg"
PAYLOAD_ADDRESS = "<img src=x onerror=alert('address')>"
PAYLOAD_DESCRIPTION = "<script>alert('description')</script><img src=x onerror=alert('d2')>"

SETUP = """
import django_rq
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
User = get_user_model()
User.objects.create_superuser('root', 'root@example.org', 'root-password-42')
User.objects.create_user('staffer', 'staff@example.org', 'staff-password-42', is_staff=True)
from app.jobs import emails, images
from app.queueing.enqueueing import enqueue
bad = enqueue(emails.send_email, {address!r}, 'Hello', '<p>x</p>')
later = enqueue(images.process_image, 'uploads/originals/later.jpg')
from rq import Queue
from rq.serializers import JSONSerializer
q = Queue('emails', connection=django_rq.get_connection('emails'), serializer=JSONSerializer)  # RQ's own: a description of its choice
q.enqueue_call('app.jobs.emails.send_email', args=['ok@example.org', 'Hi', '<p>x</p>'], description={description!r}, job_id='described')
print(bad, later)
"""


def upload(client: HttpClient, name: str, data: bytes) -> tuple[int, dict]:
    import urllib.request

    boundary = "----egoejo-boundary"
    body = io.BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'.encode())
    body.write(b"Content-Type: image/jpeg\r\n\r\n" + data + f"\r\n--{boundary}--\r\n".encode())
    token = next(c.value for c in client.cookies if c.name == "csrftoken")
    request = urllib.request.Request(
        client.base_url + "/api/images/",
        data=body.getvalue(),
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "X-CSRFToken": token},
    )
    import json

    with client.opener.open(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_dashboards_show_failures_requeue_works_and_no_script_runs(
    tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis, browser_context_factory
):
    env = stack_env(
        tmp_path, redis_db.redis_url(), redis_db_index,
        RQ_DASHBOARD_USERNAME="operator", RQ_DASHBOARD_PASSWORD="dash-password-42",
    )
    manage(env, "migrate", "--noinput")
    media = Path(env["EGOEJO_VAR_DIR"]) / "media"
    bad_job, later_job = manage(
        env, "shell", "-c", SETUP.format(address=PAYLOAD_ADDRESS, description=PAYLOAD_DESCRIPTION)
    ).stdout.strip().splitlines()[-1].split()
    web_port, dash_port = free_port(), free_port()
    log_dir = tmp_path / "logs"
    dialogs: list[str] = []
    with running(
        env,
        ["-m", "gunicorn", "app.wsgi", "--bind", f"127.0.0.1:{web_port}", "--workers", "2"],
        ["manage.py", "rqdashboard", "--port", str(dash_port)],
        ["manage.py", "rqworker", "emails", "images", "metrics"],
        log_dir=log_dir,
    ):
        web = f"http://127.0.0.1:{web_port}"
        api = HttpClient(web)
        api.wait_until_up()
        HttpClient(f"http://127.0.0.1:{dash_port}").wait_until_up("/")
        api.request("GET", "/api/auth/csrf/")
        status, body = api.request(
            "POST", "/api/auth/register/",
            {"username": "mallory", "email": "mallory@example.org", "password": "a-long-pass-phrase-42", "first_name": PAYLOAD_NAME},
        )
        assert status == 202, body  # accepted, no session: registration tells nothing (tests/security)
        status, body = api.request("POST", "/api/auth/login/", {"username": "mallory", "password": "a-long-pass-phrase-42"})
        assert status == 200, body
        status, image = upload(api, PAYLOAD_FILE, jpeg_bytes((1200, 900))[:3000])  # truncated: fails in the worker
        assert status == 202, image
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and redis_conn.zcard("rq:failed:images") < 2:
            time.sleep(0.2)
        assert redis_conn.zcard("rq:failed:images") == 2, logs(log_dir)
        assert redis_conn.zcard("rq:failed:emails") >= 1, logs(log_dir)

        # --- rq-dashboard --------------------------------------------------------------------
        context = browser_context_factory(http_credentials={"username": "operator", "password": "dash-password-42"})
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        dash = f"http://127.0.0.1:{dash_port}"
        response = page.goto(dash + "/")
        assert "script-src 'self' 'unsafe-eval' 'sha256-" in response.headers["content-security-policy"]
        for queue in ("emails", "images", "metrics"):
            page.locator("tr[data-role=queue] td").get_by_text(queue, exact=True).wait_for(timeout=10_000)
        page.goto(dash + "/0/view/jobs/emails/failed/8/asc/1")
        page.get_by_text("send_email").first.wait_for(timeout=10_000)
        page.goto(dash + f"/0/view/job/{bad_job}")
        page.locator(".exc_info").get_by_text("invalid e-mail address", exact=False).wait_for(timeout=10_000)
        assert PAYLOAD_ADDRESS in page.locator(".exc_info").inner_text()  # shown as text, not markup
        page.goto(dash + "/0/view/job/described")
        page.get_by_text("alert('description')", exact=False).first.wait_for(timeout=10_000)
        page.goto(dash + f"/0/view/job/{image['job_id']}")
        page.get_by_text("truncated", exact=False).first.wait_for(timeout=10_000)
        page.goto(dash + "/0/view/workers")
        page.wait_for_timeout(500)
        assert dialogs == []

        # --- Django admin as superuser: see the failed job, requeue it, watch it finish ---------
        admin = browser_context_factory().new_page()
        admin.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        admin.goto(web + "/admin/login/?next=/admin/")
        admin.fill("#id_username", "root")
        admin.fill("#id_password", "root-password-42")
        admin.click("input[type=submit]")
        admin.wait_for_url(web + "/admin/")
        admin.goto(web + "/admin/auth/user/")
        admin.get_by_text(PAYLOAD_NAME).wait_for()
        admin.goto(web + "/admin/egoejo/uploadedimage/")
        admin.get_by_text(PAYLOAD_FILE).wait_for()
        admin.goto(web + "/admin/django-rq/")
        admin.get_by_role("link", name="images").first.wait_for()
        names = [queue["name"] for queue in django_rq.settings.get_queues_list()]
        images_index, emails_index = names.index("images"), names.index("emails")
        admin.goto(web + f"/admin/django-rq/queues/{emails_index}/failed/")
        admin.goto(web + f"/admin/django-rq/queues/{emails_index}/{bad_job}/")
        admin.get_by_role("link", name="View →").first.click()  # rq 3 keeps the traceback in the job's result
        admin.get_by_text("invalid e-mail address", exact=False).first.wait_for()
        admin.goto(web + f"/admin/django-rq/queues/{images_index}/{later_job}/")
        admin.get_by_role("link", name="View →").first.click()
        admin.get_by_text("image file not found", exact=False).first.wait_for()
        admin.go_back()
        # The operator fixes the cause (the file arrives), then requeues from the page.
        target = media / "uploads" / "originals" / "later.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(jpeg_bytes((800, 600)))
        admin.click("input[name=requeue]")  # a POST form on the job's page
        admin.get_by_text("successfully requeued", exact=False).wait_for()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and redis_conn.hget(f"rq:job:{later_job}", "status") != b"finished":
            time.sleep(0.2)
        assert redis_conn.hget(f"rq:job:{later_job}", "status") == b"finished", logs(log_dir)
        admin.reload()
        admin.get_by_text("finished").first.wait_for()
        assert dialogs == []

        # --- a staff member without django_rq.admin gets 403 ------------------------------------
        staff = browser_context_factory().new_page()
        staff.goto(web + "/admin/login/?next=/admin/")
        staff.fill("#id_username", "staffer")
        staff.fill("#id_password", "staff-password-42")
        staff.click("input[type=submit]")
        staff.wait_for_url(web + "/admin/")
        assert staff.goto(web + "/admin/django-rq/").status == 403
        assert staff.goto(web + f"/admin/django-rq/queues/{emails_index}/failed/").status == 403
    assert dialogs == []
