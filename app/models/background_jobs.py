from __future__ import annotations

from django.conf import settings
from django.db import models


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
