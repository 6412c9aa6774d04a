"""Image processing: the renditions of an uploaded image (run by the images queue's job)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from app.models import UploadedImage
from app.queueing import PermanentJobError

from . import image_pipeline
from .image_files import RENDITIONS_DIR, resolve_media_path, write_atomically

logger = logging.getLogger(__name__)


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
