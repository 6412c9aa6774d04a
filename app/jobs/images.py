"""Jobs of the `images` queue (served by the forking worker: hostile input, big buffers)."""

from __future__ import annotations

from typing import Any

from app.queueing import Retries, declare_queue, job
from app.services.images import renditions

images = declare_queue("images", timeout=300, result_ttl=86_400, retries=Retries(3, base=15, cap=300), wait_budget=120)


@job(images)
def process_image(image_path: str, max_width: int = 1920, max_height: int = 1080, quality: int = 85) -> dict[str, Any]:
    """Fit the uploaded image at `image_path` (relative to MEDIA_ROOT) into the box and write its renditions."""
    return renditions.process(image_path, max_width, max_height, quality)
