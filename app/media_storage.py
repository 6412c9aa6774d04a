"""The two media storages the settings choose between (MEDIA_STORAGE, see app/settings/storage.py).

Both keep Django's storage API; what they add is what image processing relies on:
- a write is all-or-nothing for readers (local: temp file + rename; S3: a PUT is atomic per object);
- writing a key again replaces it (keys are ours and renditions content-addressed: no suffixes);
- `open_stream()` hands a reader the object without holding it twice in memory;
- S3 URLs are signed for the endpoint clients reach, which may differ from the one servers use
  (app/s3_media_storage.py, imported only when MEDIA_STORAGE=s3: boto3 costs ~0.4 s and ~20 MiB).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any

from django.core.files.storage import FileSystemStorage

CHUNK = 1024 * 1024


class LocalMediaStorage(FileSystemStorage):
    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return name

    def _save(self, name: str, content: Any) -> str:
        target = Path(self.path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                if hasattr(content, "seek"):
                    content.seek(0)
                for chunk in content.chunks(CHUNK) if hasattr(content, "chunks") else iter(lambda: content.read(CHUNK), b""):
                    handle.write(chunk)
            os.chmod(tmp, self.file_permissions_mode or 0o644)
            os.replace(tmp, target)  # a reader (or a killed worker) never sees half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name.replace("\\", "/")

    def open_stream(self, name: str) -> IO[bytes]:
        return open(self.path(name), "rb")


def open_stream(storage: Any, name: str) -> IO[bytes]:
    """A binary reader of `name` from any storage; raises FileNotFoundError when it is missing."""
    if hasattr(storage, "open_stream"):
        return storage.open_stream(name)
    return storage.open(name, "rb")


def warm_up() -> None:
    """Build the default storage's client now, in a process that forks a work-horse per job.

    Horses inherit it instead of each building its own (boto3 takes ~0.4 s and ~10 MiB for an S3
    client). Nothing is sent: no connection exists to be shared across the fork.
    """
    from django.core.files.storage import default_storage

    if hasattr(default_storage, "warm_up"):
        default_storage.warm_up()
