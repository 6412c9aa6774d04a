from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from app.queueing.health import check_health, check_liveness

from .metrics import operator_or_token


@require_GET
@never_cache
def livez(request: HttpRequest) -> JsonResponse:
    """Liveness of the web process (and its database) for its container and load balancer: no details."""
    alive = check_liveness()
    return JsonResponse({"status": "ok" if alive else "unavailable"}, status=200 if alive else 503)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness of the whole platform (workers, scheduler, backlog). Anyone gets the verdict;
    the report (worker counts, queue ages, the scheduler's beat) only the metrics token's bearer
    or a queue operator."""
    report = check_health()
    status = 200 if report.healthy else 503
    if not operator_or_token(request):
        return JsonResponse({"status": "ok" if report.healthy else "unhealthy"}, status=status)
    return JsonResponse(report.as_dict(), status=status)
