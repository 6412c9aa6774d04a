from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from app.services.impact_refresh import dashboard_payload

from .http import login_required_json


@require_GET
@login_required_json
def my_impact(request: HttpRequest) -> JsonResponse:
    payload, refresh_job_id = dashboard_payload(request.user.pk)
    return JsonResponse({**payload, "refresh_job_id": refresh_job_id})
