from __future__ import annotations

from django.conf import settings
from django.db import models


class UploadedImage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images")
    # Relative to MEDIA_ROOT; the job receives this path, never the row.
    original_path = models.CharField(max_length=255, unique=True)
    original_name = models.CharField(max_length=255)
    original_format = models.CharField(max_length=10)
    original_width = models.PositiveIntegerField()
    original_height = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.TextField(blank=True)
    # {"fitted": {"path": ..., "width": ..., "height": ...}, "thumbnail": {...}, "webp": {...}}
    renditions = models.JSONField(default=dict, blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name
