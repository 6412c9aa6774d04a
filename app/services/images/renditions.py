"""Image processing: the renditions of an uploaded image (run by the images queue's job), and their files."""

from __future__ import annotations

import hashlib
import logging
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from app import tracing
from app.models import UploadedImage
from app.queueing import PermanentJobError
from app.services.images import files, pipeline
from app.services.images.files import RENDITIONS_DIR

logger = logging.getLogger(__name__)
# What the pipeline makes → what clients call it, its file extension and content type.
_PUBLISHED = {
    "fitted": ("display", "jpg", "image/jpeg"),
    "webp": ("display_webp", "webp", "image/webp"),
    "thumbnail": ("thumbnail", "jpg", "image/jpeg"),
}


def process(image_path: str, max_width: int, max_height: int, quality: int) -> dict[str, Any]:
    """Write the renditions of the original stored at `image_path` and publish them.

    Publication is atomic for readers: the new set is written under a new version prefix, the
    record is switched to it in one UPDATE, and only then is the previous set deleted. The same
    input gives the same version, keys and bytes, so running twice changes nothing; a run that
    fails removes what it wrote (but never the published set). Five storage requests in all:
    one read, three writes, and deletes only when the set changed.
    """
    files.validate_key(image_path)
    record = UploadedImage.objects.filter(original_path=image_path).first()
    try:
        with files.storage_errors_are_transient(), tracing.span("image read"):
            source = files.open_original(image_path)
    except FileNotFoundError:
        reason = f"image file not found: {image_path!r}"
        _mark_failed(record, reason)
        raise PermanentJobError(reason) from None
    try:
        with source, tracing.span("image render"):
            renditions = pipeline.render(source, max_width, max_height, quality, settings.IMAGE_MAX_PIXELS)
    except PermanentJobError as exc:
        _mark_failed(record, str(exc))
        raise
    stem = PurePosixPath(image_path).stem
    digest = hashlib.sha256()
    for rendition in renditions:
        digest.update(rendition.name.encode() + b"\0" + rendition.data)
    version = digest.hexdigest()[:16]
    prefix = f"{RENDITIONS_DIR}/{stem}/{version}"
    previous = _published_keys(record)
    written: dict[str, dict[str, Any]] = {}
    created: list[str] = []
    try:
        with files.storage_errors_are_transient(), tracing.span("image write", {"image.renditions": len(renditions)}):
            _write(renditions, prefix, previous, written, created)
        if record is not None:
            UploadedImage.objects.filter(pk=record.pk).update(
                status=UploadedImage.Status.DONE, failure_reason="", renditions=written, processed_at=timezone.now()
            )
    except BaseException:
        try:
            files.delete(created)  # nothing refers to them: no orphan is left behind
        except Exception:
            logger.exception("image %s: could not delete the unpublished renditions %s", image_path, created)
        raise
    # Readers now get the new set; the one they had before can go.
    superseded = sorted(previous - {entry["key"] for entry in written.values()})
    try:
        files.delete(superseded)
    except Exception:  # published already: failing the job now would not bring them back
        logger.exception("image %s: could not delete the superseded renditions %s", image_path, superseded)
    logger.info("image %s processed into %s (version %s)", image_path, ", ".join(written), version)
    return written


def _write(
    renditions: list[pipeline.Rendition], prefix: str, previous: set[str],
    written: dict[str, dict[str, Any]], created: list[str],
) -> None:
    for rendition in renditions:
        name, extension, content_type = _PUBLISHED[rendition.name]
        kind = name.split("_")[0]
        key = f"{prefix}/{kind}-{rendition.width}x{rendition.height}.{extension}"
        # Written even when a re-run finds it there: the same bytes, and each write is whole
        # for readers (S3 PUT, local rename). One request per object, no existence checks.
        if key not in previous:
            created.append(key)  # before the write: a write that fails half-way is cleaned up too
        files.save(key, rendition.data)
        written[name] = {
            "key": key, "width": rendition.width, "height": rendition.height,
            "content_type": content_type, "bytes": len(rendition.data),
        }


def delete_files(image: UploadedImage) -> None:
    """Remove an image's objects (its original and every rendition set); the row is the caller's."""
    files.delete([image.original_path])
    files.delete_prefix(f"{RENDITIONS_DIR}/{PurePosixPath(image.original_path).stem}")


def on_image_deleted(sender: type, instance: UploadedImage, **kwargs: Any) -> None:
    # After the commit: a rolled-back delete must not lose the files.
    transaction.on_commit(lambda: delete_files(instance), robust=True)


def renditions_for_client(image: UploadedImage, absolute: Any) -> dict[str, dict[str, Any]]:
    """{name: {url, width, height, content_type}}, URLs made absolute by `absolute` (a request's build_absolute_uri)."""
    out = {}
    for name, entry in (image.renditions or {}).items():
        key = entry.get("key")
        if not key:
            continue  # a record written before renditions had keys: nothing to link to
        out[name] = {
            "url": absolute(files.url(key)),
            "width": entry["width"],
            "height": entry["height"],
            "content_type": entry.get("content_type"),
        }
    return out


def _published_keys(record: UploadedImage | None) -> set[str]:
    if record is None:
        return set()
    return {entry["key"] for entry in (record.renditions or {}).values() if entry.get("key")}


def _mark_failed(record: UploadedImage | None, reason: str) -> None:
    if record is not None:
        UploadedImage.objects.filter(pk=record.pk).update(status=UploadedImage.Status.FAILED, failure_reason=reason)
