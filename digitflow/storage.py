"""One small object-store interface with a local-directory and an S3 implementation.

Keys are '/'-separated relative paths. Every write is atomic: a reader sees the old
object or the new one, never a part. Conditional writes (if-absent, if-match on an
ETag) let several writers update one pointer without losing each other's changes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from digitflow.errors import (
    NotFoundError,
    ObjectTooLarge,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
)

MULTIPART_THRESHOLD = 16 * 1024 * 1024


# The folders digitflow writes at the top of a store; anything else there is the user's (an
# inbox of scans kept beside the store's own folders, say).
OWN_FOLDERS = (".tmp", "corrections", "datasets", "models", "scoring")


# Where credentials come from, said wherever a location given holds some.
AWS_CREDENTIALS = (
    "give credentials through AWS's standard chain (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, a profile, a role)"
)


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise StoreError."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid object key {key!r}: use a relative a/b/c path")
    return key


def etag_of(data: bytes) -> str:
    """The ETag a single PUT of ``data`` gets (its MD5, as S3 computes it)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class ObjectStore(ABC):
    """Read, write, list and conditionally update objects by key."""

    uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the object's content; NotFoundError if absent."""

    @abstractmethod
    def read_with_etag(self, key: str) -> tuple[bytes, str]:
        """Return the object's content and its ETag, for a later ``if_match`` write."""

    @abstractmethod
    def write_bytes(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write atomically and return the new ETag; PreconditionFailed if a condition fails."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file atomically (multipart for large files on S3)."""

    @abstractmethod
    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys under ``prefix`` (a key prefix, not only a folder), sorted."""

    @abstractmethod
    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove an object; absent keys are not an error. With ``if_match``, only as it
        was read (that ETag): PreconditionFailed if it has changed since."""

    def uri_of(self, key: str) -> str:
        """A human-readable URI of an object, for logs and summaries."""
        return f"{self.uri.rstrip('/')}/{key}"


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and onto the disk before it is renamed or linked into
    place: else a power cut soon after could leave the object's name on an empty file."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# Where a folder of the store is a link to another file system, an object is staged there,
# beside it, under this name; listing leaves such names out.
STAGING = ".digitflow-staging-"


def _put(place: Callable[[Path, Path], None], staged: Path, target: Path) -> None:
    """``place`` (``os.replace``, or ``os.link`` to create only) the staged file at
    ``target``: across file systems (a folder of the store linked to another disk) from a
    copy made beside the target first, as atomically."""
    try:
        place(staged, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        near = target.with_name(f"{STAGING}{uuid.uuid4().hex}")
        try:
            with open(staged, "rb") as src, open(near, "xb") as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            place(near, target)
        finally:
            _discard(near)


def _discard(tmp: Path) -> None:
    """Remove a staging file, if there is one. Quietly: on a read-only file system the
    unlink fails too, and must not hide why the write failed."""
    with suppress(OSError):
        tmp.unlink(missing_ok=True)


class LocalStore(ObjectStore):
    """Objects as files under a root directory; temp file + rename for atomicity."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _tmp_path(self) -> Path:
        tmp = self.root / ".tmp"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store {self.uri} is not writable: {exc.strerror}") from exc
        return tmp / uuid.uuid4().hex

    @contextmanager
    def _staged(self, key: str) -> Iterator[Path]:
        """Yield a temp path to fill; on success it replaces ``key`` atomically."""
        target = self._path(key)
        tmp = self._tmp_path()
        try:
            yield tmp
            target.parent.mkdir(parents=True, exist_ok=True)
            _put(os.replace, tmp, target)
        except OSError as exc:
            raise StoreError(f"cannot write {self.uri_of(key)}: {exc}") from exc
        finally:
            _discard(tmp)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise conditional writes between processes sharing this store."""
        lock_path = self._tmp_path().with_name("conditional.lock")
        try:
            lock = open(lock_path, "a")  # noqa: SIM115 - closed below, after the unlock
        except OSError as exc:
            raise StoreError(
                f"store {self.uri} is not writable: cannot open its lock file {lock_path} "
                f"({exc.strerror})"
            ) from exc
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFoundError(f"no object {self.uri_of(key)}") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {self.uri_of(key)}: {exc}") from exc

    def read_with_etag(self, key: str) -> tuple[bytes, str]:
        data = self.read_bytes(key)
        return data, etag_of(data)

    def write_bytes(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        if if_match is None and not if_absent:
            with self._staged(key) as tmp:
                _write_durably(tmp, data)
            return etag_of(data)
        if if_match is None and self._create(key, data):
            return etag_of(data)
        with self._locked():
            current = self._path(key)
            if if_absent and current.exists():
                raise PreconditionFailed(f"{self.uri_of(key)} already exists")
            if if_match is not None and (
                not current.is_file() or etag_of(current.read_bytes()) != if_match
            ):
                raise PreconditionFailed(f"{self.uri_of(key)} changed since it was read")
            with self._staged(key) as tmp:
                _write_durably(tmp, data)
        return etag_of(data)

    def _create(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if absent, atomically and without the store-wide lock: a hard
        link fails if its name exists. False where the file system has no hard links."""
        target, tmp = self._path(key), self._tmp_path()
        try:
            try:  # a file where a folder of the key should be is no existing object
                _write_durably(tmp, data)
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot write {self.uri_of(key)}: {exc}") from exc
            _put(os.link, tmp, target)
            return True
        except FileExistsError:
            raise PreconditionFailed(f"{self.uri_of(key)} already exists") from None
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                return False
            raise StoreError(f"cannot write {self.uri_of(key)}: {exc}") from exc
        finally:
            _discard(tmp)

    def put_file(self, key: str, path: Path) -> None:
        with self._staged(key) as tmp, open(path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(8 * 1024 * 1024):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())

    def get_file(self, key: str, path: Path) -> None:
        path.write_bytes(self.read_bytes(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        # Walk only the folder the prefix ends in, not the whole store: a store keeps every
        # batch's results, and listing one batch must not cost more as the others pile up.
        folder, _, start = prefix.rpartition("/")
        try:
            if folder and check_key(folder).split("/")[0] == ".tmp":
                return []  # staging, not objects
        except StoreError:
            return []  # no key lies under a folder that is not a valid key itself
        top = self.root / folder if folder else self.root
        if not top.is_dir():
            return []
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            if dirpath == str(top):  # below the top folder every name is under the prefix
                skip = ".tmp" if top == self.root else None
                dirnames[:] = [d for d in dirnames if d.startswith(start) and d != skip]
                filenames = [name for name in filenames if name.startswith(start)]
            filenames = [name for name in filenames if not name.startswith(STAGING)]
            keys += (name if rel == "." else f"{rel}/{name}" for name in filenames)
        return sorted(keys)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        try:
            if if_match is None:
                self._path(key).unlink(missing_ok=True)
                return
            with self._locked():  # as a conditional write: no replacement between check and unlink
                current = self._path(key)
                if not current.is_file():
                    return
                if etag_of(current.read_bytes()) != if_match:
                    raise PreconditionFailed(f"{self.uri_of(key)} changed since it was read")
                current.unlink()
        except OSError as exc:
            raise StoreError(f"cannot delete {self.uri_of(key)}: {exc}") from exc


# Answers of an S3 endpoint that is busy or failing, not of a request that is wrong: worth
# another try later, as a connection that failed is.
_BUSY = frozenset({
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
})  # fmt: skip


class S3Store(ObjectStore):
    """Objects in an S3 bucket under a prefix, through boto3's standard configuration."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else s3_client()
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, action: str, key: str) -> StoreError:
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

        from digitflow.data.download import redact_urls

        # botocore quotes the endpoint's URL, with any user and password it holds.
        words = redact_urls(str(exc))
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFoundError(f"no object {self.uri_of(key)}")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return PreconditionFailed(f"{self.uri_of(key)} changed since it was read")
            if code in _BUSY or status >= 500 or status == 429:  # still so after boto's retries
                return StoreUnavailable(f"cannot {action} {self.uri_of(key)} now: {code} {words}")
            return StoreError(f"cannot {action} {self.uri_of(key)}: {code} {words}")
        if isinstance(exc, ConnectionError | HTTPClientError):
            return StoreUnavailable(f"cannot {action} {self.uri_of(key)}: {words}")
        return StoreError(f"cannot {action} {self.uri_of(key)}: {words}")

    def read_bytes(self, key: str) -> bytes:
        return self.read_with_etag(key)[0]

    def read_with_etag(self, key: str) -> tuple[bytes, str]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read(), response["ETag"].strip('"')
        except Exception as exc:
            raise self._error(exc, "read", key) from exc

    def read_at_most(self, key: str, limit: int) -> bytes:
        """The object's bytes, or ObjectTooLarge (nothing read) if it has more than ``limit``."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            with contextlib.closing(response["Body"]) as body:
                size = int(response.get("ContentLength", -1))
                if size > limit:
                    raise ObjectTooLarge(f"{self.uri_of(key)} has {size} bytes", size)
                data = body.read(limit + 1)  # the length given may not be the length sent
        except ObjectTooLarge:
            raise
        except Exception as exc:
            raise self._error(exc, "read", key) from exc
        if len(data) > limit:
            raise ObjectTooLarge(f"{self.uri_of(key)} has over {limit} bytes", len(data))
        return data

    def write_bytes(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if if_absent:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = f'"{if_match}"'
        if len(data) > MULTIPART_THRESHOLD and len(args) == 3:
            import io

            self._upload(key, io.BytesIO(data))
            return self._head_etag(key)
        try:
            return str(self.client.put_object(**args)["ETag"].strip('"'))
        except Exception as exc:
            error = self._error(exc, "write", key)
            if if_absent and isinstance(error, PreconditionFailed):
                error = PreconditionFailed(f"{self.uri_of(key)} already exists")
            raise error from exc

    def _upload(self, key: str, fileobj: Any) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD)
        try:
            self.client.upload_fileobj(fileobj, self.bucket, self._key(key), Config=config)
        except Exception as exc:
            raise self._error(exc, "write", key) from exc

    def _head_etag(self, key: str) -> str:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._error(exc, "stat", key) from exc
        return str(head["ETag"].strip('"'))

    def put_file(self, key: str, path: Path) -> None:
        with open(path, "rb") as fileobj:
            self._upload(key, fileobj)

    def get_file(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except Exception as exc:
            raise self._error(exc, "read", key) from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            error = self._error(exc, "stat", key)
            if isinstance(error, NotFoundError):
                return False
            raise error from exc

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key under ``prefix`` with its size in bytes (the listing gives both)."""
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        found: dict[str, int] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            ):
                found.update((obj["Key"][strip:], obj["Size"]) for obj in page.get("Contents", []))
        except Exception as exc:
            raise self._error(exc, "list", prefix or ".") from exc
        return found

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if if_match is not None:
            args["IfMatch"] = f'"{if_match}"'
        try:
            self.client.delete_object(**args)
        except Exception as exc:
            error = self._error(exc, "delete", key)
            if if_match is not None and isinstance(error, NotFoundError):
                return  # gone already: what was to be deleted is
            raise error from exc


def s3_client() -> Any:
    """An S3 client of boto3's standard configuration; StoreError where its endpoint is no
    URL, without the endpoint (it may hold a password)."""
    import boto3

    try:
        return boto3.client("s3")
    except ValueError as exc:  # botocore's "Invalid endpoint: <the endpoint as given>"
        if "endpoint" not in str(exc).lower():
            raise
        raise StoreError(
            "the S3 endpoint configured (AWS_ENDPOINT_URL, or endpoint_url in the AWS "
            "config) is not a URL: give it as http(s)://host[:port]"
        ) from None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into bucket and prefix."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket:  # s3://key:secret@bucket: refused, and not repeated
        raise StoreError(
            f"S3 URI s3://***@{bucket.rpartition('@')[2]}/{prefix} holds credentials: an S3 "
            f"URI names a bucket only; {AWS_CREDENTIALS}"
        )
    if not bucket:
        raise StoreError(f"invalid S3 URI {uri!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def open_existing(uri: str) -> ObjectStore:
    """``open_store`` for a command that only reads what is there: NotFoundError where a
    local store's folder does not exist (a mistyped --store lists nothing, silently)."""
    store = open_store(uri)
    if isinstance(store, LocalStore) and not store.root.is_dir():
        what = "a file, not a folder" if store.root.exists() else "no such folder"
        raise NotFoundError(
            f"no store at {store.uri} ({what}): give the store with --store or DIGITFLOW_STORE"
        )
    return store


def open_store(uri: str) -> ObjectStore:
    """Open the store a URI names: ``s3://bucket/prefix`` or a local directory."""
    if uri.startswith("s3://"):
        return S3Store(*parse_s3_uri(uri))
    if "://" in uri:
        raise StoreError(f"unsupported store {uri!r}: use a local directory or s3://bucket/prefix")
    return LocalStore(uri)
