from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from app.models import Project
from app.services.contributions import contribute

from .http import error, json_body, login_required_json


@require_GET
def project_list(request: HttpRequest) -> JsonResponse:
    projects = Project.objects.values("id", "title", "slug")[:200]
    return JsonResponse({"projects": list(projects)})


@require_POST
@login_required_json
def contribution_create(request: HttpRequest, project_id: int) -> JsonResponse:
    body = json_body(request)
    if body is None:
        return error(400, _("Send a JSON object (Content-Type: application/json)."))
    try:
        contribution = contribute(user_id=request.user.pk, project_id=project_id, amount=str(body.get("amount", "")))
    except ValidationError as exc:
        return error(400, _("Invalid contribution."), fields=exc.message_dict)
    except Project.DoesNotExist:
        return error(404, _("No such project."))
    return JsonResponse(
        {"id": contribution.pk, "project": project_id, "amount": str(contribution.amount)}, status=201
    )
