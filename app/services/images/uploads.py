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
from app.services.images import files, headers
from app.services.images.files import ORIGINALS_DIR

logger = logging.getLogger(__name__)

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


class UploadRejected(ValueError):
    """The upload is not an image we accept; the message is safe to show the user."""


@dataclass(frozen=True)
class AcceptedUpload:
    image: UploadedImage
    job_id: str


def _limits() -> headers.Limits:
    return headers.Limits(
        max_pixels=settings.IMAGE_MAX_PIXELS,
        max_frames=settings.IMAGE_MAX_FRAMES,
        max_metadata=settings.IMAGE_MAX_METADATA_BYTES,
    )


def _refusal_message(reason: str) -> str:
    """One sentence for the member, in the request's language; the detail goes to the log."""
    if reason == "too_large":
        return _("This image is too large: at most %(pixels)s pixels.") % {"pixels": _spaced(settings.IMAGE_MAX_PIXELS)}
    if reason == "frames":
        return _("This animation has too many frames: at most %(frames)s.") % {"frames": _spaced(settings.IMAGE_MAX_FRAMES)}
    if reason == "metadata":
        return _("This image carries too much metadata (EXIF, ICC, text): at most %(mib)s MiB.") % {
            "mib": _spaced(settings.IMAGE_MAX_METADATA_BYTES // (1024 * 1024))
        }
    if reason == "truncated":
        return _("This image is incomplete (cut short or damaged): send the whole file.")
    return _("Not an image we accept: send a JPEG, PNG, WebP or GIF of at most %(pixels)s pixels.") % {
        "pixels": _spaced(settings.IMAGE_MAX_PIXELS)
    }


def _printable(name: str) -> str:
    """The client's file name, kept as data: no NUL (PostgreSQL refuses it) nor other control characters."""
    return "".join(character for character in name if character.isprintable())


def _spaced(number: int) -> str:
    return f"{number:,}".replace(",", " ")


def accept_upload(*, owner_id: int, upload: UploadedFile) -> AcceptedUpload:
    """Check the upload's structure here (image_headers: no pixel is decoded in the web process),
    store it, record it and queue its processing; UploadRejected, with nothing stored, otherwise."""
    if upload.size is None or upload.size > settings.IMAGE_UPLOAD_MAX_BYTES:
        raise UploadRejected(_("Images are limited to %(mib)d MiB.") % {"mib": settings.IMAGE_UPLOAD_MAX_BYTES // (1024 * 1024)})
    if upload.size == 0:
        raise UploadRejected(_("The file is empty."))
    try:
        header = headers.inspect(upload, upload.size, _limits())
    except headers.ImageRefused as exc:
        logger.info("upload refused (%s): %s", exc.reason, exc.detail)
        raise UploadRejected(_refusal_message(exc.reason)) from None
    fmt = header.format
    width, height = header.displayed_size
    key = f"{ORIGINALS_DIR}/{uuid.uuid4().hex}.{_EXTENSIONS[fmt]}"
    # The stored name is ours; the user's file name is kept only as data. The upload is
    # streamed to the storage (a large one sits in a temporary file, not in memory).
    files.save(key, upload)
    try:
        with transaction.atomic():
            image = UploadedImage.objects.create(
                owner_id=owner_id,
                original_path=key,
                original_name=_printable(upload.name or "")[:255],
                original_format=fmt,
                original_width=width,
                original_height=height,
            )
            job_id = process_image.with_options(owner_id=owner_id).delay(image_path=key).id
            image.job_id = job_id
            image.save(update_fields=["job_id"])
    except BaseException:
        files.delete([key])  # no row refers to it: it would be an orphan
        raise
    return AcceptedUpload(image=image, job_id=job_id)
