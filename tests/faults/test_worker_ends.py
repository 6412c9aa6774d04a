"""The worker closes a job's outbox row on the end it sees, at once: no scheduler runs here, so
nothing else (the reconciler reading Redis later) could close it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rq.command import send_stop_job_command

from tests.faults.stack import Stack

pytestmark = pytest.mark.e2e


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_an_operators_stop_closes_the_row_as_cancelled_at_once(tmp_path: Path, private_redis):
    stack = Stack(tmp_path, private_redis, smtp_port=1)
    client = private_redis.client()
    try:
        job_id = stack.shell("""
from django.db import transaction
from tests import fixtures
with transaction.atomic():
    job = fixtures.sleep_for.delay(60)
print(job.id)""")
        stack.start_workers(1, queues=("metrics",))
        wait_for(lambda: client.hget(f"rq:job:{job_id}", "status") == b"started", 60, stack.log_text())
        send_stop_job_command(client, job_id)
        wait_for(lambda: client.hget(f"rq:job:{job_id}", "status") == b"stopped", 15, stack.log_text())
        wait_for(
            lambda: stack.query(f"select state from egoejo_backgroundjob where id = '{job_id}'")[0][0] != "pending", 5,
            "the stopped job's row is still pending",
        )
        [(state, reason)] = stack.query(f"select state, failure_reason from egoejo_backgroundjob where id = '{job_id}'")
        assert (state, reason) == ("cancelled", "stopped by an operator")
    finally:
        stack.stop()
