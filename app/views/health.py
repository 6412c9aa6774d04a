from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from app.queueing.health import check_health


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = check_health()
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)
