"""Async views under a real ASGI server (Daphne, app/asgi.py): `.aenqueue()`, `.adelay()` and
`aget_result()` record in the view's transaction and push after the response, like `.delay()`
under gunicorn; a real worker runs the jobs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests import redis_db
from tests.e2e.processes import HttpClient, logs, manage, running, stack_env
from tests.smtp import free_port

pytestmark = pytest.mark.e2e


def test_async_views_enqueue_through_the_outbox_and_read_results_under_daphne(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index, DJANGO_SETTINGS_MODULE="tests.e2e.asgi_settings")
    manage(env, "migrate", "--noinput")
    port = free_port()
    log_dir = tmp_path / "logs"
    with running(env, ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "app.asgi:application"], log_dir=log_dir):
        client = HttpClient(f"http://127.0.0.1:{port}")
        client.wait_until_up("/livez")
        status, body = client.request("GET", "/test/tasks/enqueue/?a=20&b=22")
        assert status == 200, (body, logs(log_dir))
        assert body["status"] == "READY" and body["pushed_before_response"] is False  # recorded, pushed after the response
        deadline = time.monotonic() + 10
        while not (redis_conn.exists(f"rq:job:{body['task_id']}") and redis_conn.exists(f"rq:job:{body['job_id']}")):
            assert time.monotonic() < deadline, ("not pushed after the response", logs(log_dir))
            time.sleep(0.1)

        assert client.request("GET", "/test/tasks/rolled-back/")[0] == 200
        with running(env, ["manage.py", "rqworker", "metrics", "--burst"], log_dir=tmp_path / "worker") as [worker]:
            assert worker.wait(timeout=60) == 0, logs(tmp_path / "worker")
        status, answer = client.request("GET", f"/test/tasks/{body['task_id']}/")
        assert (status, answer) == (200, {"status": "SUCCESSFUL", "return_value": 42, "attempts": 1}), logs(log_dir)
    # The rolled-back view's task was never recorded: only the two jobs of the first view exist.
    from tests.e2e.databases import query

    rows = query(env["DATABASE_URL"], "select func, state from egoejo_backgroundjob order by func")
    assert rows == [("tests.fixtures.add_numbers", "finished"), ("tests.fixtures.say_hello", "finished")]
