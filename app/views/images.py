from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from app.models import UploadedImage
from app.services import throttling
from app.services.image_uploads import UploadRejected, accept_upload

from .bounded_uploads import UploadTooLarge, bound_upload
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


def _too_large() -> JsonResponse:
    return error(413, _("Images are limited to %(mib)d MiB.") % {"mib": settings.IMAGE_UPLOAD_MAX_BYTES // (1024 * 1024)})


@csrf_exempt  # only until the upload handlers are in place: _checked_upload checks the CSRF token
@require_POST
@login_required_json
def upload(request: HttpRequest) -> JsonResponse:
    """Per-uploader budget, then the body read under a byte limit (413 past it), then the CSRF check."""
    try:
        throttling.hit((throttling.budget("THROTTLE_UPLOADS_PER_USER"), str(request.user.pk)))
    except throttling.Throttled as exc:
        return throttling.throttled_response(exc)
    try:
        counter = bound_upload(request, settings.IMAGE_UPLOAD_MAX_BYTES)
    except UploadTooLarge:
        return _too_large()
    response = _checked_upload(request)
    return _too_large() if counter.exceeded else response


@csrf_protect
def _checked_upload(request: HttpRequest) -> JsonResponse:
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
