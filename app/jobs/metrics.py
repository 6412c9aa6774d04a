"""Jobs of the `metrics` queue."""

from __future__ import annotations

import logging

from app.services import impact

logger = logging.getLogger("app.jobs.metrics")


def update_impact_dashboard_metrics(user_id: int) -> dict[str, object]:
    impact.clear_pending(user_id)  # first: a trigger from now on must lead to one more run
    dashboard = impact.recompute_for_user(user_id)
    if dashboard is None:
        logger.info("impact refresh skipped: no user %s", user_id)
        return {"user_id": user_id, "updated": False}
    return {"user_id": user_id, "updated": True, "total_contributed": str(dashboard.total_contributed)}


def refresh_all_dashboards() -> dict[str, int]:
    return {"refreshed": impact.refresh_all()}
