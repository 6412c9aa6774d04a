"""Impact dashboards: computed in the database, stored per member, read by the API.

Totals are computed by SQL (one aggregate per member, one INSERT … SELECT … GROUP BY … ON
CONFLICT statement for everybody), never by looping over rows in Python.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Max, Sum
from django.utils import timezone

from app.models import Contribution, ImpactDashboard
from app.queueing.connections import redis_connection
from app.services import redis_keys

logger = logging.getLogger(__name__)

# The newest waiting refresh is remembered under redis_keys.impact_pending (value: its job id), so
# that any number of triggers while it waits lead to one run: a trigger outside a transaction
# joins it, a refresh recorded with a contribution claims the key and the earlier ones skip when
# they run. The job releases the key when it starts, so a trigger arriving during the run queues
# exactly one more.
# Bounds how long a lost marker (job vanished with Redis data) can hold back new refreshes.
PENDING_TTL_SECONDS = 600

_UPDATE_FIELDS = ["total_contributed", "contributions_count", "projects_supported", "last_contribution_at", "computed_at"]


def recompute_for_user(user_id: int) -> ImpactDashboard | None:
    """One aggregate query and one upsert; None when the user no longer exists."""
    rows = list(
        get_user_model()
        .objects.filter(pk=user_id)
        .annotate(
            total=Sum("contributions__amount"),
            count=Count("contributions"),
            projects=Count("contributions__project", distinct=True),
            last=Max("contributions__created_at"),
        )
        .values_list("total", "count", "projects", "last")
    )
    if not rows:
        return None
    total, count, projects, last = rows[0]
    dashboard = ImpactDashboard(
        user_id=user_id,
        total_contributed=total or Decimal("0"),
        contributions_count=count,
        projects_supported=projects,
        last_contribution_at=last,
        computed_at=timezone.now(),
    )
    ImpactDashboard.objects.bulk_create(
        [dashboard], update_conflicts=True, unique_fields=["user"], update_fields=_UPDATE_FIELDS
    )
    return dashboard


def _refresh_all_sql() -> str:
    user_table = connection.ops.quote_name(get_user_model()._meta.db_table)
    contribution = connection.ops.quote_name(Contribution._meta.db_table)
    dashboard = connection.ops.quote_name(ImpactDashboard._meta.db_table)
    # `WHERE u.id > %s` also resolves SQLite's INSERT … SELECT … ON CONFLICT parsing ambiguity.
    return f"""
        INSERT INTO {dashboard}
            (user_id, total_contributed, contributions_count, projects_supported, last_contribution_at, computed_at)
        SELECT u.id, COALESCE(SUM(c.amount), 0), COUNT(c.id), COUNT(DISTINCT c.project_id), MAX(c.created_at), %s
        FROM {user_table} u LEFT JOIN {contribution} c ON c.user_id = u.id
        WHERE u.id > %s AND u.id <= %s
        GROUP BY u.id
        ON CONFLICT (user_id) DO UPDATE SET
            total_contributed = excluded.total_contributed,
            contributions_count = excluded.contributions_count,
            projects_supported = excluded.projects_supported,
            last_contribution_at = excluded.last_contribution_at,
            computed_at = excluded.computed_at
    """


REFRESH_ALL_CHUNK = 50_000


def refresh_all(chunk: int = REFRESH_ALL_CHUNK) -> int:
    """Recompute every member's dashboard inside the database, `chunk` members per statement.

    Two statements for up to `chunk` members (the id range, then the upsert): the work is
    the database's, memory in this process stays flat whatever the number of members.
    """
    User = get_user_model()
    high = User.objects.aggregate(high=Max("pk"))["high"]
    if high is None:
        return 0
    now: datetime = timezone.now()
    sql = _refresh_all_sql()
    refreshed = 0
    with connection.cursor() as cursor:
        start = 0
        while start < high:
            cursor.execute(sql, [now, start, start + chunk])
            refreshed += max(cursor.rowcount, 0)
            start += chunk
    return refreshed


def platform_totals() -> dict[str, Any]:
    totals = Contribution.objects.aggregate(
        total=Sum("amount"), count=Count("id"), projects=Count("project", distinct=True), members=Count("user", distinct=True)
    )
    return {
        # Two decimals whatever the database (SQLite's SUM drops trailing zeros: "25.5").
        "total_contributed": str((totals["total"] or Decimal("0")).quantize(Decimal("0.01"))),
        "contributions_count": totals["count"],
        "projects_supported": totals["projects"],
        "contributors": totals["members"],
    }


def is_stale(dashboard: ImpactDashboard | None) -> bool:
    if dashboard is None:
        return True
    if dashboard.computed_at < timezone.now() - timedelta(seconds=settings.IMPACT_STALE_AFTER_SECONDS):
        return True
    newest = Contribution.objects.filter(user_id=dashboard.user_id).aggregate(last=Max("created_at"))["last"]
    return newest is not None and (dashboard.last_contribution_at is None or newest > dashboard.last_contribution_at)


# At a run's start: the marker is released if it names this run (a trigger from now on must
# queue one more run, it can't join this one); otherwise the marker's value is returned.
_START = """
local marker = redis.call('GET', KEYS[1])
if marker == ARGV[1] then redis.call('DEL', KEYS[1]) return false end
return marker
"""


def start_refresh(user_id: int, job_id: str | None) -> str | None:
    """The first step of a refresh run. Returns the id of another refresh of this member that
    waits behind this one (the marker names it and its outbox row is pending): that run starts
    later, so it sees every commit this one would, and this run can be skipped. None: go on.

    A run that cannot reach Redis fails (transient, retried) rather than going on: its marker,
    left in place, would let later requests skip for a run whose query may predate them.
    """
    if job_id is None:
        return None  # called directly, not as a queued run: nothing to coalesce with
    marker = redis_connection().eval(_START, 1, redis_keys.impact_pending(user_id), job_id)
    if marker is None:
        return None
    other = marker.decode()
    return other if refresh_waiting(other) else None


def refresh_waiting(job_id: str) -> bool:
    """Whether the refresh a marker names is recorded and not ended (the outbox row is the truth)."""
    from app.queueing.models import BackgroundJob

    return BackgroundJob.objects.filter(pk=job_id, state=BackgroundJob.State.PENDING).exists()
