from __future__ import annotations

from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from app.models import UploadedImage
from app.services import throttling
from app.services.images.files import ORIGINALS_DIR, RENDITIONS_DIR
from app.services.images.renditions import renditions_for_client
from app.services.images.uploads import UploadRejected, accept_upload

from .bounded_uploads import UploadTooLarge, bound_upload
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
    return JsonResponse(_image_json(request, accepted.image), status=202)


@require_GET
@login_required_json
def detail(request: HttpRequest, image_id: int) -> JsonResponse:
    image = UploadedImage.objects.filter(pk=image_id, owner=request.user).first()
    if image is None:
        return error(404, _("No such image."))
    return JsonResponse(_image_json(request, image))


# The rendition keys we write: <uuid>/<hex digest>/<name>-<w>x<h>.<ext> under RENDITIONS_DIR.
_KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_./")
_KEY_MAX_LENGTH = 255


def _plain_key(key: str) -> bool:
    """Only the characters and length of our own keys: a NUL or a 5,000-character name never reaches the storage."""
    return len(key) <= _KEY_MAX_LENGTH and set(key) <= _KEY_CHARACTERS


@require_GET
@login_required_json
def rendition_file(request: HttpRequest, key: str) -> FileResponse | JsonResponse:
    """Local storage only (S3 hands out signed URLs): a rendition, to its owner; never an original."""
    parts = PurePosixPath(key).parts
    if len(parts) != 5 or "/".join(parts[:2]) != RENDITIONS_DIR or ".." in parts or not _plain_key(key):
        return error(404, _("No such image."))
    stem = parts[2]
    if not UploadedImage.objects.filter(owner=request.user, original_path__startswith=f"{ORIGINALS_DIR}/{stem}.").exists():
        return error(404, _("No such image."))
    try:
        handle = default_storage.open(key, "rb")
    except OSError:  # missing, or a name the filesystem refuses (too long): not one of ours either way
        return error(404, _("No such image."))
    response = FileResponse(handle, content_type="image/webp" if key.endswith(".webp") else "image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response
