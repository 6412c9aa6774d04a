"""Image uploads: accept (bounded, checked by content), then process in the background."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _

from app.jobs.images import process_image
from app.models import UploadedImage
from app.queueing import PermanentJobError

from . import image_files, image_pipeline
from .image_files import ORIGINALS_DIR

logger = logging.getLogger(__name__)

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
    upload.seek(0)
    try:
        probe = image_pipeline.open_checked(upload, settings.IMAGE_MAX_PIXELS)
    except PermanentJobError:
        # The pipeline's reasons are the worker's (English, for operators); the member gets one
        # sentence in the request's language.
        raise UploadRejected(
            _("Not an image we accept: send a JPEG, PNG, WebP or GIF of at most %(pixels)s pixels.")
            % {"pixels": f"{settings.IMAGE_MAX_PIXELS:,}".replace(",", " ")}
        ) from None
    fmt = probe.format or ""
    width, height = image_pipeline.displayed_size(probe)
    key = f"{ORIGINALS_DIR}/{uuid.uuid4().hex}.{_EXTENSIONS[fmt]}"
    # The stored name is ours; the user's file name is kept only as data. The upload is
    # streamed to the storage (a large one sits in a temporary file, not in memory).
    image_files.save(key, upload)
    try:
        with transaction.atomic():
            image = UploadedImage.objects.create(
                owner_id=owner_id,
                original_path=key,
                original_name=(upload.name or "")[:255],
                original_format=fmt,
                original_width=width,
                original_height=height,
            )
            job_id = process_image.with_options(owner_id=owner_id).delay(image_path=key).id
            image.job_id = job_id
            image.save(update_fields=["job_id"])
    except BaseException:
        image_files.delete([key])  # no row refers to it: it would be an orphan
        raise
    return AcceptedUpload(image=image, job_id=job_id)
