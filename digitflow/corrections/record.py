"""One correction: the right digits of a reviewed line (or digit), or that it holds none,
saved to the store the moment a person gives it.

``corrections/<batch_id>/<item_id>.png`` is the crop as the model saw it (ink bright on
black) and ``corrections/<batch_id>/<item_id>.json`` the answer, written last: a
correction exists once its JSON does. A later answer for the same item replaces the
earlier one; each is whole, so a page closed mid-way loses nothing already saved.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import numpy as np
from PIL import Image
from pydantic import BaseModel, field_validator

from digitflow.corrections.items import ReviewItem, read_png
from digitflow.errors import NotFoundError, SourceError
from digitflow.storage import ObjectStore

PREFIX = "corrections"
MAX_DIGITS = 32  # no line of a form or check holds more
_DIGITS = re.compile(r"[0-9]*")  # whole: fullmatch, so no newline slips past a `$`


class Correction(BaseModel):
    """What a person said a reviewed item holds."""

    batch_id: str
    item: str  # its id in the batch
    file: str
    page: int
    line: int
    position: int | None = None  # a single digit of a line read digit by digit
    digits: str  # the right digits ("" with not_digits)
    not_digits: bool = False  # the image holds no digits at all
    read: str  # what the model read
    by: str = ""
    at: datetime

    @field_validator("digits")
    @classmethod
    def _only_digits(cls, value: str) -> str:
        if not _DIGITS.fullmatch(value) or len(value) > MAX_DIGITS:
            raise ValueError(f"digits must be 0-9 only, at most {MAX_DIGITS}, not {value!r}")
        return value

    @property
    def kind(self) -> str:
        """``line`` or ``digit``."""
        return "line" if self.position is None else "digit"


def check_digits(digits: str, kind: str, where: str) -> str:
    """``digits`` with spaces dropped, if a person may give them for an item of ``kind``."""
    digits = digits.replace(" ", "")
    if not _DIGITS.fullmatch(digits):
        raise SourceError(f"{where}: {digits!r} is not digits: type 0-9 only")
    if len(digits) > MAX_DIGITS:
        raise SourceError(f"{where}: {len(digits)} digits; a line holds at most {MAX_DIGITS}")
    if kind == "digit" and len(digits) != 1:
        raise SourceError(f"{where}: this crop is one digit; type exactly one (or mark it "
                          "as not digits)")  # fmt: skip
    if kind == "line" and not digits:
        raise SourceError(f"{where}: no digits given: type them, or mark the line as not "
                          "digits")  # fmt: skip
    return digits


def key(batch_id: str, item: str, ext: str) -> str:
    """The key of a correction's JSON (``ext`` "json") or crop ("png")."""
    return f"{PREFIX}/{batch_id}/{item}.{ext}"


ANY = "*"  # ``save``'s ``replacing``: whatever answer is saved, or none


def saved(store: ObjectStore, batch_id: str, item: str) -> tuple[Correction | None, str | None]:
    """The answer saved for an item (None where it cannot be read) and its ETag (None: no
    answer is saved), for a ``save`` that replaces just that one."""
    try:
        data, etag = store.read_with_etag(key(batch_id, item, "json"))
    except NotFoundError:
        return None, None
    try:
        return Correction.model_validate_json(data), etag
    except ValueError:
        return None, etag  # one that cannot be read is saved over


def save(
    store: ObjectStore, item: ReviewItem, pixels: np.ndarray, digits: str | None, by: str = "",
    replacing: str | None = ANY,
) -> Correction:  # fmt: skip
    """Save what ``item`` holds (``digits``, or None: no digits at all) with its crop, over
    the answer whose ETag is ``replacing`` (None: over none; ``ANY``: over any):
    PreconditionFailed, and nothing saved over, where another was saved meanwhile."""
    where = f"{item.file} page {item.page} line {item.line}"
    checked = "" if digits is None else check_digits(digits, item.kind, where)
    correction = Correction(
        batch_id=item.batch_id, item=item.id, file=item.file, page=item.page, line=item.line,
        position=item.position, digits=checked, not_digits=digits is None, read=item.read,
        by=by, at=datetime.now(UTC),
    )  # fmt: skip
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, "PNG")
    store.write_bytes(key(item.batch_id, item.id, "png"), buffer.getvalue())
    answer = correction.model_dump_json().encode()
    if replacing == ANY:
        store.write_bytes(key(item.batch_id, item.id, "json"), answer)
    else:
        store.write_bytes(key(item.batch_id, item.id, "json"), answer,
                          if_match=replacing, if_absent=replacing is None)  # fmt: skip
    return correction


def read_all(store: ObjectStore, batch_id: str | None = None) -> list[Correction]:
    """Every correction saved (of one batch, or of all), in key order."""
    where = f"{PREFIX}/{batch_id}/" if batch_id else f"{PREFIX}/"
    found = []
    for k in store.list(where):
        if k.endswith(".json"):
            try:
                found.append(Correction.model_validate_json(store.read_bytes(k)))
            except ValueError as exc:
                raise SourceError(
                    f"{store.uri_of(k)} is not a correction ({exc.__class__.__name__}): "
                    "remove it, or save that item again"
                ) from exc
    return found


def crop(store: ObjectStore, correction: Correction) -> np.ndarray:
    """The crop a correction was given on (uint8, ink bright on black)."""
    where = key(correction.batch_id, correction.item, "png")
    return read_png(store, where, "save that item again")
