"""S3-compatible object storage for `serve --storage s3://BUCKET[/PREFIX]`, through boto3.

boto3 is an optional dependency (the `s3` extra): only the server imports it, and only
when `--storage` is given. Credentials come from boto3's usual chain (AWS_* variables,
AWS_PROFILE, the shared files); they never leave this process: the API hands out
presigned URLs, and `describe()` reports the bucket and endpoint, never a key.
Every method blocks (network I/O); the backend runs them in its worker threads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

READ_PIECE = 1 << 20  # bytes per read while hashing an object
S3_MIN_PART = 5 << 20  # S3 refuses smaller parts, except the last
S3_MAX_PARTS = 10000


class StorageError(Exception):
    """The storage refused or failed an operation (message safe to show)."""


@dataclass(frozen=True)
class StorageSpec:
    """`s3://bucket/prefix` parsed; `prefix` is empty or ends with `/`."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> StorageSpec:
        parts = urlsplit(text)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"invalid storage {text!r}: use s3://BUCKET[/PREFIX]")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, prefix + "/" if prefix else "")


def part_size_for(size: int, preferred: int) -> int:
    """`preferred`, raised so that a file fits S3's 10,000 parts (and never below 5 MiB)."""
    needed = -(-size // S3_MAX_PARTS)
    return max(preferred, needed, S3_MIN_PART)


class S3Storage:
    """One bucket (and key prefix) on one S3-compatible endpoint."""

    provider = "s3"

    def __init__(self, spec: StorageSpec, endpoint: str | None, client: Any = None) -> None:
        self.spec = spec
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise StorageError("--storage needs boto3: pip install 'synapse-tui[s3]'") from None
            # SigV4 query signatures; path-style addressing so that every URL has the
            # endpoint's own origin (what `describe` announces and clients check).
            config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
            client = boto3.client("s3", endpoint_url=self.endpoint, config=config)
        self.client = client

    # -- what clients are told --------------------------------------------------------------

    def describe(self, storage_id: int) -> dict[str, Any]:
        """The storage as `storages/` lists it (no credentials, ever)."""
        configuration: dict[str, Any] = {"bucket_name": self.spec.bucket}
        if self.spec.prefix:
            configuration["location"] = self.spec.prefix
        if self.endpoint:
            configuration["endpoint_url"] = self.endpoint
        return {
            "id": storage_id,
            "name": f"s3://{self.spec.bucket}/{self.spec.prefix}",
            "category": "internal",
            "provider": self.provider,
            "configuration": configuration,
            "is_default": True,
        }

    def key_for(self, name: str) -> str:
        return self.spec.prefix + name

    # -- operations ---------------------------------------------------------------------------

    def _call(self, op: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.spec.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StorageError(
                f"{op}: {error.get('Code', '?')}: {error.get('Message', '')}"
            ) from None
        except BotoCoreError as exc:
            raise StorageError(f"{op}: {type(exc).__name__}") from None

    def check(self) -> None:
        """Reach the bucket once at start-up (a clear error instead of a failing upload)."""
        try:
            self._call("head_bucket")
        except StorageError as exc:
            where = f" at {self.endpoint}" if self.endpoint else ""
            raise StorageError(
                f"cannot use the storage s3://{self.spec.bucket}/{self.spec.prefix}{where}"
                f" ({exc}); credentials come from AWS_* variables or AWS_PROFILE"
            ) from None

    def presign_put(self, key: str, expires: int) -> str:
        params = {"Bucket": self.spec.bucket, "Key": key}
        return str(
            self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)
        )

    def create_multipart(self, key: str) -> str:
        return str(self._call("create_multipart_upload", Key=key)["UploadId"])

    def presign_part(self, key: str, upload_id: str, number: int, expires: int) -> str:
        params = {
            "Bucket": self.spec.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": number,
        }
        return str(
            self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires)
        )

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        listing = {"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]}
        self._call(
            "complete_multipart_upload", Key=key, UploadId=upload_id, MultipartUpload=listing
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    def size_of(self, key: str) -> int | None:
        """The object's size, or None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.spec.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"head_object: {code}") from None
        return int(head["ContentLength"])

    def read_back(self, key: str, size: int) -> str | int | None:
        """The SHA1 of the object, read back in pieces (memory flat), when it holds `size`
        bytes; else its size (not read), or None when there is no such object. One GET:
        no HEAD first (a round trip per small file)."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.spec.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"get_object: {code}") from None
        body = answer["Body"]
        try:
            length = int(answer["ContentLength"])
            if length != size:
                return length
            digest = hashlib.sha1()
            read = 0
            while piece := body.read(READ_PIECE):
                digest.update(piece)
                read += len(piece)
            return digest.hexdigest() if read == size else read
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self._call("delete_object", Key=key)
