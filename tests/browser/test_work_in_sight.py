"""rq-dashboard's workers page in a real Chromium, with a busy worker while the workers are suspended.

Real processes (the hardened rq-dashboard, a forking rqworker running a job); the page's server-rendered
part (app/queueing/dashboard_templates/rq_dashboard/workers.html) and rq-dashboard's own polling
must show the job and the suspension without a console error.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests import redis_db
from tests.browser.test_dashboards import Watch
from tests.e2e.processes import HttpClient, logs, manage, running, stack_env
from tests.signing import enqueue_signed
from tests.smtp import free_port

pytestmark = pytest.mark.e2e


def test_workers_page_busy_and_suspended_has_no_console_error(
    tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis, browser_context_factory
):
    env = stack_env(
        tmp_path, redis_db.redis_url(), redis_db_index,
        RQ_DASHBOARD_USERNAME="operator", RQ_DASHBOARD_PASSWORD="dash-password-42",
    )
    manage(env, "migrate", "--noinput")
    job = enqueue_signed(Queue("metrics", connection=redis_conn, serializer=JSONSerializer), "tests.fixtures.sleep_for", 30)
    port = free_port()
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqdashboard", "--port", str(port)], ["manage.py", "rqworker", "metrics"], log_dir=log_dir):
        dash = f"http://127.0.0.1:{port}"
        HttpClient(dash).wait_until_up("/")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).get_status() != JobStatus.STARTED:
            time.sleep(0.1)
        manage(env, "rqsuspend")
        watch = Watch()
        context = browser_context_factory(http_credentials={"username": "operator", "password": "dash-password-42"})
        page = watch.attach(context.new_page())
        page.goto(dash + "/0/view/workers")
        busy = page.locator('#work-in-sight tr[data-role="worker-in-sight"][data-state="busy"]')
        busy.wait_for(timeout=10_000)
        assert job.id in busy.inner_text() and "tests.fixtures.sleep_for" in busy.inner_text()
        assert "suspended" in page.locator('#work-in-sight [data-role="suspended"]').inner_text()
        # rq-dashboard's own list, polled from workers.json, shows the busy worker's job too.
        page.locator("#workers tr[data-role=worker]").first.wait_for(timeout=10_000)
        page.wait_for_timeout(3_000)  # a poll of the list (every 2.5 s) with the job still running
        assert job.id in page.locator("#workers").inner_html()
        assert watch.errors == [], watch.errors + [logs(log_dir)]
