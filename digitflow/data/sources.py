"""Fetching the four MNIST files from a directory, an http(s) base URL or an S3 prefix."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from digitflow.data.download import Deadline, download, redact
from digitflow.errors import SourceError, SourceUnreachable

logger = logging.getLogger(__name__)

# The canonical distribution's MD5s (as published with the dataset).
PUBLISHED_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FILES = tuple(PUBLISHED_MD5)
PUBLISHED_NAMES = {md5: name for name, md5 in PUBLISHED_MD5.items()}
PUBLIC_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


@dataclass(frozen=True)
class SourceFile:
    """One fetched file: where it came from, its bytes and their checksums."""

    name: str
    location: str  # shown and recorded: a URL without its credentials
    data: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def fetch(
    source: str | None, timeout_s: float = 60.0, deadline_s: float = 600.0
) -> dict[str, SourceFile]:
    """Fetch the four MNIST files from ``source`` (None: the public mirrors).

    Over http(s), ``timeout_s`` bounds each read and ``deadline_s`` the whole download of
    one source's four files.
    """
    if source is None:
        return _fetch_mirrors(timeout_s, deadline_s)
    if source.startswith("s3://"):
        return _fetch_s3(source)
    if source.startswith(("http://", "https://")):
        return _fetch_url(source, timeout_s, deadline_s)
    return _fetch_dir(Path(source))


def verify(files: dict[str, SourceFile], accept_custom: bool) -> bool:
    """Check every file against the published MD5s; True when all match.

    With ``accept_custom`` a mismatch is allowed (the manifest then records the
    files' own checksums and that they were not the published ones). A published file
    in another file's place is refused either way: its checksum says what it is.
    """
    for f in files.values():
        known = PUBLISHED_NAMES.get(f.md5, f.name)
        if known != f.name:
            raise SourceError(
                f"{f.location}: this is the published {known} (its MD5 {f.md5} is that "
                f"file's), given as {f.name}: the files are in each other's places; give "
                "each its own name (--accept-custom does not change this)"
            )
    mismatched = [f for f in files.values() if f.md5 != PUBLISHED_MD5[f.name]]
    if mismatched and not accept_custom:
        f = mismatched[0]
        raise SourceError(
            f"{f.location}: MD5 {f.md5} does not match the published "
            f"{PUBLISHED_MD5[f.name]}; if this is a deliberate custom dataset, "
            "pass --accept-custom (its own checksums are then recorded)"
        )
    return not mismatched


def _fetch_all(
    get: Callable[[str], SourceFile], cut: Callable[[], None] = lambda: None
) -> dict[str, SourceFile]:
    """The four files, fetched at once. Stopped meanwhile (Ctrl+C, a SIGTERM), or a fetch
    found failed as they are collected, ``cut`` ends the fetches still running: the pool
    waits for them before it ends."""
    with ThreadPoolExecutor(len(FILES)) as pool:
        try:
            return dict(zip(FILES, pool.map(get, FILES), strict=True))
        except BaseException:
            cut()
            raise


def _fetch_dir(root: Path) -> dict[str, SourceFile]:
    if not root.exists():
        raise SourceError(f"MNIST source directory {root} does not exist")
    if not root.is_dir():
        raise SourceError(f"MNIST source {root} is not a directory")
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise SourceError(
            f"{root}: missing {', '.join(missing)}; a source holds the four MNIST .gz files"
        )
    return {name: SourceFile(name, str(root / name), (root / name).read_bytes()) for name in FILES}


def _join_url(base: str, name: str) -> str:
    return base if base.endswith(name) else f"{base.rstrip('/')}/{name}"


def _get_url(url: str, timeout_s: float, deadline: Deadline) -> SourceFile:
    data = download(url, timeout_s, deadline)
    return SourceFile(url.rsplit("/", 1)[-1], redact(url), data)


def _fetch_url(base: str, timeout_s: float, deadline_s: float) -> dict[str, SourceFile]:
    with Deadline(deadline_s) as deadline:
        return _fetch_all(
            lambda name: _get_url(_join_url(base, name), timeout_s, deadline), deadline.cut
        )


def _fetch_mirrors(timeout_s: float, deadline_s: float) -> dict[str, SourceFile]:
    errors = []
    for mirror in PUBLIC_MIRRORS:
        try:
            return _fetch_url(mirror, timeout_s, deadline_s)
        except SourceError as exc:
            logger.warning("MNIST mirror %s failed: %s", mirror, exc)
            errors.append(str(exc))
    raise SourceError("no public MNIST mirror answered: " + "; ".join(errors))


def _fetch_s3(uri: str) -> dict[str, SourceFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    from digitflow.storage import parse_s3_uri, s3_client

    bucket, prefix = parse_s3_uri(uri)
    client = s3_client()

    def get(name: str) -> SourceFile:
        key = f"{prefix.strip('/')}/{name}".lstrip("/")
        location = f"s3://{bucket}/{key}"
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise SourceError(f"{location}: no such object under {uri}") from exc
            raise SourceError(f"{location}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise SourceUnreachable(f"{location}: {exc}") from exc
        return SourceFile(name, location, body)

    return _fetch_all(get)
