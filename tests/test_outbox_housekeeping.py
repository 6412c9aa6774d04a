"""The outbox keeps what it must and no more: ended rows are purged after a week, in bounded
batches, on the database's clock; pending rows are never purged; its age metric reads the
database's clock too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.db.models import F
from django.utils import timezone

from app.queueing import keys, outbox
from app.queueing.models import BackgroundJob
from app.queueing.scheduling import ProjectScheduler

pytestmark = pytest.mark.django_db

State = BackgroundJob.State


def make_rows(prefix: str, count: int, state: str, ended_ago: timedelta | None, created_ago: timedelta = timedelta(0)) -> list[str]:
    ids = [f"{prefix}-{n}" for n in range(count)]
    BackgroundJob.objects.bulk_create(
        BackgroundJob(id=job_id, queue="emails", func="app.jobs.emails.send_email", state=state) for job_id in ids
    )
    # Ages set on the database's clock, as the workers set `ended_at` (`Now()`).
    rows = BackgroundJob.objects.filter(pk__in=ids)
    rows.update(created_at=F("created_at") - created_ago)
    if ended_ago is not None:
        rows.update(ended_at=F("created_at") - ended_ago + created_ago)
    return ids


def left(ids: list[str]) -> set[str]:
    return set(BackgroundJob.objects.filter(pk__in=ids).values_list("pk", flat=True))


def test_the_purge_deletes_week_old_ended_rows_in_batches_and_never_a_pending_one():
    old_finished = make_rows("finished", 7, State.FINISHED, ended_ago=timedelta(days=8))
    old_failed = make_rows("failed", 2, State.FAILED, ended_ago=timedelta(days=8))
    old_cancelled = make_rows("cancelled", 2, State.CANCELLED, ended_ago=timedelta(days=8))
    recent = make_rows("recent", 3, State.FINISHED, ended_ago=timedelta(days=6))
    # Pending for a month (Redis lost it, the reconciler has yet to send it): still owed a run.
    old_pending = make_rows("pending", 2, State.PENDING, ended_ago=None, created_ago=timedelta(days=30))

    with CountingDeletes() as deletes:
        assert outbox.purge_ended(batch=3) == 11
    assert deletes.count == 4  # 3 + 3 + 3 + 2: no statement deletes more than a batch
    assert left(old_finished + old_failed + old_cancelled) == set()
    assert left(recent) == set(recent)
    assert left(old_pending) == set(old_pending)
    assert outbox.purge_ended(batch=3) == 0


def test_the_purge_reads_the_databases_clock_not_the_hosts(monkeypatch):
    """A scheduler host whose clock runs three days ahead must not purge rows five days old."""
    rows = make_rows("five-days", 2, State.FINISHED, ended_ago=timedelta(days=5))
    ahead = timezone.now() + timedelta(days=3)
    monkeypatch.setattr(timezone, "now", lambda: ahead)
    assert outbox.purge_ended() == 0
    assert left(rows) == set(rows)


@pytest.mark.django_db(transaction=True)  # the scheduler's pass closes a connection found inside a transaction
def test_the_scheduler_purges_once_an_hour(redis_conn):
    first = make_rows("first", 2, State.FINISHED, ended_ago=timedelta(days=9))
    ProjectScheduler(queue_name="metrics", interval=5, connection=redis_conn).enqueue_jobs()
    assert left(first) == set()
    assert 3500 < redis_conn.ttl(keys.OUTBOX_PURGED) <= 3600

    later = make_rows("later", 2, State.FINISHED, ended_ago=timedelta(days=9))
    ProjectScheduler(queue_name="metrics", interval=5, connection=redis_conn).enqueue_jobs()
    assert left(later) == set(later)  # not again within the hour: one scan an hour is enough
    redis_conn.delete(keys.OUTBOX_PURGED)  # the hour is over
    ProjectScheduler(queue_name="metrics", interval=5, connection=redis_conn).enqueue_jobs()
    assert left(later) == set()


def test_a_backlog_larger_than_a_pass_goes_on_at_the_next_pass(redis_conn, monkeypatch):
    """A pass deletes a bounded number of rows (it runs under the scheduler's 8 s lock); what is
    left is purged by the next passes, not an hour later."""
    monkeypatch.setattr(outbox, "PURGE_BATCH", 2)
    monkeypatch.setattr(outbox, "PURGE_BATCHES_PER_PASS", 2)
    backlog = make_rows("backlog", 9, State.FINISHED, ended_ago=timedelta(days=10))
    assert outbox.purge_hourly(redis_conn) == 4
    assert outbox.purge_hourly(redis_conn) == 4
    assert outbox.purge_hourly(redis_conn) == 1  # the last of it: done for the hour
    assert left(backlog) == set()
    assert outbox.purge_hourly(redis_conn) == 0 and redis_conn.exists(keys.OUTBOX_PURGED)


def test_the_oldest_pending_age_reads_the_databases_clock(monkeypatch):
    """/metrics runs on the web: a web host's clock a day off made the outbox alert fire (or
    stay silent) whatever the outbox held."""
    make_rows("waiting", 1, State.PENDING, ended_ago=None, created_ago=timedelta(seconds=600))
    skewed = timezone.now() + timedelta(days=1)
    monkeypatch.setattr(timezone, "now", lambda: skewed)
    stats = outbox.pending_stats()
    assert stats["pending"] == 1
    assert 600 <= stats["oldest_pending_age_seconds"] < 700


def test_an_empty_outbox_has_no_pending_age():
    assert outbox.pending_stats() == {"pending": 0, "oldest_pending_age_seconds": 0.0}


class CountingDeletes:
    """Counts the DELETE statements on the outbox table."""

    def __enter__(self) -> CountingDeletes:
        self.count = 0
        self._wrapper = db_connection.execute_wrapper(self._count)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wrapper.__exit__(*exc)

    def _count(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.lstrip().upper().startswith("DELETE") and "egoejo_backgroundjob" in sql:
            self.count += 1
        return execute(sql, params, many, context)
