"""What the web process reads of an uploaded image: its container's structure, never its pixels.

The web process is the one a stranger's upload reaches first and the one that serves every other
request, so it decodes nothing: no pixel data, no image library. It walks the file's container
(JPEG segments, PNG chunks, GIF blocks, RIFF chunks of WebP) through a bounded window, and refuses
what the image worker would refuse or should never be handed:
- not one of the four formats by content (the name and the client's Content-Type are ignored);
- dimensions over IMAGE_MAX_PIXELS (the canvas, for an animation: its frames' union);
- more than IMAGE_MAX_FRAMES frames (animated GIF, APNG, animated WebP);
- more than IMAGE_MAX_METADATA_BYTES of metadata (EXIF, ICC, XMP, text and comments, counted
  once inflated: a zTXt or iCCP chunk is inflated here in bounded steps and thrown away);
- a structure that is cut short or inconsistent (a truncated upload: no JPEG end-of-image after
  the scan, no PNG IEND, no GIF trailer, a RIFF size past the end of the file).

Memory: at most one READ_WINDOW of the file (64 KiB) plus one inflate step (64 KiB) at a time,
whatever the file declares. Work: one pass over the file, in C for the long runs (the JPEG
end-of-image search, the inflation) and in Python per container element, at most MAX_ELEMENTS
of them. tests/security/test_upload_formats.py attacks each rule; docs/images.md has the figures.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

READ_WINDOW = 64 * 1024
# Segments / chunks / blocks walked in Python: a real file has tens to a few thousand
# (a 20 MiB PNG in 8 KiB IDAT chunks: 2,560); past this the file is refused, not walked.
MAX_ELEMENTS = 100_000
_ORIENTATION_TAG = 0x0112


class ImageRefused(Exception):
    """`reason` is one of: format, too_large, frames, metadata, truncated; `detail` is for the logs."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageHeader:
    format: str  # Pillow's name: JPEG, PNG, WEBP, GIF
    width: int
    height: int
    orientation: int  # EXIF orientation, 1 when absent
    frames: int

    @property
    def displayed_size(self) -> tuple[int, int]:
        """As a viewer shows the image: EXIF orientations 5-8 swap the axes (as pipeline.displayed_size)."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_frames: int
    max_metadata: int


class _File:
    """Random access to the upload through reads of at most READ_WINDOW bytes."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self.stream = stream
        self.size = size
        self.elements = 0

    def read(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset`, or ImageRefused(truncated)."""
        if length > READ_WINDOW:
            raise ValueError("read longer than the window")
        if offset < 0 or offset + length > self.size:
            raise ImageRefused("truncated", f"{length} bytes at {offset} are past the end ({self.size})")
        self.stream.seek(offset)
        data = self.stream.read(length)
        if len(data) != length:
            raise ImageRefused("truncated", f"short read at {offset}")
        return data

    def read_upto(self, offset: int, length: int) -> bytes:
        return self.read(offset, min(length, READ_WINDOW, self.size - offset))

    def each_piece(self, offset: int, length: int) -> Iterator[bytes]:
        """The bytes of [offset, offset+length) in READ_WINDOW pieces."""
        end = offset + length
        if end > self.size:
            raise ImageRefused("truncated", f"element of {length} bytes at {offset} ends past the file")
        while offset < end:
            piece = self.read(offset, min(READ_WINDOW, end - offset))
            yield piece
            offset += len(piece)

    def count(self) -> None:
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise ImageRefused("format", f"more than {MAX_ELEMENTS} container elements")


def inspect(stream: IO[bytes], size: int, limits: Limits) -> ImageHeader:
    """Check the upload's structure and limits; ImageRefused otherwise. Reads, never decodes pixels."""
    file = _File(stream, size)
    magic = file.read_upto(0, 16)
    if magic.startswith(b"\xff\xd8\xff"):
        header = _jpeg(file, limits)
    elif magic.startswith(b"\x89PNG\r\n\x1a\n"):
        header = _png(file, limits)
    elif magic[:6] in (b"GIF87a", b"GIF89a"):
        header = _gif(file, limits)
    elif magic[:4] == b"RIFF" and magic[8:12] == b"WEBP":
        header = _webp(file, limits)
    else:
        raise ImageRefused("format", "not a JPEG, PNG, GIF or WebP signature")
    if header.width <= 0 or header.height <= 0:
        raise ImageRefused("format", f"no pixels: {header.width}x{header.height}")
    if header.width * header.height > limits.max_pixels:
        raise ImageRefused("too_large", f"{header.width}x{header.height} is over {limits.max_pixels} pixels")
    if header.frames > limits.max_frames:
        raise ImageRefused("frames", f"{header.frames} frames, over {limits.max_frames}")
    return header


class _Metadata:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    def add(self, count: int) -> None:
        self.total += count
        if self.total > self.limit:
            raise ImageRefused("metadata", f"over {self.limit} bytes of metadata")

    def inflate(self, pieces: Iterator[bytes]) -> None:
        """Count what zlib data inflates to, in steps of READ_WINDOW, keeping none of it."""
        inflater = zlib.decompressobj()
        try:
            for piece in pieces:
                data = piece
                while data:
                    self.add(len(inflater.decompress(data, READ_WINDOW)))
                    data = inflater.unconsumed_tail
                if inflater.eof:
                    return
            while not inflater.eof:
                out = inflater.decompress(b"", READ_WINDOW)
                if not out:
                    break
                self.add(len(out))
        except zlib.error as exc:
            raise ImageRefused("format", f"corrupt compressed metadata: {exc}") from None


def _tiff_orientation(data: bytes) -> int:
    """The Orientation tag of a TIFF/EXIF block's first IFD, 1 when absent or unreadable."""
    if data.startswith(b"Exif\x00\x00"):
        data = data[6:]
    if data[:4] == b"II*\x00":
        order = "<"
    elif data[:4] == b"MM\x00*":
        order = ">"
    else:
        return 1
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if ifd + 2 > len(data):
        return 1
    (entries,) = struct.unpack_from(order + "H", data, ifd)
    for index in range(min(entries, 1024)):
        at = ifd + 2 + 12 * index
        if at + 12 > len(data):
            break
        tag, kind = struct.unpack_from(order + "HH", data, at)
        if tag == _ORIENTATION_TAG:
            value = struct.unpack_from(order + "H", data, at + 8)[0] if kind == 3 else 1
            return value if 1 <= value <= 8 else 1
    return 1


# --- JPEG: segments up to the first scan, then an end-of-image marker after it --------------
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpeg(file: _File, limits: Limits) -> ImageHeader:
    metadata = _Metadata(limits.max_metadata)
    position, size, orientation = 2, None, 1
    while True:
        file.count()
        prefix, marker = file.read(position, 2)
        if prefix != 0xFF:
            raise ImageRefused("format", f"no JPEG marker at {position}")
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (0xD8, 0xD9):
            raise ImageRefused("format", f"marker {marker:#x} before the first scan")
        (length,) = struct.unpack(">H", file.read(position + 2, 2))
        if length < 2:
            raise ImageRefused("format", f"segment length {length}")
        body = position + 4
        end = position + 2 + length
        if end > file.size:
            raise ImageRefused("truncated", "a JPEG segment runs past the end of the file")
        if marker in _SOF:
            if size is not None:
                raise ImageRefused("format", "two frame headers")
            if length < 8:
                raise ImageRefused("format", "short frame header")
            _precision, height, width = struct.unpack(">BHH", file.read(body, 5))
            size = (width, height)
        elif 0xE0 <= marker <= 0xEF or marker == 0xFE:  # APPn, COM: metadata
            metadata.add(length - 2)
            if marker == 0xE1 and orientation == 1:
                segment = file.read(body, length - 2)
                if segment.startswith(b"Exif\x00\x00"):
                    orientation = _tiff_orientation(segment)
        elif marker == 0xDA:  # start of scan: the pixels follow
            if size is None:
                raise ImageRefused("format", "a scan before any frame header")
            if not _has_end_of_image(file, end):
                raise ImageRefused("truncated", "no JPEG end-of-image marker after the scan")
            return ImageHeader("JPEG", size[0], size[1], orientation, 1)
        position = end


def _has_end_of_image(file: _File, offset: int) -> bool:
    previous = b""
    for piece in file.each_piece(offset, file.size - offset):
        if b"\xff\xd9" in previous[-1:] + piece:
            return True
        previous = piece
    return False


# --- PNG: every chunk, from IHDR to IEND ---------------------------------------------------
_PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf"}


def _png(file: _File, limits: Limits) -> ImageHeader:
    metadata = _Metadata(limits.max_metadata)
    length, kind = struct.unpack(">I4s", file.read(8, 8))
    if kind != b"IHDR" or length != 13:
        raise ImageRefused("format", "the first PNG chunk is not IHDR")
    width, height = struct.unpack(">II", file.read(16, 8))
    position, frames, orientation, seen_data = 8, 1, 1, False
    while True:
        file.count()
        length, kind = struct.unpack(">I4s", file.read(position, 8))
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise ImageRefused("format", f"bad PNG chunk at {position}")
        data, end = position + 8, position + 12 + length
        if end > file.size:
            raise ImageRefused("truncated", f"PNG chunk {kind!r} runs past the end of the file")
        if kind == b"IDAT":
            seen_data = True
        elif kind == b"IEND":
            if not seen_data:
                raise ImageRefused("format", "a PNG without image data")
            return ImageHeader("PNG", width, height, orientation, frames)
        elif kind == b"acTL" and length >= 8:  # APNG: the number of frames
            (frames,) = struct.unpack(">I", file.read(data, 4))
        elif kind in _PNG_TEXT:
            _png_metadata(file, kind, data, length, metadata)
            if kind == b"eXIf" and orientation == 1:
                orientation = _tiff_orientation(file.read_upto(data, length))
        position = end


def _png_metadata(file: _File, kind: bytes, data: int, length: int, metadata: _Metadata) -> None:
    head = file.read_upto(data, min(length, 200))  # keyword (1-79 bytes) and the compression fields
    separator = head.find(b"\x00")
    if kind in (b"tEXt", b"eXIf") or separator < 0:
        metadata.add(length)
        return
    if kind == b"iTXt":
        compressed = head[separator + 1 : separator + 2] == b"\x01"
        if not compressed:
            metadata.add(length)
            return
        # keyword\0 flag method language\0 translated\0 text
        rest = head[separator + 3 :]
        language_end = rest.find(b"\x00")
        translated_end = rest.find(b"\x00", language_end + 1) if language_end >= 0 else -1
        if translated_end < 0:
            metadata.add(length)  # the fields run past what was read: count the raw bytes
            return
        start = separator + 3 + translated_end + 1
    else:  # zTXt, iCCP: keyword\0 method, then zlib data
        start = separator + 2
    metadata.add(start)
    metadata.inflate(file.each_piece(data + start, max(0, length - start)))


# --- GIF: blocks up to the trailer ---------------------------------------------------------
def _gif(file: _File, limits: Limits) -> ImageHeader:
    metadata = _Metadata(limits.max_metadata)
    width, height, flags = struct.unpack("<HHB", file.read(6, 5))
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    canvas_width, canvas_height, frames = width, height, 0
    while True:
        file.count()
        (block,) = file.read(position, 1)
        if block == 0x3B:  # trailer
            if frames == 0:
                raise ImageRefused("format", "a GIF without an image")
            return ImageHeader("GIF", canvas_width, canvas_height, 1, frames)
        if block == 0x21:  # extension: label, then data sub-blocks
            (label,) = file.read(position + 1, 1)
            position, size = _skip_sub_blocks(file, position + 2)
            if label in (0xFE, 0x01, 0xFF):  # comment, plain text, application data
                metadata.add(size)
        elif block == 0x2C:  # image: descriptor, local colour table, LZW code size, data
            left, top, frame_width, frame_height, frame_flags = struct.unpack("<HHHHB", file.read(position + 1, 9))
            frames += 1
            if frames > limits.max_frames:
                raise ImageRefused("frames", f"over {limits.max_frames} frames")
            # Pillow grows the canvas to hold a frame drawn past the screen's edge.
            canvas_width, canvas_height = max(canvas_width, left + frame_width), max(canvas_height, top + frame_height)
            position += 10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0)
            file.read(position, 1)  # the LZW minimum code size
            position, _size = _skip_sub_blocks(file, position + 1)
        else:
            raise ImageRefused("format", f"unknown GIF block {block:#x} at {position}")


def _skip_sub_blocks(file: _File, position: int) -> tuple[int, int]:
    """Past a chain of data sub-blocks (length byte, data) ended by a zero length: (new position, data bytes)."""
    total = 0
    window_start, window = position, b""
    while True:
        offset = position - window_start
        if offset >= len(window):
            window_start, window = position, file.read_upto(position, READ_WINDOW) if position < file.size else b""
            offset = 0
            if not window:
                raise ImageRefused("truncated", "the GIF ends inside a block")
        length = window[offset]
        position += 1 + length
        total += length
        if length == 0:
            return position, total
        if position > file.size:
            raise ImageRefused("truncated", "the GIF ends inside a block")


# --- WebP: RIFF chunks ---------------------------------------------------------------------
def _webp(file: _File, limits: Limits) -> ImageHeader:
    metadata = _Metadata(limits.max_metadata)
    (riff_size,) = struct.unpack("<I", file.read(4, 4))
    riff_end = 8 + riff_size
    if riff_end > file.size:
        raise ImageRefused("truncated", f"RIFF declares {riff_end} bytes, the file has {file.size}")
    position, size, orientation, frames, canvas, has_image = 12, None, 1, 0, None, False
    while position + 8 <= riff_end:
        file.count()
        kind, length = struct.unpack("<4sI", file.read(position, 8))
        data, end = position + 8, position + 8 + length + (length & 1)
        if position + 8 + length > riff_end:
            raise ImageRefused("truncated", f"WebP chunk {kind!r} runs past the RIFF end")
        if kind == b"VP8 " and length >= 10:
            head = file.read(data, 10)
            if head[3:6] != b"\x9d\x01\x2a":
                raise ImageRefused("format", "bad VP8 start code")
            width, height = struct.unpack("<HH", head[6:10])
            size = size or (width & 0x3FFF, height & 0x3FFF)
            has_image = True
        elif kind == b"VP8L" and length >= 5:
            head = file.read(data, 5)
            if head[0] != 0x2F:
                raise ImageRefused("format", "bad VP8L signature")
            (bits,) = struct.unpack("<I", head[1:5])
            size = size or ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            has_image = True
        elif kind == b"VP8X" and length >= 10:
            head = file.read(data, 10)
            canvas = (int.from_bytes(head[4:7], "little") + 1, int.from_bytes(head[7:10], "little") + 1)
        elif kind == b"ANMF":
            frames += 1
            has_image = True
            if frames > limits.max_frames:
                raise ImageRefused("frames", f"over {limits.max_frames} frames")
        elif kind in (b"EXIF", b"ICCP", b"XMP "):
            metadata.add(length)
            if kind == b"EXIF" and orientation == 1:
                orientation = _tiff_orientation(file.read_upto(data, length))
        position = end
    if not has_image:
        raise ImageRefused("format", "a WebP without image data")
    width, height = canvas or size or (0, 0)
    return ImageHeader("WEBP", width, height, orientation, max(frames, 1))
