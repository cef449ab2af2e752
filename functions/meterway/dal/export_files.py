"""Export files in S3: written as a multipart upload so memory stays flat, handed out as
presigned GET URLs. An upload that fails is aborted, so no partial object is ever left."""

from __future__ import annotations

from typing import Any

from meterway.errors import StorageError

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (except the last one)


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
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_written += len(data)
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
        """Upload what is left and make the object appear, whole, in one step."""
        if self._buffer or not self._parts:
            self._flush()
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        except (BotoCoreError, ClientError) as exc:
            # The bucket's lifecycle rule removes abandoned uploads after a day anyway.
            raise StorageError("Could not abort the export upload.") from exc


def presigned_download(client: Any, bucket: str, key: str, filename: str, expires_in: int) -> str:
    """A URL for one GET of one object, saved under ``filename``, valid for ``expires_in`` seconds."""
    url: str = client.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": f'attachment; filename="{filename}"'},
        ExpiresIn=expires_in,
    )
    return url


class S3Files:
    """The ExportBucket as the export worker's file sink."""

    def __init__(self, client: Any, bucket: str):
        self._client, self._bucket = client, bucket

    def writer(self, key: str, content_type: str) -> MultipartWriter:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return MultipartWriter(self._client, self._bucket, key, content_type=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The export bucket is unavailable.") from exc

    def download_url(self, key: str, filename: str, expires_in: int) -> str:
        return presigned_download(self._client, self._bucket, key, filename, expires_in)
