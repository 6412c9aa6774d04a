"""Where uploaded images live: paths confined to the media root, atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings

from app.queueing import PermanentJobError

ORIGINALS_DIR = "uploads/originals"
RENDITIONS_DIR = "uploads/renditions"


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT).resolve()


def resolve_media_path(relative_path: str) -> Path:
    """The absolute path of a file under MEDIA_ROOT; refuses anything that could escape it."""
    if not relative_path or "\x00" in relative_path:
        raise PermanentJobError("empty or invalid image path")
    candidate = Path(relative_path)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise PermanentJobError(f"image path must be relative to the media root: {relative_path!r}")
    root = media_root()
    resolved = (root / candidate).resolve()  # follows symlinks: a link pointing out is caught below
    if not resolved.is_relative_to(root):
        raise PermanentJobError(f"image path leaves the media root: {relative_path!r}")
    return resolved


def write_atomically(target: Path, data: bytes) -> None:
    """A reader (or a killed worker) never sees a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
