"""The files of a batch: a local folder or an S3 prefix, recursively, in a stable order."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from digitflow.errors import (
    NotFoundError,
    ObjectTooLarge,
    SourceError,
    StoreError,
    TransientError,
    UnreadableNow,
)
from digitflow.scoring import folder
from digitflow.scoring.folder import list_folder, read_entry
from digitflow.storage import OWN_FOLDERS, S3Store, parse_s3_uri


@dataclass(frozen=True)
class InputFile:
    """One input file: its name relative to the batch root, and its size (-1: not a regular
    file, or unknown)."""

    name: str
    size: int


def _source(root: str) -> S3Store | Path:
    if root.startswith("s3://"):
        return S3Store(*parse_s3_uri(root))
    return Path(root)


def canonical_input(root: str) -> str:
    """The input as one spelling: an absolute folder path, or ``s3://bucket/prefix``."""
    if root.startswith("s3://"):
        bucket, key_prefix = parse_s3_uri(root)
        return f"s3://{bucket}/{key_prefix}".rstrip("/")
    return str(Path(root).expanduser().resolve())


# A batch's id: one name, which its results' keys are made of.
BATCH_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def default_batch_id(root: str, model_version: str) -> str:
    """A batch id that names the input and is the same for the same input and model (and
    any other choice of how it is read, after the model's version).

    A rerun of the same folder with the same model resumes its batch; a new champion
    starts a new batch instead of mixing two models' readings in one.
    """
    where = canonical_input(root)
    tail = "-".join(where.rstrip("/").split("/")[-2:])
    slug = re.sub(r"[^A-Za-z0-9]+", "-", tail).strip("-").lower()[-40:] or "input"
    digest = hashlib.sha256(f"{where}\n{model_version}".encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


def store_inside(root: str, store_uri: str) -> str | None:
    """Where the store lies inside the input (its path relative to the input's root), if it
    does: ``digitflow score .`` with the store in ``./.digitflow/store``. SourceError if the
    input is the store itself, or lies in one of the folders digitflow writes in it (an
    inbox beside them is the user's)."""
    where, store = canonical_input(root), canonical_input(store_uri)
    inner = where.removeprefix(store + "/").split("/")[0] if where.startswith(store + "/") else None
    if where == store or inner in OWN_FOLDERS:
        raise SourceError(
            f"input {root} is the store {store_uri}, or lies in its own folders: score a folder "
            "of scans, or use another store (--store)"
        )
    return store.removeprefix(where + "/") if store.startswith(where + "/") else None


def check_input(root: str, store_uri: str) -> None:
    """SourceError if a local input is no folder, or if the input is the store or lies in
    one of its own folders."""
    if not root.startswith("s3://"):
        folder.check_folder(Path(root))
    store_inside(root, store_uri)


def list_inputs(root: str, leave_out: str | None = None) -> list[InputFile]:
    """Every file under ``root`` (hidden files included: nothing is skipped silently), but
    those under the folder ``leave_out`` (the store, where it lies inside the input).

    In a local folder, entries that cannot be read as files (broken links, folders that
    cannot be listed, named pipes) are listed too, so that reading them quarantines them.
    """
    source = _source(root)
    if isinstance(source, Path):
        files = [InputFile(name, size) for name, size in list_folder(source)]
    else:
        # Empty keys ending in '/' are the folder markers some S3 consoles create, not files.
        objects = source.sizes("")
        files = [InputFile(key, size) for key, size in objects.items()
                 if not (key.endswith("/") and size == 0)]  # fmt: skip
        if not files:  # on S3 an empty prefix and a mistyped one look the same
            raise SourceError(f"input {root} holds no files: check the bucket and prefix")
    if leave_out is not None:
        files = [f for f in files if f.name != leave_out and not f.name.startswith(leave_out + "/")]
    # An existing empty folder (an inbox with nothing new) is a batch of zero files.
    return sorted(files, key=lambda f: f.name)


def read_input(root: str, name: str, follow_outside_links: bool = False) -> bytes:
    """The bytes of one input file; SourceError naming it when it cannot be read.

    Errors that may pass on a second try (an S3 endpoint that did not answer) are
    raised as they are, so the caller retries instead of quarantining the file.
    """
    source = _source(root)
    if isinstance(source, Path):
        return read_entry(source, name, follow_outside_links)
    where = f"{root.rstrip('/')}/{name}"
    if any(part in ("", ".", "..") for part in name.split("/")):
        # A key S3 allows but no path: the batch's results (review crops) are named by it.
        raise SourceError(
            f"{where}: a key with an empty, '.' or '..' part ('//', a trailing '/'), which "
            "digitflow cannot name its results by: not read; copy it to a plain key"
        )
    try:
        return source.read_at_most(name, folder.MAX_FILE_BYTES)
    except TransientError:
        raise
    except ObjectTooLarge as exc:
        raise SourceError(folder.too_large(where, exc.size)) from exc
    except NotFoundError as exc:
        raise UnreadableNow(
            f"{where}: listed but gone when read (deleted or moved while the batch ran)"
        ) from exc
    except StoreError as exc:
        hint = "; restore it from the archive first" if "InvalidObjectState" in str(exc) else ""
        raise UnreadableNow(f"{where}: cannot be read ({exc}){hint}") from exc
