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
from app.queueing.locks import TokenLock
from app.services import impact, redis_keys

logger = logging.getLogger(__name__)


def request_refresh(user_id: int) -> str:
    """Ask for a recomputation of `user_id`'s dashboard, coalesced with any refresh waiting.

    Inside a transaction (a contribution) the refresh is recorded in it, so it commits with what
    calls for it: a process killed right after the commit loses nothing
    (tests/test_metrics.py::test_a_process_killed_right_after_a_contribution_commits_loses_no_refresh).
    It can't join a waiting refresh there, since that one might run before the
    commit; instead, after the commit, it claims the marker, and the earlier waiting refreshes
    skip when they run (impact.start_refresh). A rolled-back transaction leaves nothing.
    Outside a transaction it joins a waiting refresh, or queues one. Returns the refresh's id.
    """
    if connection.in_atomic_block:
        job_id = uuid4().hex
        # The claim is registered before the push: on-commit hooks run in order, and this run
        # must find the marker naming it when it starts (else it would leave the marker to
        # name a run already going, and a later request could skip for it).
        transaction.on_commit(lambda: _claim_marker(user_id, job_id), robust=True)
        return update_impact_dashboard_metrics.with_options(job_id=job_id).delay(user_id).id
    return _trigger(user_id)


def _marker(redis: Any, user_id: int, job_id: str) -> TokenLock:
    """The member's pending-refresh marker, held by the refresh's job id: released only while it
    still names this job (a later trigger may have taken it over)."""
    return TokenLock(redis, redis_keys.impact_pending(user_id), impact.PENDING_TTL_SECONDS, token=job_id)


def _claim_marker(user_id: int, job_id: str) -> None:
    try:
        _marker(redis_connection(), user_id, job_id).take_over()
    except RedisError:
        # The refresh still runs (it is recorded); the earlier ones just run too.
        logger.warning("Redis unavailable: impact refresh %s of user %s not coalesced", job_id, user_id)


def _trigger(user_id: int) -> str:
    job_id = uuid4().hex
    marker: TokenLock | None = None
    try:
        marker = _marker(redis_connection(), user_id, job_id)
        if not marker.acquire():
            existing = marker.connection.get(marker.key)
            if existing is not None and impact.refresh_waiting(existing.decode()):
                return existing.decode()
            # The marker names no waiting job (its INSERT failed, or its process died before
            # it): take it over rather than hold refreshes back until it expires.
            marker.take_over()
    except RedisError:
        # Without Redis we can't coalesce; the outbox keeps the job, and a duplicate refresh is harmless.
        logger.warning("Redis unavailable: impact refresh for user %s enqueued without coalescing", user_id)
        marker = None
    try:
        return update_impact_dashboard_metrics.with_options(job_id=job_id).delay(user_id).id
    except BaseException:
        if marker is not None:
            _release_marker(marker)
        raise


def _release_marker(marker: TokenLock) -> None:
    try:
        marker.release()
    except RedisError:
        logger.warning("could not release the pending-refresh marker %s: the next trigger checks the outbox", marker.key)


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
