from __future__ import annotations

from django.conf import settings
from django.db import models


class UploadedImage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images")
    # The original's key in the media storage (local or S3); the job receives it, never the row.
    original_path = models.CharField(max_length=255, unique=True)
    original_name = models.CharField(max_length=255)
    original_format = models.CharField(max_length=10)
    # As displayed: after the EXIF orientation (a portrait photo stored 4000x3000 is 3000x4000 here).
    original_width = models.PositiveIntegerField()
    original_height = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.TextField(blank=True)
    # {"display": {"key": ..., "width": ..., "height": ..., "content_type": ..., "bytes": ...},
    #  "display_webp": {...}, "thumbnail": {...}}: one UPDATE switches readers to a new set.
    renditions = models.JSONField(default=dict, blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name
