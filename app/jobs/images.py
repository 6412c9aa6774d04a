"""Jobs of the `images` queue."""

from __future__ import annotations

from typing import Any

from app.services import images


def process_image(image_path: str, max_width: int = 1920, max_height: int = 1080, quality: int = 85) -> dict[str, Any]:
    """Fit the uploaded image at `image_path` (relative to MEDIA_ROOT) into the box and write its renditions."""
    return images.process(image_path, max_width, max_height, quality)
