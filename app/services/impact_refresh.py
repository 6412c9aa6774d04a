"""Refreshes of a member's impact dashboard: requested (coalesced), then run by the metrics queue."""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

from django.db import connection, transaction
from redis.exceptions import RedisError

from app.jobs.metrics import update_impact_dashboard_metrics
from app.models import ImpactDashboard
from app.queueing.connections import redis_connection

from . import impact

logger = logging.getLogger(__name__)


def request_refresh(user_id: int) -> str | None:
    """Ask for a recomputation of `user_id`'s dashboard, coalesced with any refresh already queued.

    Inside a transaction the request waits for the commit (a rolled-back contribution
    changes nothing). Returns the id of the queued refresh — new or already waiting — or
    None when deferred to the commit.
    """
    if connection.in_atomic_block:
        transaction.on_commit(lambda: _trigger(user_id), robust=True)
        return None
    return _trigger(user_id)


def _trigger(user_id: int) -> str:
    job_id = uuid4().hex
    key = impact.PENDING_KEY.format(user_id=user_id)
    try:
        redis = redis_connection()
        if not redis.set(key, job_id, nx=True, ex=impact.PENDING_TTL_SECONDS):
            existing = redis.get(key)
            if existing is not None:
                return existing.decode()
            redis.set(key, job_id, ex=impact.PENDING_TTL_SECONDS)
    except RedisError:
        # Without Redis we can't coalesce; the outbox keeps the job, and a duplicate refresh is harmless.
        logger.warning("Redis unavailable: impact refresh for user %s enqueued without coalescing", user_id)
    return update_impact_dashboard_metrics.with_options(job_id=job_id).delay(user_id).id


def dashboard_payload(user_id: int) -> tuple[dict[str, Any], str | None]:
    """The member's dashboard as JSON, and the id of a refresh job when one is queued."""
    dashboard = ImpactDashboard.objects.filter(user_id=user_id).first()
    refresh_job = request_refresh(user_id) if impact.is_stale(dashboard) else None
    mine: dict[str, Any] | None = None
    if dashboard is not None:
        mine = {
            "total_contributed": str(dashboard.total_contributed),
            "contributions_count": dashboard.contributions_count,
            "projects_supported": dashboard.projects_supported,
            "last_contribution_at": dashboard.last_contribution_at.isoformat() if dashboard.last_contribution_at else None,
            "computed_at": dashboard.computed_at.isoformat(),
        }
    return {"dashboard": mine, "platform": impact.platform_totals(), "stale": refresh_job is not None}, refresh_job
