"""The outbox: every job, recorded in the database in the transaction that caused it.

A row is the durable side of an enqueue (the job's id is chosen before Redis sees it) and says
whose job it is, so `GET /api/jobs/<id>/` can refuse other users. Its state machine
(docs/reliability.md):

    pending ──success──────────────▶ finished
       │    ──final failure, abandon limit, horse death, refused──▶ failed
       │    ──operator's cancel, stop or delete (either dashboard)──▶ cancelled
       └──── Redis lost it ──▶ (stays pending, re-sent by the reconciler)

Only `pending` rows are ever pushed again; the three end states are final.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from .row_inserts import insert_rows


class BackgroundJob(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"  # recorded, maybe not in Redis yet, maybe running
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"  # by an operator: final, never re-sent

    id = models.CharField(primary_key=True, max_length=64)
    queue = models.CharField(max_length=32)
    func = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    # Who may read the job's state. No database constraint: the owner comes from the job's own
    # arguments (a user deleted since must not make the enqueueing transaction fail).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="background_jobs",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    failure_reason = models.TextField(blank=True)
    # The database's clock, not the web host's: the reconciler compares ages on that clock alone.
    created_at = models.DateTimeField(db_default=Now())
    due_at = models.DateTimeField(null=True, blank=True)  # a delayed job's due time (UTC)
    ended_at = models.DateTimeField(null=True, blank=True)
    # What its attempts came to, written with the end by the worker (outcomes.py): read by the
    # standard task API's get_result once RQ's TTLs have dropped the job (tasks_backend.py).
    outcome = models.JSONField(null=True, blank=True)
    # The enqueuer's W3C traceparent when tracing is on (tracing.py); the job carries it to its worker.
    trace_parent = models.CharField(max_length=55, null=True, blank=True)

    # -- the ledger: the job's whole story, kept as long as the row (QUEUEING_LEDGER_RETENTION_DAYS) --
    # Attempts that have ended so far (a failure, a worker's death, the last run): a pending row with
    # attempts > 0 is *retrying*. Written by the worker with each retry and with the end, never at start
    # (a running attempt is read live from Redis).
    attempts = models.PositiveIntegerField(db_default=0)  # database defaults: record()'s INSERT names none of these
    max_attempts = models.PositiveIntegerField(null=True, blank=True)  # the declaration's retries + 1
    started_at = models.DateTimeField(null=True, blank=True)  # the first attempt's start: wait = started_at - due
    next_retry_at = models.DateTimeField(null=True, blank=True)  # while a retry waits its backoff
    last_error = models.TextField(blank=True, db_default="")  # the last failed attempt's error, one line
    # One entry per ended attempt ({"n", "started_at", "ended_at", "duration", "worker", "host", "pid",
    # "outcome", "error"}), oldest first; null: none yet. The worker writes it whole (outcomes.ledger).
    history = models.JSONField(null=True, blank=True)
    # One entry per operator action ({"action", "by", "at", "note"}), written by the task browser
    # alone (task_browser.py): a column of its own, so neither writer can drop the other's entries.
    actions = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "egoejo_backgroundjob"  # kept from before the queueing layer was an app of its own
        ordering = ["-created_at"]
        verbose_name = "job"
        verbose_name_plural = "jobs (task browser)"
        indexes = [
            # The reconciler pages through pending rows by id.
            models.Index(fields=["id", "created_at"], name="outbox_pending_idx", condition=models.Q(state="pending")),
            # The purge by ended_at; the task browser's graphs (ledger_graphs.py) read the rows ended in
            # the last hour or day from the index alone (PostgreSQL's INCLUDE). Partial: an enqueue's
            # INSERT (a pending row) never writes it.
            models.Index(
                fields=["ended_at"], name="ledger_ended_idx", condition=~models.Q(state="pending"),
                include=["queue", "state", "attempts", "started_at", "due_at", "created_at"],
            ),
            # The task browser (admin.py): its list, newest first, and its time-range filter alone.
            models.Index(fields=["created_at"], name="ledger_created_idx"),
            # The task browser's search by function + state (+ time range), newest first.
            models.Index(fields=["func", "state", "created_at"], name="ledger_func_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.func} [{self.id}]"

    @classmethod
    def record(
        cls,
        queue: str,
        func: str,
        calls: Sequence[tuple[str, list[Any], dict[str, Any]]],
        owner_id: int | None,
        due_at: Any = None,
        traceparent: str | None = None,
        max_attempts: int = 1,
    ) -> None:
        """Record pending jobs, one per (job id, args, kwargs), in the caller's transaction.

        This runs inside the request's transaction for every enqueue: a plain INSERT (row_inserts.py).
        `created_at` is left to the database's default (its own clock); `max_attempts` is the
        declaration's retries + 1, the ledger's other columns start at their database defaults.
        """
        pending = cls.State.PENDING.value
        fields: tuple[str, ...] = (*_RECORD_FIELDS, "max_attempts")
        extra: tuple[Any, ...] = (max_attempts,)
        if traceparent is not None:  # tracing on (tracing.py): the same rows, with their trace context
            fields, extra = (*fields, "due_at", "trace_parent"), (*extra, due_at, traceparent)
        elif due_at is not None:
            fields, extra = (*fields, "due_at"), (*extra, due_at)
        insert_rows(cls, fields, [(job_id, queue, func, args, kwargs, owner_id, pending, "", *extra) for job_id, args, kwargs in calls])


_RECORD_FIELDS = ("id", "queue", "func", "args", "kwargs", "owner", "state", "failure_reason")
