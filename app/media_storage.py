"""The two media storages the settings choose between (MEDIA_STORAGE, see app/settings/storage.py).

Both keep Django's storage API; what they add is what image processing relies on:
- a write is all-or-nothing for readers (local: temp file + rename; S3: a PUT is atomic per object);
- writing a key again replaces it (keys are ours and renditions content-addressed: no suffixes);
- `open_stream()` hands a reader the object without holding it twice in memory;
- S3 URLs are signed for the endpoint clients reach, which may differ from the one servers use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

CHUNK = 1024 * 1024
# Above this an object goes up in parts (s3transfer's multipart threshold): uploads are ≤ 20 MiB.
SINGLE_PUT_MAX = 8 * 1024 * 1024


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


class S3MediaStorage(S3Storage):
    def __init__(self, **settings: Any) -> None:
        self.public_endpoint_url = settings.pop("public_endpoint_url", None)
        super().__init__(**settings)

    def open_stream(self, name: str) -> IO[bytes]:
        """The object, copied to a temporary file in 1 MiB chunks: memory holds one chunk, not the object.

        (S3File would buffer the whole object in memory, and a read() would copy it again.)
        """
        from botocore.exceptions import ClientError

        try:
            body = self.connection.meta.client.get_object(Bucket=self.bucket_name, Key=self._normalize_name(name))["Body"]
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                raise FileNotFoundError(f"no such object: {name}") from None
            raise
        spool = tempfile.TemporaryFile()
        try:
            with body:
                shutil.copyfileobj(body, spool, CHUNK)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool

    def _save(self, name: str, content: Any) -> str:
        """Up to SINGLE_PUT_MAX: one PutObject from the client, streamed from the file.

        django-storages goes through a resource object and an s3transfer manager per object;
        for a rendition or an upload that is most of the client's CPU per request.
        """
        size = getattr(content, "size", None)
        if size is None or size > SINGLE_PUT_MAX or self.gzip:
            return super()._save(name, content)
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        params = self._get_write_parameters(key, content)
        content.seek(0)
        body = content.file if hasattr(content, "file") and content.file is not None else content
        self.connection.meta.client.put_object(Bucket=self.bucket_name, Key=key, Body=body, ContentLength=size, **params)
        return cleaned

    def url(self, name: str, parameters: Any = None, expire: Any = None, http_method: Any = None) -> str:
        if not self.public_endpoint_url:
            return super().url(name, parameters, expire, http_method)
        client = getattr(self._connections, "public_client", None)
        if client is None:
            # Signing is local (no request): a client configured with the public endpoint signs
            # for the host that the browser will send.
            client = self._create_session().client(
                "s3", region_name=self.region_name, endpoint_url=self.public_endpoint_url, config=self.client_config
            )
            self._connections.public_client = client
        params = {**(parameters or {}), "Bucket": self.bucket_name, "Key": self._normalize_name(name)}
        return client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expire or self.querystring_expire, HttpMethod=http_method
        )


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

    if isinstance(default_storage, S3Storage):
        default_storage.connection.meta.client  # noqa: B018  (the property builds and caches it)
