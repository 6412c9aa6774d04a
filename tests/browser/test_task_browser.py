"""The task browser (app/queueing/admin.py BackgroundJobAdmin) in a real Chromium, served by gunicorn.

An operator logs in, opens the list, searches it, opens a job page (its live panel reads Redis),
cancels that job from its page, and opens the graphs: no console error and no uncaught exception
on any page, under the site's Content-Security-Policy (the live panel's script is a static file).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests import redis_db
from tests.browser.test_dashboards import Watch, assert_text_unescaped
from tests.e2e.processes import HttpClient, manage, running, stack_env
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

PAYLOAD = "<img src=x onerror=alert('arg')>"

SETUP = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from django.db import transaction
from app.queueing.models import BackgroundJob
from tests.enqueue import enqueue
from tests.fixtures import say_hello
user = get_user_model().objects.create_user('opal', 'opal@example.org', 'opal-password-42', is_staff=True)
user.user_permissions.add(Permission.objects.get(codename='admin', content_type__app_label='django_rq'))
now = timezone.now()
BackgroundJob.objects.create(
    id='failed-one', queue='emails', func='app.jobs.emails.send_email', args=[{payload!r}], kwargs={{}}, state='failed',
    created_at=now - timedelta(minutes=30), started_at=now - timedelta(minutes=29), ended_at=now - timedelta(minutes=28),
    attempts=2, max_attempts=2, last_error='PermanentJobError: ' + {payload!r},
    history=[{{'n': 1, 'worker': 'w1', 'host': 'h', 'pid': 1, 'started_at': 'a', 'ended_at': 'b', 'duration': 1, 'outcome': 'failed', 'error': {payload!r}}}],
)
with transaction.atomic():
    queued = enqueue(say_hello, 'browser')
print(queued)
"""


def test_operator_browses_searches_acts_and_sees_graphs_without_console_errors(
    tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis, browser_context_factory
):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    manage(env, "migrate", "--noinput")
    queued = manage(env, "shell", "-c", SETUP.format(payload=PAYLOAD)).stdout.strip().splitlines()[-1]
    manage(env, "collectstatic", "--noinput")
    port = free_port()
    dialogs: list[str] = []
    with running(env, ["-m", "gunicorn", "app.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"], log_dir=tmp_path / "logs"):
        web = f"http://127.0.0.1:{port}"
        HttpClient(web).wait_until_up()
        watch = Watch()
        page = watch.attach(browser_context_factory().new_page())
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(web + "/admin/login/?next=/admin/")
        page.fill("#id_username", "opal")
        page.fill("#id_password", "opal-password-42")
        page.click("input[type=submit]")
        page.wait_for_url(web + "/admin/")
        page.get_by_role("link", name="Jobs (task browser)").click()
        page.locator("#result_list").get_by_text("failed-one").wait_for()
        assert page.locator("a.addlink").count() == 0 and page.locator("select[name=action]").count() == 0
        # Search the argument text, then filter retrying/failed and a time range from the sidebar.
        page.fill("#searchbar", "onerror")
        page.press("#searchbar", "Enter")
        page.wait_for_url("**q=onerror**")
        assert page.locator("#result_list tbody tr").count() == 1
        page.get_by_role("link", name="last day").click()
        page.wait_for_url("**created_at__gte=**")
        page.locator("#result_list").get_by_text("failed-one").wait_for()
        assert_text_unescaped(page)
        # The failed job's page: its attempt, its error as text, a requeue button.
        page.goto(web + "/admin/queueing/backgroundjob/failed-one/change/")
        page.locator("tr[data-role=attempt]").first.wait_for()
        assert PAYLOAD in page.locator("#job-attempts").inner_text()
        assert page.locator("#job-actions input[name=requeue]").count() == 1
        # The queued job's page: the live panel reads Redis, then the operator cancels it.
        page.goto(web + f"/admin/queueing/backgroundjob/{queued}/change/")
        page.locator("[data-role=live-summary]").filter(has_text="queued since").wait_for(timeout=10_000)
        page.locator("#job-actions input[name=cancel]").click()
        page.wait_for_load_state()
        assert page.locator("ul.messagelist").count() == 1, (page.url, page.locator("body").inner_text()[:2000])
        assert "Cancel: cancelled" in page.locator("ul.messagelist").inner_text(), page.locator("ul.messagelist").inner_text()
        page.locator("tr[data-role=operator-action]").filter(has_text="opal").wait_for()
        page.locator("[data-role=shown-state]").filter(has_text="cancelled").wait_for()
        # The graphs, from the list's link.
        page.goto(web + "/admin/queueing/backgroundjob/")
        page.get_by_role("link", name="Graphs per queue").click()
        page.locator("#graphs-hour tr[data-queue=emails] svg.ledger-graph").first.wait_for()
        assert page.locator("svg.ledger-graph").count() == 2 * 3 * 4
        page.locator("#graphs-day").wait_for()
        page.wait_for_timeout(500)  # any late console error
    assert redis_conn.hget(f"rq:job:{queued}", "status") == b"canceled"
    assert dialogs == []
    assert watch.errors == []
