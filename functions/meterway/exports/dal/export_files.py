"""Export files in the ExportBucket: written as a multipart upload so memory stays flat, handed out
as presigned GET URLs. An upload that fails is aborted, so no partial object is ever left."""

from __future__ import annotations

from typing import Any, Protocol

from meterway.core import aws
from meterway.core.dynamo import storage_errors

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (except the last one)
UNAVAILABLE = "The export bucket is unavailable."


class FileWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def complete(self) -> None:
        """Make the object appear, whole, in one step."""

    def abort(self) -> None:
        """Drop what was written: no object appears."""


class FileStore(Protocol):
    def writer(self, key: str, content_type: str) -> FileWriter: ...

    def download_url(self, key: str, filename: str, expires_in: int) -> str:
        """A URL for one GET of one object, saved under ``filename``, valid for ``expires_in`` seconds."""


class MultipartWriter:
    """Buffers bytes and uploads a part each time ``part_size`` is reached."""

    def __init__(self, client: Any, bucket: str, key: str, *, content_type: str, part_size: int = PART_SIZE):
        self._client, self._bucket, self._key = client, bucket, key
        self._part_size = part_size
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type)[
            "UploadId"
        ]

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self._part_size:
            self._flush()

    def _flush(self) -> None:
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=bytes(self._buffer)
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer.clear()

    def complete(self) -> None:
        if self._buffer or not self._parts:
            self._flush()
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        # The bucket's lifecycle rule removes abandoned uploads after a day anyway.
        with storage_errors("Could not abort the export upload."):
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)


class S3Files:
    """The ExportBucket as the exports' file store; its client is made on first use."""

    def __init__(self, bucket: str, addressing_style: str = "auto", client: Any | None = None):
        self._bucket, self._addressing_style, self._client = bucket, addressing_style, client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3", self._addressing_style)
        return self._client

    def writer(self, key: str, content_type: str) -> MultipartWriter:
        with storage_errors(UNAVAILABLE):
            return MultipartWriter(self.client, self._bucket, key, content_type=content_type)

    def download_url(self, key: str, filename: str, expires_in: int) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_in,
        )
        return url
