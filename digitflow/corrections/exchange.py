"""Corrections out to a CSV and back in (``file,page,line,digits``), for teams that
correct elsewhere: a spreadsheet, another review tool, labels they already have.

An import is checked whole before anything is saved: a row that names no line of the
batch, digits that are not digits, or a line given two different answers, stops it with
the row's number, and nothing of the file is saved. A line that was not sent to review is
read again from the batch's input, exactly as scoring read it, so any line of the batch
can be corrected; a file that is no longer the one the batch read (its SHA-256, kept in
``files.parquet``, differs) stops the import, since its lines are not those that were read.
A row whose digits are left empty is no answer: nothing is saved for it. An export writes
the answers saved so far and, beside them (``read``), what the model read; to say a reading
is right, copy it into ``digits``.

A file name is written as text a spreadsheet will not run: the scanned folder's names are
anyone's to choose, and one that starts like a formula (``=``, ``+``, ``-``, ``@``) would
be one when the CSV is opened. Such a name is written after a ``'`` (shown as text), and
an import takes it off again.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from digitflow.corrections import items, record
from digitflow.corrections.items import ReviewItem
from digitflow.errors import DigitflowError, SourceError
from digitflow.scoring import commits
from digitflow.scoring.extract import Reading, extract
from digitflow.scoring.inputs import read_input
from digitflow.scoring.resume import read_record
from digitflow.storage import ObjectStore

COLUMNS = ["file", "page", "line", "digits"]
READ = "read"  # exported beside them: what the model read (an import does not need it)
NOT_DIGITS = "-"  # in the digits column: the line holds no digits at all
MAX_ROWS = 1_000_000
MAX_BYTES = 64 << 20  # far more than a million rows of file,page,line,digits need
# How a cell starts that a spreadsheet reads as a formula; and the quote that marks one as
# text, escaped too, so that every name reads back as it was written.
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")


class ImportSummary(BaseModel):
    """What an import saved."""

    batch_id: str
    rows: int
    saved: int
    unanswered: int = 0  # rows whose digits were left empty: nothing saved for them
    from_review: int  # on the crop the batch wrote for review
    read_again: int  # lines not sent to review, read again from the batch's input
    not_digits: int
    corrections_uri: str


def as_text(name: str) -> str:
    """A file name as a CSV cell that no spreadsheet runs as a formula."""
    return "'" + name if name.startswith(_FORMULA) else name


def from_text(cell: str) -> str:
    """The file name a cell holds, written by ``as_text`` or as it is."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA) else cell


def export_csv(store: ObjectStore, batch_id: str, path: Path) -> int:
    """Write the batch's review items (largest doubt first) as ``file,page,line,digits,read``:
    the digits being the answer already saved, empty where there is none, and ``read`` what
    the model read; the rows written. What was read is never written as an answer, so that
    rows nobody looked at do not come back as corrections."""
    saved = {c.item: c for c in record.read_all(store, batch_id)}
    every = items.review_items(store, batch_id)
    found = [i for i in every if i.kind == "line"]
    if every and not found:
        raise DigitflowError(
            f"batch {batch_id} was read digit by digit (--reader classifier): its {len(every)} "
            "review items are digits, and a CSV holds lines; correct them on the review page "
            f"(digitflow review {batch_id})"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, READ])
    for item in found:
        done = saved.get(item.id)
        digits = "" if done is None else (NOT_DIGITS if done.not_digits else done.digits)
        writer.writerow([as_text(item.file), item.page, item.line, digits, item.read])
    _write_whole(path, buffer.getvalue())
    return len(found)


def _write_whole(path: Path, text: str) -> None:
    """Write ``text`` to a file whole or not at all (an export cut short must not pass for a
    batch's last lines): staged beside the file a link leads to, with its mode, then renamed
    over it. A pipe, a device or a descriptor (``/dev/stdout``, even redirected to a file) is
    written as it is, appended to as a shell's ``>>`` asks."""
    special = path.absolute().parts[1:2] in (("dev",), ("proc",))  # a descriptor's name
    if special or (path.exists() and not path.is_file()):
        try:
            with path.open("a") as out:
                out.write(text)
        except OSError as exc:
            raise DigitflowError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise DigitflowError(f"cannot write {path}: {exc}") from exc
    staged = target.with_name(f".{target.name}.partial")
    try:
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied")
        staged.write_text(text)
        if target.exists():
            shutil.copymode(target, staged)  # a CSV of people's answers stays as private
        staged.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):  # not made, or on a file system that refuses all
            staged.unlink(missing_ok=True)
        raise DigitflowError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _rows(path: Path) -> list[tuple[int, str, int, int, str]]:
    """(row number, file, page, line, digits) of each row, checked."""
    try:  # read up to the limit: a pipe or a device says nothing of its size beforehand
        with path.open(encoding="utf-8-sig", newline="") as f:
            text = f.read(MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read corrections from {path}: {exc}") from exc
    if len(text) > MAX_BYTES:
        raise SourceError(f"{path} is over {MAX_BYTES >> 20} MiB: not a corrections CSV, "
                          "or one to import in parts")  # fmt: skip
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, str, int, int, str]] = []
    number = 0  # rows as a spreadsheet numbers them: blank ones too, a cell's line breaks not
    try:
        header = next(reader, [])
        number = 1
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise SourceError(f"{path}: no column {', '.join(missing)}; the header must name "
                              f"{','.join(COLUMNS)}")  # fmt: skip
        at = {c: header.index(c) for c in COLUMNS}
        for cells in reader:
            number += 1
            if cells:
                row = {c: cells[k] if k < len(cells) else None for c, k in at.items()}
                rows.append(_row(path, number, row))
    except csv.Error as exc:  # in the row after the last read: a cell over the csv limit, say
        raise SourceError(f"{path} row {number + 1}: not CSV ({exc})") from exc
    return rows


def _row(path: Path, number: int, row: dict[str, str | None]) -> tuple[int, str, int, int, str]:
    """Row ``number`` of the file, checked; its digits "" where none are given."""
    if number > MAX_ROWS:
        raise SourceError(f"{path}: more than {MAX_ROWS:,} rows; import it in parts")
    where = f"{path} row {number}"
    try:
        page, line = int(row["page"] or ""), int(row["line"] or "")
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{where}: page and line must be whole numbers") from exc
    digits = (row["digits"] or "").strip()
    if digits and digits != NOT_DIGITS:
        digits = record.check_digits(digits, "line", where)
    return number, from_text(row["file"] or ""), page, line, digits


def _lines_of(
    store: ObjectStore, batch_id: str, name: str, sha256: str | None, follow_outside_links: bool
) -> dict[tuple[int, int], np.ndarray]:
    """Every line scoring found in one file of the batch, read again from its input, which
    must be the bytes the batch read (``sha256``; None: a batch that did not keep it)."""
    batch = read_record(store, batch_id)
    data = read_input(batch.input, name, follow_outside_links)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise SourceError(
            f"{name} in {batch.input} is not the file batch {batch_id} read: it was replaced "
            "or changed since, so its lines are not the lines that were read. Correct it in a "
            "batch that reads it as it is now (score it again under another --batch-id); "
            "nothing was imported"
        )
    found = extract(data, name, Reading("line", batch.layout))
    if found.error:
        raise SourceError(f"{name} cannot be read again from {batch.input}: {found.error}")
    return {(page, line.line): line.pixels for page, line in found.lines}


def import_csv(
    store: ObjectStore, batch_id: str, path: Path, by: str = "", follow_outside_links: bool = False
) -> ImportSummary:
    """Save every row of a ``file,page,line,digits`` CSV as a correction of the batch (a
    line read again from a symbolic link out of the batch's input folder only with
    ``follow_outside_links``, as scoring read it)."""
    rows = _rows(path)
    review = {(i.file, i.page, i.line): i for i in items.review_items(store, batch_id)
              if i.kind == "line"}  # fmt: skip
    ledger = commits.read_ledger(store, batch_id).select(["file", "lines", "sha256"]).to_pylist()
    read_as = {r["file"]: r["sha256"] for r in ledger}
    lines = {(r["file"], ln["page"], ln["line"]): ln["digits"] for r in ledger
             for ln in r["lines"] or []}  # fmt: skip
    again: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    todo: list[tuple[ReviewItem, np.ndarray, str]] = []
    first: dict[tuple[str, int, int], tuple[int, str]] = {}
    for number, name, page, line, digits in rows:
        if not digits:
            continue  # no answer given for this line (yet)
        where = (name, page, line)
        if where not in lines:
            raise SourceError(
                f"{path} row {number}: batch {batch_id} has no line {line} on page {page} of "
                f"{name!r}; nothing was imported"
            )
        before, answer = first.setdefault(where, (number, digits))
        if answer != digits:
            raise SourceError(
                f"{path} row {number}: line {line} on page {page} of {name!r} is corrected "
                f"on row {before} too, otherwise; nothing was imported"
            )
        if before != number:
            continue  # the same answer twice
        if where in review:
            item = review[where]
            pixels = items.crop_pixels(store, item)
        else:
            if name not in again:
                again[name] = _lines_of(store, batch_id, name, read_as[name], follow_outside_links)
            item = ReviewItem(id=items.item_id(name, page, line), batch_id=batch_id, file=name,
                              page=page, line=line, position=None, read=lines[where],
                              runner_up=lines[where], doubt=0.0, crop_key="")  # fmt: skip
            pixels = again[name][page, line]
        todo.append((item, pixels, digits))
    for item, pixels, digits in todo:
        record.save(store, item, pixels, None if digits == NOT_DIGITS else digits, by)
    return ImportSummary(
        batch_id=batch_id, rows=len(rows), saved=len(todo),
        unanswered=sum(1 for *_, digits in rows if not digits),
        from_review=sum(1 for i, _, _ in todo if i.crop_key),
        read_again=sum(1 for i, _, _ in todo if not i.crop_key),
        not_digits=sum(1 for _, _, d in todo if d == NOT_DIGITS),
        corrections_uri=store.uri_of(f"{record.PREFIX}/{batch_id}"),
    )  # fmt: skip
