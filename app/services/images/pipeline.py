"""Fit an uploaded image into a box and produce the platform's renditions.

Decoding is bounded before it starts (pixel limit, format allow-list) and reduced at the
decoder where the format allows (JPEG draft), so a large photo costs little memory.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageFile, UnidentifiedImageError, features

from app.queueing import PermanentJobError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
THUMBNAIL_SIZE = 320
# What is left after libjpeg's scaled decode, or after reducing_gap's box reduction for other
# formats, is a reduction under 2x (1.04x for a 12 MP photo). There BICUBIC lands within 50 dB
# PSNR of LANCZOS and costs 25 % less; BILINEAR drops to 46 dB. See docs/images.md.
RESAMPLE = Image.Resampling.BICUBIC
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


def open_checked(data: bytes | IO[bytes], max_pixels: int) -> Image.Image:
    """Open (without decoding) and refuse what we won't process.

    `data` may be a binary file (read as it is decoded: an upload or a stored object is never
    copied whole into memory) or bytes.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 89 M and 179 M pixels: here it's an error, before decoding.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
            image = Image.open(source, formats=sorted(ALLOWED_FORMATS))
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


def orientation_of(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not sink an otherwise good photo
        return 1


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as a viewer shows the image: EXIF orientations 5-8 swap the axes."""
    width, height = image.size
    return (height, width) if orientation_of(image) in _ORIENTATION_SWAPS_AXES else (width, height)


def render(
    data: bytes | IO[bytes],
    max_width: int,
    max_height: int,
    quality: int,
    max_pixels: int,
    renditions: tuple[str, ...] = RENDITIONS,
) -> list[Rendition]:
    validate_parameters(max_width, max_height, quality)
    image = open_checked(data, max_pixels)
    orientation = orientation_of(image)
    icc_profile = image.info.get("icc_profile")
    box = (max_height, max_width) if orientation in _ORIENTATION_SWAPS_AXES else (max_width, max_height)

    fitted_size = _fitted_size(image.size, box)
    try:
        # The part of the decoded pixels that holds the picture: libjpeg's reduced output rounds
        # its size up, so resampling from the whole of it would shift the picture by up to a pixel.
        content = _reduce_at_decoder(image, fitted_size) if image.format == "JPEG" and fitted_size else None
        if getattr(image, "is_animated", False):
            image.seek(0)
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise PermanentJobError(f"corrupt or truncated image: {exc}") from None

    image = _flatten(image)
    if fitted_size is not None:
        image = image.resize(fitted_size, RESAMPLE, box=content, reducing_gap=2.0)
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
        small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), RESAMPLE)
        thumb = _encode(small, "JPEG", quality=quality, icc_profile=icc_profile)
        out.append(Rendition("thumbnail", thumb, small.width, small.height, "jpg"))
    return out


def _fitted_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int] | None:
    """The size that fits `box` with the aspect ratio kept (rounded as Pillow's thumbnail() does), or None when it fits already."""
    width, height = size
    if width <= box[0] and height <= box[1]:
        return None
    aspect = width / height
    if box[0] / box[1] >= aspect:
        candidates = (math.floor(box[1] * aspect), math.ceil(box[1] * aspect))
        return max(min(candidates, key=lambda n: abs(aspect - n / box[1])), 1), box[1]
    candidates = (math.floor(box[0] / aspect), math.ceil(box[0] / aspect))
    return box[0], max(min(candidates, key=lambda n: abs(aspect - box[0] / n) if n else math.inf), 1)


def _reduce_at_decoder(image: Image.Image, fitted_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """Have libjpeg decode at the smallest N/8 of full size that still covers `fitted_size`.

    Returns the box of the decoded pixels that holds the picture, or None if not reduced.
    Pillow's draft() offers 1/2, 1/4 and 1/8 only. libjpeg-turbo decodes at any N/8; asking for
    1/3 gets 3/8 (it rounds up to the next eighth), which is what a 12 MP photo needs for a
    1920x1080 box: 1500x1125 instead of 2000x1500, a third less to decode and resample.
    """
    scale = max(fitted_size[0] / image.width, fitted_size[1] / image.height)
    eighths = next((n for n in (1, 2, 3, 4) if n / 8 >= scale), 8)
    if eighths == 8:
        return None
    if eighths != 3 or not _decodes_in_eighths(image):
        drafted = image.draft("RGB", fitted_size)
        return drafted[1] if drafted is not None else None
    original = image.size
    # Pillow sizes its scanline buffer from the tile, and libjpeg writes output_width pixels into
    # it: the tile must be libjpeg's exact output size, ceil(size * 3 / 8).
    width, height = -(-original[0] * 3 // 8), -(-original[1] * 3 // 8)
    decoder, _extent, offset, args = image.tile[0]
    image.tile = [ImageFile._Tile(decoder, (0, 0, width, height), offset, args)]
    image._size = (width, height)
    image.decoderconfig = (3, 0)  # (1/denominator asked of libjpeg, not Pillow's fast-and-rough "draft" mode)
    return 0, 0, original[0] * 3 / 8, original[1] * 3 / 8


def _decodes_in_eighths(image: Image.Image) -> bool:
    # IJG libjpeg 6b scales by powers of two only: asked for 1/3 it would decode at full size into
    # a 3/8-wide buffer. Only libjpeg-turbo (which Pillow's wheels bundle) is trusted with it.
    return (
        _LIBJPEG_TURBO
        and len(image.tile) == 1
        and image.tile[0].codec_name == "jpeg"
        and not image.decoderconfig
    )


_LIBJPEG_TURBO = bool(features.check_feature("libjpeg_turbo"))


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
