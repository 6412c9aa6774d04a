"""Impact dashboards: computed in the database, stored per member, read by the API."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Sum
from django.utils import timezone

from app.models import Contribution, ImpactDashboard

CHUNK_SIZE = 2000


def _totals(contributions: Any) -> dict[str, Any]:
    return contributions.aggregate(
        total=Sum("amount"), count=Count("id"), projects=Count("project", distinct=True), last=Max("created_at")
    )


def recompute_for_user(user_id: int) -> ImpactDashboard | None:
    """One aggregate query and one upsert; None when the user no longer exists."""
    if not get_user_model().objects.filter(pk=user_id).exists():
        return None
    totals = _totals(Contribution.objects.filter(user_id=user_id))
    dashboard = ImpactDashboard(
        user_id=user_id,
        total_contributed=totals["total"] or Decimal("0"),
        contributions_count=totals["count"],
        projects_supported=totals["projects"],
        last_contribution_at=totals["last"],
        computed_at=timezone.now(),
    )
    ImpactDashboard.objects.bulk_create(
        [dashboard],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["total_contributed", "contributions_count", "projects_supported", "last_contribution_at", "computed_at"],
    )
    return dashboard


def refresh_all() -> int:
    """Recompute every member's dashboard, a chunk of members per statement pair."""
    User = get_user_model()
    now = timezone.now()
    refreshed = 0
    last_id = 0
    while True:
        rows = list(
            User.objects.filter(pk__gt=last_id)
            .order_by("pk")
            .annotate(
                total=Sum("contributions__amount"),
                count=Count("contributions"),
                projects=Count("contributions__project", distinct=True),
                last=Max("contributions__created_at"),
            )
            .values_list("pk", "total", "count", "projects", "last")[:CHUNK_SIZE]
        )
        if not rows:
            return refreshed
        ImpactDashboard.objects.bulk_create(
            [
                ImpactDashboard(
                    user_id=pk,
                    total_contributed=total or Decimal("0"),
                    contributions_count=count,
                    projects_supported=projects,
                    last_contribution_at=last,
                    computed_at=now,
                )
                for pk, total, count, projects, last in rows
            ],
            update_conflicts=True,
            unique_fields=["user"],
            update_fields=["total_contributed", "contributions_count", "projects_supported", "last_contribution_at", "computed_at"],
        )
        refreshed += len(rows)
        last_id = rows[-1][0]


def platform_totals() -> dict[str, Any]:
    totals = _totals(Contribution.objects.all())
    return {
        "total_contributed": str(totals["total"] or Decimal("0")),
        "contributions_count": totals["count"],
        "projects_supported": totals["projects"],
    }


def is_stale(dashboard: ImpactDashboard | None) -> bool:
    if dashboard is None:
        return True
    if dashboard.computed_at < timezone.now() - timedelta(seconds=settings.IMPACT_STALE_AFTER_SECONDS):
        return True
    newest = Contribution.objects.filter(user_id=dashboard.user_id).aggregate(last=Max("created_at"))["last"]
    return newest is not None and (dashboard.last_contribution_at is None or newest > dashboard.last_contribution_at)


def request_refresh(user_id: int) -> str:
    from app.jobs import metrics
    from app.jobs.queues import enqueue

    return enqueue(metrics.update_impact_dashboard_metrics, user_id, owner_id=user_id)


def dashboard_payload(user_id: int) -> tuple[dict[str, Any], str | None]:
    """The member's dashboard as JSON, and the id of a refresh job when one was enqueued."""
    dashboard = ImpactDashboard.objects.filter(user_id=user_id).first()
    refresh_job = request_refresh(user_id) if is_stale(dashboard) else None
    mine: dict[str, Any] | None = None
    if dashboard is not None:
        mine = {
            "total_contributed": str(dashboard.total_contributed),
            "contributions_count": dashboard.contributions_count,
            "projects_supported": dashboard.projects_supported,
            "last_contribution_at": dashboard.last_contribution_at.isoformat() if dashboard.last_contribution_at else None,
            "computed_at": dashboard.computed_at.isoformat(),
        }
    return {"dashboard": mine, "platform": platform_totals(), "stale": refresh_job is not None}, refresh_job
