from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class Project(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"  # not published: unknown to the API (404)
        OPEN = "open", "open"  # the only state that takes contributions
        CLOSED = "closed", "closed"  # funded or stopped: listed, refuses contributions (409)
        ARCHIVED = "archived", "archived"  # kept for the record: listed, refuses contributions (409)

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class Contribution(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contributions")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="contributions")
    amount = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The client's Idempotency-Key header: the same key from the same member records one contribution.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="contribution_idempotency_key_once_per_member",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.project_id}: {self.amount}"
