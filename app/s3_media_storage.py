"""Media on S3-compatible object storage (MEDIA_STORAGE=s3): django-storages' S3 backend, tuned.

See app/media_storage.py for what both media storages guarantee.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import IO, Any

from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from app.media_storage import CHUNK

# Above this an object goes up in parts (s3transfer's multipart threshold): uploads are ≤ 20 MiB.
SINGLE_PUT_MAX = 8 * 1024 * 1024


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

    def warm_up(self) -> None:
        self.connection.meta.client  # noqa: B018  (the property builds and caches it)
