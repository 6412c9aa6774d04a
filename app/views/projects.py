from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from app.models import Project
from app.services import contributions, throttling

from .http import error, json_body, login_required_json


@require_GET
def project_list(request: HttpRequest) -> JsonResponse:
    projects = Project.objects.exclude(status=Project.Status.DRAFT).values("id", "title", "slug", "status")[:200]
    return JsonResponse({"projects": list(projects)})


@require_POST
@login_required_json
def contribution_create(request: HttpRequest, project_id: int) -> JsonResponse:
    """Per-member budget (every attempt counts, as for uploads), then the service's rules."""
    try:
        throttling.hit((throttling.budget("THROTTLE_CONTRIBUTIONS_PER_USER"), str(request.user.pk)))
    except throttling.Throttled as exc:
        return throttling.throttled_response(exc)
    body = json_body(request)
    if body is None:
        return error(400, _("Send a JSON object (Content-Type: application/json)."))
    if "amount" not in body:
        return error(400, _("Invalid contribution."), fields={"amount": [_("A decimal amount is required.")]})
    try:
        recorded = contributions.record(
            user_id=request.user.pk,
            project_id=project_id,
            amount=body["amount"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
    except ValidationError as exc:
        return error(400, _("Invalid contribution."), fields=exc.message_dict)
    except Project.DoesNotExist:
        return error(404, _("No such project."))
    except contributions.ProjectNotOpen:
        return error(409, _("This project does not take contributions any more."))
    except contributions.IdempotencyKeyReused:
        return error(422, _("This Idempotency-Key was already used for a different contribution."))
    contribution = recorded.contribution
    response = JsonResponse(
        {"id": contribution.pk, "project": contribution.project_id, "amount": str(contribution.amount)},
        status=200 if recorded.replayed else 201,
    )
    if recorded.replayed:
        response["Idempotent-Replayed"] = "true"
    return response
