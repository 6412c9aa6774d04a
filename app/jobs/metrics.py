"""Jobs of the `metrics` queue, and the recurring refresh of every dashboard."""

from __future__ import annotations

import logging

from django.conf import settings
from rq import get_current_job

from app.queueing import Retries, declare_queue, job, recurring
from app.services import impact

logger = logging.getLogger(__name__)

# A dashboard refresh within its 15-minute cadence.
metrics = declare_queue("metrics", timeout=600, result_ttl=3_600, retries=Retries(3, base=30, cap=300), wait_budget=900)


@job(metrics, owner="user_id")
def update_impact_dashboard_metrics(user_id: int) -> dict[str, object]:
    current = get_current_job()
    waiting = impact.start_refresh(user_id, current.id if current else None)
    if waiting is not None:
        logger.info("impact refresh of user %s skipped: %s waits behind it and will see the same", user_id, waiting)
        return {"user_id": user_id, "updated": False, "joined": waiting}
    dashboard = impact.recompute_for_user(user_id)
    if dashboard is None:
        logger.info("impact refresh skipped: no user %s", user_id)
        return {"user_id": user_id, "updated": False}
    return {"user_id": user_id, "updated": True, "total_contributed": str(dashboard.total_contributed)}


@recurring(lambda: settings.IMPACT_REFRESH_CRON, id="refresh-all-dashboards")
@job(metrics)
def refresh_all_dashboards() -> dict[str, int]:
    return {"refreshed": impact.refresh_all()}
