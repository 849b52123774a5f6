"""Every correction as a dataset: content-addressed Parquet, a manifest written last, and
a deterministic held-out part.

``datasets/corrections/<version>/{train,heldout}.parquet`` and ``manifest.json``. The
version is a hash of the content (each correction's id, answer and pixels), so the same
corrections always make the same version and building it again rewrites nothing. Which
part a correction is in depends on where its line lies alone (file, page, line), not on
the batch that read it: it stays there as corrections grow, a scan scored again and
corrected in two batches is in one part, and a model is never gated on a line it was tuned
on. The manifest holds each part's SHA-256, and a part that does not match it is refused
when read, as for MNIST.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from digitflow.corrections import record
from digitflow.errors import NotFoundError, SourceError
from digitflow.reader.field import Field
from digitflow.reader.strings import LabelledFields
from digitflow.scoring.results import parquet_bytes
from digitflow.storage import ObjectStore

PREFIX = "datasets/corrections"
# v2: the held-out part chosen by where a line lies, not by its id in its batch.
FORMAT = "digitflow-corrections-parquet-v2"
PARTS = ("train", "heldout")
HELDOUT_EVERY = 5  # one correction in five is held out, by a hash of its id
SCHEMA = pa.schema([
    ("id", pa.string()), ("batch_id", pa.string()), ("file", pa.string()),
    ("page", pa.int32()), ("line", pa.int32()), ("position", pa.int32()),
    ("digits", pa.string()), ("not_digits", pa.bool_()), ("read", pa.string()),
    ("height", pa.int32()), ("width", pa.int32()), ("image", pa.binary()),
    ("by", pa.string()), ("at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


class CorrectionsVersion(BaseModel):
    """A version of the corrections dataset and what it holds."""

    version: str
    train: int
    heldout: int
    batches: list[str]
    uri: str


@dataclass(frozen=True)
class CorrectedLines:
    """One part of a version: line images ready for the reader and the digits each holds
    ("" for an image that holds none)."""

    ids: list[str]
    images: list[np.ndarray]  # uint8 (32, w), ink bright on black
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def labelled(self) -> LabelledFields:
        """The lines as the reader's fields, to read or train on."""
        fields = [Field(i.astype(np.float32) / 255.0, 0.0, 0.0, 1.0, 1.0) for i in self.images]
        return LabelledFields(fields, list(self.texts))


def part_of(file: str, page: int, line: int) -> str:
    """``heldout`` for one line in five, by a hash of where it lies (its file, page and
    line, whatever batch read it), else ``train``: a scan scored again in another batch and
    corrected there too is in the same part both times."""
    value = int(hashlib.sha256(f"{file}\n{page}\n{line}".encode()).hexdigest()[:8], 16)
    return "heldout" if value % HELDOUT_EVERY == 0 else "train"


def key(version: str, name: str) -> str:
    """Object key of a file of a corrections version."""
    return f"{PREFIX}/{version}/{name}"


def _rows(store: ObjectStore) -> list[dict]:
    rows = []
    for c in record.read_all(store):
        if c.kind != "line":
            continue  # digits cut out for the classifier are not the reader's to learn
        pixels = record.crop(store, c)
        rows.append({
            "id": f"{c.batch_id}/{c.item}", "batch_id": c.batch_id, "file": c.file,
            "page": c.page, "line": c.line, "position": c.position, "digits": c.digits,
            "not_digits": c.not_digits, "read": c.read, "height": pixels.shape[0],
            "width": pixels.shape[1], "image": pixels.tobytes(), "by": c.by, "at": c.at,
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["id"])


def _version(rows: list[dict]) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    for r in rows:
        digest.update(f"|{r['id']}|{r['digits']}|{r['not_digits']}|{r['width']}|".encode())
        digest.update(r["image"])
    return digest.hexdigest()[:16]


def build(store: ObjectStore) -> CorrectionsVersion | None:
    """The version of the corrections saved so far, written unless it exists; None if
    there are none."""
    rows = _rows(store)
    if not rows:
        return None
    version = _version(rows)
    parts = {name: [r for r in rows if part_of(r["file"], r["page"], r["line"]) == name]
             for name in PARTS}  # fmt: skip
    manifest_key = key(version, "manifest.json")
    if not store.exists(manifest_key):
        sha256 = {}
        for name in PARTS:
            data = parquet_bytes(pa.Table.from_pylist(parts[name], schema=SCHEMA))
            store.write_bytes(key(version, f"{name}.parquet"), data)
            sha256[name] = hashlib.sha256(data).hexdigest()
        manifest = {
            "format": FORMAT, "version": version, "created_at": datetime.now(UTC).isoformat(),
            "counts": {name: len(parts[name]) for name in PARTS}, "sha256": sha256,
            "batches": sorted({r["batch_id"] for r in rows}),
            "heldout": f"sha256(file\\npage\\nline) % {HELDOUT_EVERY} == 0",
        }  # fmt: skip
        # The manifest goes last: until it exists, the version is invisible to readers.
        store.write_bytes(manifest_key, json.dumps(manifest, indent=2).encode())
    return CorrectionsVersion(
        version=version, train=len(parts["train"]), heldout=len(parts["heldout"]),
        batches=sorted({r["batch_id"] for r in rows}), uri=store.uri_of(key(version, "")),
    )  # fmt: skip


def read_part(store: ObjectStore, version: str, name: str) -> CorrectedLines:
    """One part (``train`` or ``heldout``) of a version, checked against its manifest
    (a version written before the manifest held checksums is read unchecked)."""
    try:
        manifest = json.loads(store.read_bytes(key(version, "manifest.json")))
    except NotFoundError:
        raise NotFoundError(
            f"no corrections dataset {version} in {store.uri} (no manifest): build it "
            "again with `digitflow retrain --adapt`"
        ) from None
    except ValueError as exc:
        where = store.uri_of(key(version, "manifest.json"))
        raise SourceError(f"{where}: not a manifest ({exc})") from exc
    data = store.read_bytes(key(version, f"{name}.parquet"))
    where = store.uri_of(key(version, f"{name}.parquet"))
    expected = manifest.get("sha256", {}).get(name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise SourceError(f"{where}: checksum does not match the manifest (corrupted?)")
    try:
        table = pq.read_table(pa.BufferReader(data))
        rows = table.select(["id", "digits", "height", "width", "image"]).to_pylist()
        images = [np.frombuffer(r["image"], np.uint8).reshape(r["height"], r["width"])
                  for r in rows]  # fmt: skip
    except (pa.ArrowException, KeyError, ValueError) as exc:
        raise SourceError(f"{where}: not a corrections part ({exc})") from exc
    return CorrectedLines([r["id"] for r in rows], images, [r["digits"] for r in rows])
