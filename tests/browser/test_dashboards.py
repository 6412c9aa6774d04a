"""Operators' pages in a real Chromium: rq-dashboard and django-rq, with hostile data everywhere.

Real processes: gunicorn (the Django app), the hardened rq-dashboard, a forking rqworker.
Every user input carries a script payload; no dialog may ever open. On every page of both
dashboards: no JavaScript error in the console, and no HTML entity (`&quot;`, `&#x27;`...) in
the visible text, which is what double escaping looks like.
"""

from __future__ import annotations

import http.server
import io
import re
import threading
import time
from pathlib import Path

import django_rq.settings
import pytest
import redis

from tests import redis_db
from tests.e2e.processes import HttpClient, logs, manage, running, stack_env
from tests.factories import jpeg_bytes, png_rgba_bytes
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

PAYLOAD_NAME = "<script>alert('first_name')</script>"
PAYLOAD_FILE = "\"><img src=x onerror=alert('file')>.png"
PAYLOAD_ADDRESS = "<img src=x onerror=alert('address')>"
PAYLOAD_DESCRIPTION = "<script>alert('description')</script><img src=x onerror=alert('d2')>"
PAYLOAD_KEY = "\"<img/src=x/onerror=alert('key')>\"@example.org"  # a valid address, a key of a bulk result
ENTITIES = ("&quot;", "&#x27;", "&#39;", "&amp;", "&lt;", "&gt;")

SETUP = """
import django_rq
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
User = get_user_model()
User.objects.create_superuser('root', 'root@example.org', 'root-password-42')
User.objects.create_user('staffer', 'staff@example.org', 'staff-password-42', is_staff=True)
from app.jobs import emails, images
from tests.enqueue import enqueue
bad = enqueue(emails.send_email, {address!r}, 'Hello', '<p>x</p>')
later = enqueue(images.process_image, 'uploads/originals/later.jpg')
from rq import Queue
from rq.serializers import JSONSerializer
q = Queue('emails', connection=django_rq.get_connection('emails'), serializer=JSONSerializer)  # RQ's own: a description of its choice
q.enqueue_call('app.jobs.emails.send_email', args=['ok@example.org', 'Hi', '<p>x</p>'], description={description!r}, job_id='described')
# A bulk job's report names refused addresses as keys; taken off the queue so that no worker
# overwrites the result written here the way a worker writes it.
from rq.results import Result
keyed = q.enqueue_call('app.jobs.emails.send_bulk_email', args=['announcement', [1]], job_id='keyed')
q.remove(keyed)
Result.create(keyed, Result.Type.SUCCESSFUL, 600, return_value={{'sent': 0, 'failed': {{{key!r}: "550 <b>refused</b>"}}}})
print(bad, later)
"""


class Watch:
    """Console errors and uncaught exceptions of every page it is attached to."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page):  # type: ignore[no-untyped-def]
        page.on("console", lambda message: message.type == "error" and self.errors.append(f"{page.url}: {message.text}"))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page


def assert_text_unescaped(page) -> None:  # type: ignore[no-untyped-def]
    text = page.locator("body").inner_text()
    shown = [entity for entity in ENTITIES if entity in text]
    assert not shown, f"{page.url} shows {shown}:\n{text[:3000]}"



def broken_pixels_png() -> bytes:
    """A PNG whose chunks are sound (the web decodes no pixel) and whose pixel stream stops short:
    the worker's decode fails, permanently."""
    import struct
    import zlib

    whole = png_rgba_bytes((800, 600))
    at = whole.find(b"IDAT")
    pixels = whole[at + 4 : at + 4 + int.from_bytes(whole[at - 4 : at], "big") // 3]
    chunk = struct.pack(">I", len(pixels)) + b"IDAT" + pixels + struct.pack(">I", zlib.crc32(b"IDAT" + pixels))
    return whole[: at - 4] + chunk + whole[whole.find(b"IEND") - 4 :]


def upload(client: HttpClient, name: str, data: bytes) -> tuple[int, dict]:
    import urllib.request

    boundary = "----egoejo-boundary"
    body = io.BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'.encode())
    body.write(b"Content-Type: application/octet-stream\r\n\r\n" + data + f"\r\n--{boundary}--\r\n".encode())
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


class _BlankPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"<!doctype html><title>elsewhere</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


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
        env, "shell", "-c", SETUP.format(address=PAYLOAD_ADDRESS, description=PAYLOAD_DESCRIPTION, key=PAYLOAD_KEY), as_intruder=True
    ).stdout.strip().splitlines()[-1].split()
    manage(env, "collectstatic", "--noinput")  # the admin's CSS and JS, served by WhiteNoise as in production
    manage(env, "rqscheduler", "--register-only")  # the recurring dashboard refresh
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
        # The mailed link's token (made as the mail job makes it), then the confirmation logs in.
        token = manage(env, "shell", "-c", "from tests.factories import confirmation_token; print(confirmation_token('mallory'))").stdout.split()[-1]
        status, body = api.request("POST", "/api/auth/confirm/", {"token": token, "password": "a-long-pass-phrase-42"})
        assert status == 200, body
        status, image = upload(api, PAYLOAD_FILE, broken_pixels_png())  # a sound structure: fails in the worker
        assert status == 202, image
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and redis_conn.zcard("rq:failed:images") < 2:
            time.sleep(0.2)
        assert redis_conn.zcard("rq:failed:images") == 2, logs(log_dir)
        assert redis_conn.zcard("rq:failed:emails") >= 1, logs(log_dir)

        # The confirmation and welcome mails are done, and the described job (written by hand: not
        # the layer's) refused, before the lists are read.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (redis_conn.zcard("rq:finished:emails") < 2 or redis_conn.zcard("rq:failed:emails") < 2):
            time.sleep(0.2)

        # --- rq-dashboard --------------------------------------------------------------------
        watch = Watch()
        context = browser_context_factory(http_credentials={"username": "operator", "password": "dash-password-42"})
        page = watch.attach(context.new_page())
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        dash = f"http://127.0.0.1:{dash_port}"
        response = page.goto(dash + "/")
        assert "script-src 'self' 'unsafe-eval' 'sha256-" in response.headers["content-security-policy"]
        for queue in ("emails", "images", "metrics"):
            page.locator("tr[data-role=queue] td").get_by_text(queue, exact=True).wait_for(timeout=10_000)
        assert_text_unescaped(page)
        # The failed lists: each job's traceback ends with its reason, shown once escaped (as text).
        page.goto(dash + "/0/view/jobs/emails/failed/8/asc/1")
        reason = page.locator("tr[data-role=job] pre.exc_info").filter(has_text="invalid e-mail address")
        reason.wait_for(timeout=10_000)
        assert PAYLOAD_ADDRESS in reason.inner_text() and reason.is_visible()
        assert_text_unescaped(page)
        page.goto(dash + "/0/view/jobs/images/failed/8/asc/1")
        page.locator("tr[data-role=job] pre.exc_info").filter(has_text="image file not found").wait_for(timeout=10_000)
        page.locator("tr[data-role=job] pre.exc_info").filter(has_text="truncated").wait_for(timeout=10_000)
        assert_text_unescaped(page)
        # The failed list is titled as such, and shows the forged job's description as text.
        page.goto(dash + "/0/view/jobs/emails/failed/8/asc/1")
        page.get_by_text("all the failed jobs on queue").wait_for(timeout=10_000)
        page.locator("tr[data-role=job] .description").filter(has_text=PAYLOAD_DESCRIPTION).wait_for(timeout=10_000)
        page.locator("tr[data-role=job] pre.exc_info").filter(has_text="ForgedJobError").wait_for(timeout=10_000)
        assert_text_unescaped(page)
        page.goto(dash + "/0/view/jobs/emails/finished/8/asc/1")
        page.get_by_text("all the finished jobs on queue").wait_for(timeout=10_000)
        assert_text_unescaped(page)
        for registry in ("queued", "started", "deferred", "scheduled", "canceled"):
            page.goto(dash + f"/0/view/jobs/metrics/{registry}/8/asc/1")
            page.get_by_text(f"all the {registry} jobs on queue").wait_for(timeout=10_000)
            page.locator("tr[data-role=loading-placeholder]").wait_for(state="hidden", timeout=10_000)
            assert_text_unescaped(page)
        page.goto(dash + f"/0/view/job/{bad_job}")
        page.locator(".exc_info").get_by_text("invalid e-mail address", exact=False).wait_for(timeout=10_000)
        assert PAYLOAD_ADDRESS in page.locator(".exc_info").inner_text()  # shown as text, not markup
        assert_text_unescaped(page)
        page.goto(dash + "/0/view/job/described")
        page.get_by_text("alert('description')", exact=False).first.wait_for(timeout=10_000)
        assert_text_unescaped(page)
        page.goto(dash + "/0/view/job/keyed")  # a payload as a key of the job's result
        page.get_by_text(PAYLOAD_KEY[1:-14], exact=False).first.wait_for(timeout=10_000)
        assert page.locator("img").count() == 0
        page.goto(dash + f"/0/view/job/{image['job_id']}")
        page.get_by_text("truncated", exact=False).first.wait_for(timeout=10_000)
        assert_text_unescaped(page)
        page.goto(dash + "/0/view/workers")
        page.locator("table#workers tbody tr").filter(has_text="emails").first.wait_for(timeout=10_000)
        assert_text_unescaped(page)
        # Recurring jobs (rq-scheduler's, which rq-dashboard does not read) with their next run.
        page.get_by_role("link", name="Recurring").click()
        row = page.locator("tr[data-role=recurring-job]").filter(has_text="app.jobs.metrics.refresh_all_dashboards")
        row.wait_for(timeout=10_000)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row.locator("td.next-run").inner_text().strip())
        assert_text_unescaped(page)
        # A legitimate action from the page works; the same POST from another origin is refused.
        page.goto(dash + "/0/view/jobs/emails/failed/8/asc/1")
        row = page.locator("tr[data-role=job]").filter(has_text="invalid e-mail address").first
        requeued_id = row.get_attribute("data-job-id")
        runs_before = redis_conn.xlen(f"rq:results:{requeued_id}")
        row.locator("[data-role=requeue-job-btn]").click()
        # Requeued, run again (a worker is listening) and failed again: one more result recorded.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and redis_conn.xlen(f"rq:results:{requeued_id}") == runs_before:
            time.sleep(0.1)
        assert redis_conn.xlen(f"rq:results:{requeued_id}") == runs_before + 1, (requeued_id, runs_before, logs(log_dir))
        foreign = context.new_page()  # not watched: its refused POST is logged as a 403, as it should be
        # Another origin (same host, another port): a page of the attacker's own, served from loopback,
        # without the web's CSP (whose connect-src 'self' would stop the fetch before the dashboard could refuse it).
        elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BlankPage)
        threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
        foreign.goto(f"http://127.0.0.1:{elsewhere.server_address[1]}/")
        status = foreign.evaluate(
            "async (url) => (await fetch(url, {method: 'POST', mode: 'no-cors', credentials: 'include'})).status",
            dash + "/queue/images/failed/empty",
        )
        assert status == 0  # opaque: the browser sent it, the answer is not the page's to read
        assert redis_conn.zcard("rq:failed:images") == 2  # nothing emptied
        foreign.close()
        elsewhere.shutdown()
        assert dialogs == []
        assert watch.errors == []

        # --- Django admin as superuser: see the failed job, requeue it, watch it finish ---------
        admin = watch.attach(browser_context_factory().new_page())
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
        assert admin.locator("table").get_by_text("default", exact=True).count() == 0  # no queue nobody serves
        assert_text_unescaped(admin)
        admin.goto(web + f"/admin/django-rq/queues/{emails_index}/failed/")
        # The reason is in the list, in full, and the admin's actions script works (select all).
        reason = admin.locator("#result_list td.failure-reason").filter(has_text="invalid e-mail address")
        reason.first.wait_for()
        assert PAYLOAD_ADDRESS in reason.first.inner_text()
        assert admin.evaluate("el => el.scrollWidth <= el.clientWidth + 1", reason.first.element_handle())
        admin.click("#action-toggle")
        assert admin.locator("tr input.action-select:checked").count() == admin.locator("tr input.action-select").count()
        admin.locator("span.action-counter").get_by_text("selected", exact=False).wait_for()
        admin.click("#action-toggle")
        assert_text_unescaped(admin)
        admin.goto(web + f"/admin/django-rq/queues/{images_index}/failed/")
        admin.locator("#result_list td.failure-reason").filter(has_text="image file not found").first.wait_for()
        for path in (f"queues/{emails_index}/", f"queues/{emails_index}/finished/", f"queues/{emails_index}/started/",
                     f"queues/{emails_index}/deferred/", f"queues/{emails_index}/scheduled/", f"workers/{emails_index}/",
                     f"queues/{emails_index}/details/"):
            assert admin.goto(web + "/admin/django-rq/" + path).status == 200, path
            assert_text_unescaped(admin)
        admin.goto(web + f"/admin/django-rq/queues/{emails_index}/{bad_job}/")
        admin.get_by_role("link", name="View →").first.click()  # rq 3 keeps the traceback in the job's result
        admin.get_by_text("invalid e-mail address", exact=False).first.wait_for()
        # The traceback wraps: its last line, the reason, is not cut off at the right edge.
        assert admin.evaluate(
            "() => [...document.querySelectorAll('pre')].every(p => p.scrollWidth <= p.clientWidth + 1"
            " && p.getBoundingClientRect().right <= document.documentElement.clientWidth)"
        )
        assert_text_unescaped(admin)
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
        assert watch.errors == []

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
