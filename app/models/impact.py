from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models


class ImpactDashboard(models.Model):
    """A member's impact totals, as last computed by the metrics queue (never by a request)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="impact_dashboard"
    )
    total_contributed = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    contributions_count = models.PositiveIntegerField(default=0)
    projects_supported = models.PositiveIntegerField(default=0)
    last_contribution_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Impact of user {self.user_id}"
