"""Hostile image files of every accepted format, built here from Pillow's own output and by hand.

Used by tests/security/test_upload_formats.py (behaviour) and benchmarks/areas/upload_memory.py (the
web process's peak memory per file). Each builder returns the bytes a stranger would upload.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    return _save(Image.new("RGB", size, (200, 30, 30)), "JPEG", quality=85)


def png(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    return _save(Image.new(mode, size, 0), "PNG")


def gif(size: tuple[int, int] = (64, 48), frames: int = 1) -> bytes:
    images = [Image.new("P", size, n % 256) for n in range(frames)]
    return _save(images[0], "GIF", save_all=frames > 1, append_images=images[1:], duration=40, optimize=False)


def webp(size: tuple[int, int] = (64, 48), lossless: bool = False, frames: int = 1) -> bytes:
    images = [Image.new("RGB", size, (n % 256, 0, 0)) for n in range(frames)]
    return _save(images[0], "WEBP", lossless=lossless, save_all=frames > 1, append_images=images[1:], quality=80)


def apng(size: tuple[int, int] = (32, 32), frames: int = 3) -> bytes:
    images = [Image.new("RGB", size, (n % 256, 0, 0)) for n in range(frames)]
    return _save(images[0], "PNG", save_all=True, append_images=images[1:], duration=40)


def mpo(size: tuple[int, int] = (64, 48)) -> bytes:
    """A multi-picture JPEG (stereo cameras): Pillow reports its format as MPO."""
    left, right = Image.new("RGB", size, (255, 0, 0)), Image.new("RGB", size, (0, 0, 255))
    return _save(left, "MPO", save_all=True, append_images=[right])


# --- PNG chunks by hand ------------------------------------------------------------------
def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_from_chunks(width: int, height: int, *extra: bytes, idat: bytes | None = None, end: bool = True, rgba: bool = False) -> bytes:
    """An 8-bit greyscale (or RGBA) PNG of width x height whose pixels are all zero (a tiny IDAT for a large image)."""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6 if rgba else 0, 0, 0, 0))
    if idat is None:
        compressor = zlib.compressobj(9)
        row = b"\x00" * (width * (4 if rgba else 1) + 1)
        parts = [compressor.compress(row) for _ in range(height)]
        idat = b"".join(parts) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(extra) + chunk(b"IDAT", idat) + (chunk(b"IEND", b"") if end else b"")


def png_bomb_within_the_pixel_limit(side: int = 7000) -> bytes:
    """side x side RGBA pixels (49 M: under IMAGE_MAX_PIXELS) in ~200 KiB: decoding it costs 4 x side² bytes (196 MB)."""
    return png_from_chunks(side, side, rgba=True)


def png_declaring(width: int, height: int) -> bytes:
    return png_from_chunks(width, height, idat=zlib.compress(b"\x00" * 16))


def png_with_ztxt(chunks: int, inflated_each: int = 1024 * 1024) -> bytes:
    """Compressed text chunks each inflating to `inflated_each` bytes (1 MiB of zeros is ~1 KiB)."""
    text = zlib.compress(b"\x00" * inflated_each, 9)
    return png_from_chunks(16, 16, *[chunk(b"zTXt", b"Comment%d\x00\x00" % n + text) for n in range(chunks)])


def png_with_iccp(inflated: int) -> bytes:
    return png_from_chunks(16, 16, chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * inflated, 9)))


def png_with_exif(size: int) -> bytes:
    return png_from_chunks(16, 16, chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08" + b"\x00" * size))


# --- JPEG by hand ------------------------------------------------------------------------
def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims width x height."""
    data = bytearray(jpeg((16, 16)))
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def jpeg_with_app_segments(count: int, marker: int = 0xE1, size: int = 65533) -> bytes:
    """`count` APPn segments of `size` bytes each after SOI (an EXIF bomb when marker is APP1)."""
    data = jpeg((16, 16))
    payload = b"Exif\x00\x00" + b"\x00" * (size - 6)
    segments = b"".join(b"\xff" + bytes([marker]) + struct.pack(">H", size + 2) + payload for _ in range(count))
    return data[:2] + segments + data[2:]


def jpeg_with_exif_loop() -> bytes:
    """EXIF whose IFD0 claims 65,535 entries and whose next-IFD pointer points back at itself."""
    tiff = b"MM\x00*\x00\x00\x00\x08" + struct.pack(">H", 0xFFFF) + struct.pack(">HHII", 0x0112, 3, 1, 6 << 16) + struct.pack(">I", 8)
    payload = b"Exif\x00\x00" + tiff
    data = jpeg((16, 16))
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


# --- GIF and WebP by hand ----------------------------------------------------------------
def gif_with_frames(frames: int) -> bytes:
    """An animated GIF of `frames` 1x1 frames (a few bytes each)."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = b"\x21\xf9\x04\x00\x01\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + loop + frame * frames + b"\x3b"


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(gif((1, 1)))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A tiny lossless WebP inside a VP8X canvas of width x height."""
    inner = webp((1, 1), lossless=True)
    chunks = inner[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_with_exif(size: int) -> bytes:
    inner = webp((16, 16))
    exif = b"EXIF" + struct.pack("<I", size) + b"MM\x00*\x00\x00\x00\x08" + b"\x00" * (size - 8)
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x08\x00\x00\x00" + (15).to_bytes(3, "little") + (15).to_bytes(3, "little")
    body = b"WEBP" + vp8x + inner[12:] + exif + (b"\x00" if size & 1 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def noisy(fmt: str, size: tuple[int, int] = (256, 192)) -> bytes:
    """An image that compresses badly: most of its bytes are pixel data, after the header."""
    image = Image.merge("RGB", [Image.effect_noise(size, 80 + 20 * n).convert("L") for n in range(3)])
    if fmt == "GIF":
        image = image.convert("P")
    return _save(image, fmt)
