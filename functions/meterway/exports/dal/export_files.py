"""Export files in the ExportBucket: written as multipart uploads so memory stays flat, handed out
as presigned GET URLs. An upload that fails is aborted, so no partial object is ever left.

An upload is written by one writer or by several at once, each with its own run of part numbers
(a large request export, fanned out over time slices): S3 joins the parts named on completion in
the order of their numbers, and drops the others. Every part but the file's last must be 5 MiB or
more, so a run holds back its tail until it can end with a part that size.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from meterway.core import aws
from meterway.core.dynamo import storage_errors
from meterway.core.errors import StorageError

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum, for every part but the last
# Parts of the minimum: a writer holds at most two of them, plus the one being uploaded (with a
# ledger page, the export worker's peak is ~25 MiB over its idle size). 10,000 parts make 50 GB,
# a slice's 500 of them 2.5 GB.
PART_SIZE = MIN_PART_SIZE
MAX_PART_NUMBER = 10_000  # S3's part numbers run from 1 to 10,000
UNAVAILABLE = "The export bucket is unavailable."


class FileWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def complete(self) -> None:
        """Make the object appear, whole, in one step."""

    def abort(self) -> None:
        """Drop what was written: no object appears."""


class PartWriter(Protocol):
    """Writes one run of an upload's parts, numbered from its first."""

    def write(self, data: bytes) -> None: ...

    @property
    def long_enough(self) -> bool:
        """Whether the run may end here with other parts after it: its last part would not be
        under S3's minimum."""

    def close(self, *, ends_file: bool = False) -> list[dict[str, Any]]:
        """Upload what is held back and return the run's parts (``PartNumber``, ``ETag``) in order.
        A run that ``ends_file`` and holds nothing at all still gets its one, empty, part."""


class FileStore(Protocol):
    def writer(self, key: str, content_type: str) -> FileWriter: ...

    def download_url(self, key: str, filename: str, expires_in: int) -> str:
        """A URL for one GET of one object, saved under ``filename``, valid for ``expires_in`` seconds."""

    def start_upload(self, key: str, content_type: str) -> str:
        """Begin an upload for part writers to fill; its id."""

    def part_writer(self, key: str, upload_id: str, first_part: int, last_part: int) -> PartWriter:
        """A writer of parts ``first_part`` to at most ``last_part`` of the upload."""

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        """Make the object of ``parts`` (in order) appear; an upload completed before stays as it is."""

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts: no object appears."""


class PartUploads(Protocol):
    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        """Upload (or upload again: S3 keeps the last) part ``number``; its ETag."""


class S3PartWriter:
    """Holds what is written and uploads a part of ``part_size`` each time it holds that much and a
    minimum part more: the run can then always end with a part S3 accepts. What is held stays the
    chunks it was written in (a page of CSV each), joined only into the part being uploaded: no
    buffer grows and is copied as it does."""

    def __init__(
        self,
        files: PartUploads,
        key: str,
        upload_id: str,
        first_part: int,
        last_part: int,
        *,
        part_size: int = PART_SIZE,
        min_part_size: int = MIN_PART_SIZE,
    ):
        self._files, self._key, self._upload_id = files, key, upload_id
        self._next, self._last = first_part, last_part
        self._part_size, self._min_part_size = part_size, min_part_size
        self._held: deque[bytes] = deque()
        self._held_size = 0
        self._parts: list[dict[str, Any]] = []
        self._written = 0

    def write(self, data: bytes) -> None:
        self._held.append(data)
        self._held_size += len(data)
        self._written += len(data)
        while self._held_size >= self._part_size + self._min_part_size:
            self._upload(self._take(self._part_size))

    @property
    def long_enough(self) -> bool:
        return self._written >= self._min_part_size

    def close(self, *, ends_file: bool = False) -> list[dict[str, Any]]:
        if self._held_size or (ends_file and not self._parts):
            self._upload(self._take(self._held_size))
        return list(self._parts)

    def _take(self, size: int) -> bytes:
        """The first ``size`` bytes held, in one piece; the chunks they came from are let go."""
        taken: list[bytes] = []
        count = 0
        while count < size:
            chunk = self._held.popleft()
            if count + len(chunk) > size:
                self._held.appendleft(chunk[size - count :])
                chunk = chunk[: size - count]
            taken.append(chunk)
            count += len(chunk)
        self._held_size -= size
        return b"".join(taken)

    def _upload(self, body: bytes) -> None:
        if self._next > self._last:
            raise StorageError(f"The export outgrew its {self._last} parts of the upload.")
        etag = self._files.upload_part(self._key, self._upload_id, self._next, body)
        self._parts.append({"PartNumber": self._next, "ETag": etag})
        self._next += 1


class MultipartWriter:
    """A whole file by one writer: every part number is its own."""

    def __init__(self, files: S3Files, key: str, content_type: str):
        self._files, self._key = files, key
        self._upload_id = files.start_upload(key, content_type)
        self._parts = files.part_writer(key, self._upload_id, 1, MAX_PART_NUMBER)

    def write(self, data: bytes) -> None:
        self._parts.write(data)

    def complete(self) -> None:
        self._files.complete_upload(self._key, self._upload_id, self._parts.close(ends_file=True))

    def abort(self) -> None:
        self._files.abort_upload(self._key, self._upload_id)


class S3Files:
    """The ExportBucket as the exports' file store; its client is made on first use."""

    def __init__(
        self,
        bucket: str,
        addressing_style: str = "auto",
        client: Any | None = None,
        *,
        part_size: int = PART_SIZE,
        min_part_size: int = MIN_PART_SIZE,
    ):
        self._bucket, self._addressing_style, self._client = bucket, addressing_style, client
        self._part_size, self._min_part_size = part_size, min_part_size

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3", self._addressing_style)
        return self._client

    def writer(self, key: str, content_type: str) -> MultipartWriter:
        return MultipartWriter(self, key, content_type)

    def start_upload(self, key: str, content_type: str) -> str:
        with storage_errors(UNAVAILABLE):
            started = self.client.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=content_type)
        return str(started["UploadId"])

    def part_writer(self, key: str, upload_id: str, first_part: int, last_part: int) -> S3PartWriter:
        return S3PartWriter(
            self,
            key,
            upload_id,
            first_part,
            last_part,
            part_size=self._part_size,
            min_part_size=self._min_part_size,
        )

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        with storage_errors(UNAVAILABLE):
            uploaded = self.client.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return str(uploaded["ETag"])

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        try:
            with storage_errors(UNAVAILABLE):
                self.client.complete_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except StorageError as failed:
            # The upload is gone once completed: a second completion (a retried finish) finds none.
            # Exports abort an upload only after their job has failed, when nothing completes it.
            if _error_code(failed.__cause__) != "NoSuchUpload":
                raise

    def abort_upload(self, key: str, upload_id: str) -> None:
        # The bucket's lifecycle rule removes abandoned uploads after a day anyway.
        with storage_errors("Could not abort the export upload."):
            self.client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

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


def _error_code(error: BaseException | None) -> str | None:
    response = getattr(error, "response", None) or {}
    code: str | None = response.get("Error", {}).get("Code")
    return code
