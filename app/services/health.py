"""Liveness of the parts the platform needs: database and the queues' Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import django_rq
from django.db import DatabaseError, connection
from redis.exceptions import RedisError


@dataclass
class HealthReport:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(check["ok"] for check in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unhealthy", "checks": self.checks}


def check_health() -> HealthReport:
    report = HealthReport()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report.checks["database"] = {"ok": True}
    except DatabaseError as exc:
        report.checks["database"] = {"ok": False, "reason": f"database unreachable: {type(exc).__name__}"}
    try:
        django_rq.get_connection("emails").ping()
        report.checks["redis"] = {"ok": True}
    except RedisError as exc:
        report.checks["redis"] = {"ok": False, "reason": f"queue Redis unreachable: {type(exc).__name__}"}
    return report
