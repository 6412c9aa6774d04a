from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from app.queueing.status import status_for_owner

from .http import error, login_required_json


@require_GET
@login_required_json
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    status = status_for_owner(job_id, request.user.pk)
    if status is None:
        # Same answer for "not yours" and "doesn't exist": ids are not an oracle.
        return error(404, _("No such job."))
    return JsonResponse(status.as_dict())
