"""Fit an uploaded image into a box and produce the platform's renditions.

Decoding is bounded before it starts (pixel limit, format allow-list) and reduced at the
decoder where the format allows (JPEG draft), so a large photo costs little memory.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from app.jobs.errors import PermanentJobError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
THUMBNAIL_SIZE = 320
# libwebp's effort, 0 (fast) to 6: chosen by measurement, see docs/images.md.
WEBP_METHOD = 1
MAX_BOX = 10_000

_ORIENTATION_SWAPS_AXES = {5, 6, 7, 8}


@dataclass(frozen=True)
class Rendition:
    name: str
    data: bytes
    width: int
    height: int
    extension: str


def validate_parameters(max_width: int, max_height: int, quality: int) -> None:
    for name, value in (("max_width", max_width), ("max_height", max_height)):
        if not isinstance(value, int) or not 16 <= value <= MAX_BOX:
            raise PermanentJobError(f"{name} must be an integer between 16 and {MAX_BOX}, not {value!r}")
    if not isinstance(quality, int) or not 1 <= quality <= 95:
        raise PermanentJobError(f"quality must be an integer between 1 and 95, not {quality!r}")


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open (without decoding) and refuse what we won't process."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 89 M and 179 M pixels: here it's an error, before decoding.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
    except Image.DecompressionBombWarning as exc:
        raise PermanentJobError(f"image too large: over the pixel limit ({exc})") from None
    except UnidentifiedImageError:
        raise PermanentJobError("not a JPEG, PNG, WebP or GIF image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PermanentJobError(f"unreadable image: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise PermanentJobError(f"image too large: {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise PermanentJobError("image has no pixels")
    if width * height > max_pixels:
        raise PermanentJobError(f"image too large: {width}x{height} is over the {max_pixels} pixel limit")
    return image


RENDITIONS = ("fitted", "webp", "thumbnail")


def render(
    data: bytes,
    max_width: int,
    max_height: int,
    quality: int,
    max_pixels: int,
    renditions: tuple[str, ...] = RENDITIONS,
) -> list[Rendition]:
    validate_parameters(max_width, max_height, quality)
    image = open_checked(data, max_pixels)
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not sink an otherwise good photo
        orientation = 1
    icc_profile = image.info.get("icc_profile")
    box = (max_height, max_width) if orientation in _ORIENTATION_SWAPS_AXES else (max_width, max_height)

    try:
        if image.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the target box.
            image.draft("RGB", _draft_size(image.size, box))
        if getattr(image, "is_animated", False):
            image.seek(0)
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise PermanentJobError(f"corrupt or truncated image: {exc}") from None

    image = _flatten(image)
    image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=2.0)
    image = _apply_orientation(image, orientation)
    image.info = {}  # Pillow's encoders copy comments and XMP from info: strip them all

    out: list[Rendition] = []
    if "fitted" in renditions:
        fitted = _encode(image, "JPEG", quality=quality, icc_profile=icc_profile)
        out.append(Rendition("fitted", fitted, image.width, image.height, "jpg"))
    if "webp" in renditions:
        webp = _encode(image, "WEBP", quality=quality, method=WEBP_METHOD, icc_profile=icc_profile)
        out.append(Rendition("webp", webp, image.width, image.height, "webp"))
    if "thumbnail" in renditions:
        # From the already-reduced image: a 320 px thumbnail costs almost nothing this way.
        small = image.copy()
        small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
        thumb = _encode(small, "JPEG", quality=quality, icc_profile=icc_profile)
        out.append(Rendition("thumbnail", thumb, small.width, small.height, "jpg"))
    return out


def _draft_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    scale = min(box[0] / size[0], box[1] / size[1], 1.0)
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: JPEG has no alpha, and a palette or CMYK image must not reach the encoder."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image.transpose(method) if method is not None else image


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    # A new image carries no EXIF, XMP or comment: only the colour profile is passed on.
    clean = {key: value for key, value in options.items() if value is not None}
    buffer = io.BytesIO()
    image.save(buffer, fmt, **clean)
    return buffer.getvalue()
