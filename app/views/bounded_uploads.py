"""Uploads bounded while they stream in: nothing past the limit is read, let alone stored.

Django parses a multipart body as it reads it and writes files over 2.5 MiB to a temporary
file; a size check on the finished `UploadedFile` comes after the whole body has been read and
stored. Here a declared Content-Length over the limit is refused before the first byte is read,
and a counting handler, first in line, stops the parser as soon as the file parts exceed it.
"""

from __future__ import annotations

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

# Multipart framing around the file itself: boundaries, part headers, a CSRF field.
MULTIPART_OVERHEAD = 64 * 1024


class UploadTooLarge(Exception):
    pass


class CountingUploadHandler(FileUploadHandler):
    """Counts the bytes of every file part and stops the upload past `limit` (without reading the rest)."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)  # don't drain the rest of the body either
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers build the file


def bound_upload(request: HttpRequest, limit: int) -> CountingUploadHandler:
    """Call before anything reads request.POST/FILES; raises UploadTooLarge on a declared size over `limit`."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + MULTIPART_OVERHEAD:
        raise UploadTooLarge
    handler = CountingUploadHandler(request, limit)
    request.upload_handlers.insert(0, handler)
    return handler
