"""A standard task (Django's task API) whose worker is SIGKILLed mid-task runs again once, and
`get_result` follows it across the kill and after RQ's data is gone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.faults.stack import Stack
from tests.settle import outbox_pending, settle

pytestmark = pytest.mark.e2e


def wait_for(predicate, timeout: float, what) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what()
        time.sleep(0.2)


def result_of(stack: Stack, task_id: str) -> list:  # type: ignore[type-arg]
    """get_result in another process, through the standard API only."""
    return json.loads(stack.shell(f"""
import json
from tests import fixtures
r = fixtures.count_runs.get_result({task_id!r})
print(json.dumps([r.status, r.attempts, r.return_value if r.status == "SUCCESSFUL" else None, len(r.errors)]))"""))


def test_a_task_whose_worker_is_killed_mid_task_runs_again_once_and_its_result_says_so(tmp_path: Path, private_redis):
    runs = tmp_path / "runs.txt"
    stack = Stack(tmp_path, private_redis, smtp_port=1)
    lines = lambda: runs.read_text().split() if runs.exists() else []  # noqa: E731
    try:
        task_id = stack.shell(f"""
from django.db import transaction
from tests import fixtures
with transaction.atomic():
    result = fixtures.count_runs.enqueue({str(runs)!r}, 3)
print(result.id)""")
        assert result_of(stack, task_id) == ["READY", 0, None, 0]
        stack.start_workers(1, queues=("metrics",))
        wait_for(lambda: lines() == ["started", "1"], 60, stack.log_text)
        assert result_of(stack, task_id)[0] == "RUNNING"
        stack.kill_workers()  # the worker and its work-horse, mid-task
        stack.start_scheduler()
        stack.start_workers(1, queues=("metrics",))
        wait_for(lambda: stack.query(f"select state from egoejo_backgroundjob where id = '{task_id}'") == [("finished",)], 120, stack.log_text)
        assert lines() == ["started", "1", "started", "2", "done", "2"]  # ran again once, told it is attempt 2
        assert result_of(stack, task_id) == ["SUCCESSFUL", 2, 2, 0]
        private_redis.client().flushdb()  # RQ's TTLs, sooner: the answer is the outbox's now
        assert result_of(stack, task_id) == ["SUCCESSFUL", 2, 2, 0]
        settle(stack.redis, outbox_pending(stack.database_url), describe=stack.log_text)  # tests/settle.py
        assert lines() == ["started", "1", "started", "2", "done", "2"]  # and never a third time
    finally:
        stack.stop()
