from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from app.queueing.job_reports import status_for_owner

from .http import error, login_required_json

_JOB_ID_MAX_LENGTH = 64  # BackgroundJob.id is a CharField(max_length=64)


def _plausible_job_id(job_id: str) -> bool:
    return 0 < len(job_id) <= _JOB_ID_MAX_LENGTH and job_id.isascii() and job_id.isprintable()


@require_GET
@login_required_json
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    # Ids are ours (uuid hex, or an id given at enqueue): a NUL, a 5,000-character id or any
    # non-ASCII never reaches the database (PostgreSQL refuses a NUL: a 500 on b030e43).
    if not _plausible_job_id(job_id):
        return error(404, _("No such job."))
    status = status_for_owner(job_id, request.user.pk)
    if status is None:
        # Same answer for "not yours" and "doesn't exist": ids are not an oracle.
        return error(404, _("No such job."))
    return JsonResponse(status.as_dict())
