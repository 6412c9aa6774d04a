from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from .rows import insert_rows


class BackgroundJob(models.Model):
    """A job recorded in the database in the same transaction as the change that caused it.

    It is the durable side of an enqueue (the job's id is chosen before Redis sees it), and
    it says whose job it is, so `GET /api/jobs/<id>/` can refuse other users.
    """

    class State(models.TextChoices):
        PENDING = "pending"  # recorded, maybe not in Redis yet
        FINISHED = "finished"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=64)
    queue = models.CharField(max_length=32)
    func = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="background_jobs"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.func} [{self.id}]"

    @classmethod
    def record(cls, queue: str, func: str, calls: Sequence[tuple[str, list[Any], dict[str, Any]]], owner_id: int | None) -> None:
        """Record pending jobs, one per (job id, args, kwargs), in the caller's transaction.

        This runs inside the request's transaction for every enqueue: a plain INSERT (app.models.rows).
        """
        now = timezone.now()
        insert_rows(
            cls,
            _RECORD_FIELDS,
            [(job_id, queue, func, args, kwargs, owner_id, cls.State.PENDING.value, "", now) for job_id, args, kwargs in calls],
        )


_RECORD_FIELDS = ("id", "queue", "func", "args", "kwargs", "owner", "state", "failure_reason", "created_at")
