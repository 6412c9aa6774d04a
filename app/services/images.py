"""Image uploads: accept (bounded, checked by content), then process in the background."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils import timezone

from app.jobs.errors import PermanentJobError
from app.jobs.queues import enqueue
from app.models import UploadedImage

from . import image_pipeline
from .image_files import ORIGINALS_DIR, RENDITIONS_DIR, resolve_media_path, write_atomically

logger = logging.getLogger("app.images")

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


class UploadRejected(ValueError):
    """The upload is not an image we accept; the message is safe to show the user."""


@dataclass(frozen=True)
class AcceptedUpload:
    image: UploadedImage
    job_id: str


def accept_upload(*, owner_id: int, upload: UploadedFile) -> AcceptedUpload:
    if upload.size is None or upload.size > settings.IMAGE_UPLOAD_MAX_BYTES:
        raise UploadRejected(_("Images are limited to %(mib)d MiB.") % {"mib": settings.IMAGE_UPLOAD_MAX_BYTES // (1024 * 1024)})
    if upload.size == 0:
        raise UploadRejected(_("The file is empty."))
    data = upload.read()
    try:
        probe = image_pipeline.open_checked(data, settings.IMAGE_MAX_PIXELS)
    except PermanentJobError:
        # The pipeline's reasons are the worker's (English, for operators); the member gets one
        # sentence in the request's language.
        raise UploadRejected(
            _("Not an image we accept: send a JPEG, PNG, WebP or GIF of at most %(pixels)s pixels.")
            % {"pixels": f"{settings.IMAGE_MAX_PIXELS:,}".replace(",", " ")}
        ) from None
    fmt = probe.format or ""
    relative = f"{ORIGINALS_DIR}/{uuid.uuid4().hex}.{_EXTENSIONS[fmt]}"
    # The stored name is ours; the user's file name is kept only as data.
    write_atomically(resolve_media_path(relative), data)
    with transaction.atomic():
        image = UploadedImage.objects.create(
            owner_id=owner_id,
            original_path=relative,
            original_name=(upload.name or "")[:255],
            original_format=fmt,
            original_width=probe.width,
            original_height=probe.height,
        )
        from app.jobs import images as image_jobs

        job_id = enqueue(image_jobs.process_image, relative, owner_id=owner_id)
        image.job_id = job_id
        image.save(update_fields=["job_id"])
    return AcceptedUpload(image=image, job_id=job_id)


def process(image_path: str, max_width: int, max_height: int, quality: int) -> dict[str, Any]:
    """Write the renditions of `image_path` (relative to MEDIA_ROOT) and record them.

    Safe to run twice: the same input gives the same files, written atomically.
    """
    source = resolve_media_path(image_path)
    record = UploadedImage.objects.filter(original_path=image_path).first()
    if not source.is_file():
        reason = f"image file not found: {image_path!r}"
        _mark_failed(record, reason)
        raise PermanentJobError(reason)
    try:
        renditions = image_pipeline.render(
            source.read_bytes(), max_width, max_height, quality, settings.IMAGE_MAX_PIXELS
        )
    except PermanentJobError as exc:
        _mark_failed(record, str(exc))
        raise
    stem = source.stem
    written: dict[str, dict[str, Any]] = {}
    for rendition in renditions:
        relative = f"{RENDITIONS_DIR}/{stem}/{rendition.name}-{max_width}x{max_height}-q{quality}.{rendition.extension}"
        write_atomically(resolve_media_path(relative), rendition.data)
        written[rendition.name] = {"path": relative, "width": rendition.width, "height": rendition.height}
    if record is not None:
        UploadedImage.objects.filter(pk=record.pk).update(
            status=UploadedImage.Status.DONE, failure_reason="", renditions=written, processed_at=timezone.now()
        )
    logger.info("image %s processed into %s", image_path, ", ".join(written))
    return written


def _mark_failed(record: UploadedImage | None, reason: str) -> None:
    if record is not None:
        UploadedImage.objects.filter(pk=record.pk).update(status=UploadedImage.Status.FAILED, failure_reason=reason)
