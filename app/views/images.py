from __future__ import annotations

from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from app.models import UploadedImage
from app.services.image_files import ORIGINALS_DIR, RENDITIONS_DIR
from app.services.image_uploads import UploadRejected, accept_upload
from app.services.images import renditions_for_client

from .http import error, login_required_json


def _image_json(request: HttpRequest, image: UploadedImage) -> dict[str, object]:
    return {
        "id": image.pk,
        "status": image.status,
        "failure_reason": image.failure_reason or None,
        "original_name": image.original_name,
        # As displayed (after the EXIF orientation); the original itself is private, never served.
        "width": image.original_width,
        "height": image.original_height,
        "renditions": renditions_for_client(image, request.build_absolute_uri),
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
    return JsonResponse(_image_json(request, accepted.image), status=202)


@require_GET
@login_required_json
def detail(request: HttpRequest, image_id: int) -> JsonResponse:
    image = UploadedImage.objects.filter(pk=image_id, owner=request.user).first()
    if image is None:
        return error(404, _("No such image."))
    return JsonResponse(_image_json(request, image))


@require_GET
@login_required_json
def rendition_file(request: HttpRequest, key: str) -> FileResponse | JsonResponse:
    """Local storage only (S3 hands out signed URLs): a rendition, to its owner; never an original."""
    parts = PurePosixPath(key).parts
    if len(parts) != 5 or "/".join(parts[:2]) != RENDITIONS_DIR or ".." in parts:
        return error(404, _("No such image."))
    stem = parts[2]
    if not UploadedImage.objects.filter(owner=request.user, original_path__startswith=f"{ORIGINALS_DIR}/{stem}.").exists():
        return error(404, _("No such image."))
    try:
        handle = default_storage.open(key, "rb")
    except FileNotFoundError:
        return error(404, _("No such image."))
    response = FileResponse(handle, content_type="image/webp" if key.endswith(".webp") else "image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response
