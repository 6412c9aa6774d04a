"""The outbox's plain INSERT / COPY writes what the ORM would, and fails the way the ORM would."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from app.queueing.models import _RECORD_FIELDS, BackgroundJob
from app.queueing.row_inserts import COPY_MIN_ROWS, insert_rows

FIELDS = (*_RECORD_FIELDS, "created_at")  # the outbox leaves created_at to the database; row_inserts.py is tested with it given

pytestmark = pytest.mark.django_db


def row(job_id: str, args: list[object], kwargs: dict[str, object], created_at=None):  # type: ignore[no-untyped-def]
    return (job_id, "metrics", "app.jobs.metrics.update_impact_dashboard_metrics", args, kwargs, None, "pending", "", created_at or timezone.now())


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS * 5], ids=["few rows", "many rows"])
def test_each_row_keeps_its_own_values_when_objects_are_shared_and_alternate(count):
    # Shared objects are prepared once; alternating ones must not leak from one row to the next.
    first, second = {"lang": "fr"}, {"lang": "en"}
    earlier, later = timezone.now() - timezone.timedelta(hours=1), timezone.now()
    rows = [row(uuid.uuid4().hex, [i, "é"], first if i % 3 else second, earlier if i % 2 else later) for i in range(count)]
    insert_rows(BackgroundJob, FIELDS, rows)
    stored = {job.id: job for job in BackgroundJob.objects.filter(pk__in=[r[0] for r in rows])}
    assert len(stored) == count
    for job_id, _, _, args, kwargs, _, _, _, created_at in rows:
        job = stored[job_id]
        assert (job.args, job.kwargs, job.created_at, job.state, job.owner_id) == (args, kwargs, created_at, "pending", None)


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS * 5], ids=["few rows", "many rows"])
def test_a_duplicate_key_is_djangos_integrity_error_and_writes_nothing(count):
    rows = [row(uuid.uuid4().hex, [i], {}) for i in range(count)]
    rows.append(rows[0])
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            insert_rows(BackgroundJob, FIELDS, rows)
    assert BackgroundJob.objects.count() == 0


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS * 5], ids=["few rows", "many rows"])
def test_a_row_with_a_missing_value_is_refused(count):
    rows = [row(uuid.uuid4().hex, [i], {}) for i in range(count)]
    rows[-1] = rows[-1][:-2]  # no failure_reason, no created_at: must not borrow the previous row's
    with pytest.raises(ValueError):
        insert_rows(BackgroundJob, FIELDS, rows)
    assert BackgroundJob.objects.count() == 0


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS * 5], ids=["few rows", "many rows"])
def test_a_value_that_cannot_be_stored_fails_and_leaves_the_callers_transaction_usable(count):
    rows = [row(uuid.uuid4().hex, [i], {}) for i in range(count)]
    rows[-1] = row(uuid.uuid4().hex, [object()], {})  # not JSON: fails half-way through a COPY
    with transaction.atomic():
        with pytest.raises(TypeError):
            insert_rows(BackgroundJob, FIELDS, rows)
        insert_rows(BackgroundJob, FIELDS, rows[:-1])  # the transaction goes on
    assert BackgroundJob.objects.count() == count - 1
