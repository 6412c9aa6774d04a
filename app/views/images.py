from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from app.models import UploadedImage
from app.services.image_uploads import UploadRejected, accept_upload

from .http import error, login_required_json


def _image_json(image: UploadedImage) -> dict[str, object]:
    return {
        "id": image.pk,
        "status": image.status,
        "failure_reason": image.failure_reason or None,
        "original_name": image.original_name,
        "width": image.original_width,
        "height": image.original_height,
        "renditions": image.renditions,
        "job_id": image.job_id,
    }


@require_POST
@login_required_json
def upload(request: HttpRequest) -> JsonResponse:
    upload = request.FILES.get("image")
    if upload is None:
        return error(400, _("Send the image as multipart form field 'image'."))
    try:
        accepted = accept_upload(owner_id=request.user.pk, upload=upload)
    except UploadRejected as exc:
        return error(400, str(exc))
    return JsonResponse(_image_json(accepted.image), status=202)


@require_GET
@login_required_json
def detail(request: HttpRequest, image_id: int) -> JsonResponse:
    image = UploadedImage.objects.filter(pk=image_id, owner=request.user).first()
    if image is None:
        return error(404, _("No such image."))
    return JsonResponse(_image_json(image))
