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
import secrets
import shutil
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel

from digitflow.corrections import items, record
from digitflow.corrections.items import ReviewItem
from digitflow.errors import DigitflowError, NotFoundError, SourceError, UnreadableNow
from digitflow.scoring import commits
from digitflow.scoring.extract import Reading, extract
from digitflow.scoring.inputs import read_input
from digitflow.scoring.resume import read_record
from digitflow.storage import ObjectStore

COLUMNS = ["file", "page", "line", "digits"]
READ = "read"  # exported beside them: what the model read (an import does not need it)
# Exported too: when the answer in ``digits`` was saved (empty: none was). An import of a
# file that has it saves no row over an answer saved since the export.
SAVED_AT = "saved_at"
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
    unchanged: int = 0  # rows whose answer is the one already saved: saved over by none
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
    writer.writerow([*COLUMNS, READ, SAVED_AT])
    for item in found:
        done = saved.get(item.id)
        digits = "" if done is None else _answer(done)
        at = "" if done is None else done.at.isoformat()
        writer.writerow([as_text(item.file), item.page, item.line, digits, item.read, at])
    _write_whole(path, buffer.getvalue())
    return len(found)


def _answer(correction: record.Correction) -> str:
    """A saved answer as a CSV's digits cell."""
    return NOT_DIGITS if correction.not_digits else correction.digits


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
    # A name of its own, made here and now (never a link laid there, nor another export's).
    staged = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    made = False
    try:
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied")
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        made = True
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
        if target.exists():
            shutil.copymode(target, staged)  # a CSV of people's answers stays as private
        staged.replace(target)
    except OSError as exc:
        if made:
            with contextlib.suppress(OSError):  # on a file system that refuses all
                staged.unlink(missing_ok=True)
        raise DigitflowError(f"cannot write {path}: {exc.strerror or exc}") from exc


class Row(NamedTuple):
    """One row of an imported CSV, checked."""

    number: int  # as a spreadsheet numbers it
    file: str
    page: int
    line: int
    digits: str  # "" where none are given
    saved_at: str | None  # None in a file without that column; "" where none was saved


def _rows(path: Path) -> list[Row]:
    """Each row of the file, checked."""
    try:  # read up to the limit: a pipe or a device says nothing of its size beforehand
        with path.open(encoding="utf-8-sig", newline="") as f:
            text = f.read(MAX_BYTES + 1)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path} is not UTF-8 text (byte {exc.start}): save it as CSV UTF-8 (a "
            'spreadsheet\'s "CSV UTF-8" format) and import that'
        ) from exc
    except OSError as exc:
        raise SourceError(f"cannot read corrections from {path}: {exc}") from exc
    if len(text) > MAX_BYTES:
        raise SourceError(f"{path} is over {MAX_BYTES >> 20} MiB: not a corrections CSV, "
                          "or one to import in parts")  # fmt: skip
    reader = csv.reader(io.StringIO(text))
    rows: list[Row] = []
    number = 0  # rows as a spreadsheet numbers them: blank ones too, a cell's line breaks not
    try:
        header = next(reader, [])
        number = 1
        at = _columns(path, header)
        for cells in reader:
            number += 1
            if cells:
                row = {c: cells[k] if k < len(cells) else None for c, k in at.items()}
                rows.append(_row(path, number, row))
    except csv.Error as exc:  # in the row after the last read: a cell over the csv limit, say
        raise SourceError(f"{path} row {number + 1}: not CSV ({exc})") from exc
    return rows


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    """Where each column is in the header: the four an import needs, and ``saved_at``."""
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        named = [cell.strip().lower() for cell in header]
        hint = (
            ": its header is one cell holding a ';' (save it with commas as separators)"
            if len(header) == 1 and ";" in header[0]
            else ": names are lower case, without spaces"
            if all(c in named for c in COLUMNS)
            else ""
        )
        raise SourceError(f"{path}: no column {', '.join(missing)}; the header must name "
                          f"{','.join(COLUMNS)}{hint}")  # fmt: skip
    return {c: header.index(c) for c in [*COLUMNS, SAVED_AT] if c in header}


def _row(path: Path, number: int, row: dict[str, str | None]) -> Row:
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
    saved_at = (row[SAVED_AT] or "").strip() if SAVED_AT in row else None
    return Row(number, from_text(row["file"] or ""), page, line, digits, saved_at)


def _lines_of(
    store: ObjectStore, batch_id: str, name: str, sha256: str | None, follow_outside_links: bool
) -> dict[tuple[int, int], np.ndarray]:
    """Every line scoring found in one file of the batch, read again from its input, which
    must be the bytes the batch read (``sha256``; None: a batch that did not keep it)."""
    batch = read_record(store, batch_id)
    try:
        data = read_input(batch.input, name, follow_outside_links)
    except UnreadableNow as exc:
        if not isinstance(exc.__cause__, FileNotFoundError | NotFoundError):
            raise  # a link out of the folder, no permission: said as scoring says it
        raise SourceError(
            f"{name} is no longer in {batch.input}: its lines that were not sent to review "
            "are read again from the batch's input. Put the file back, or leave its rows "
            "out; nothing was imported"
        ) from exc
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
    answers = {c.item: c for c in record.read_all(store, batch_id)}
    again: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    todo: list[tuple[ReviewItem, np.ndarray, str]] = []
    first: dict[tuple[str, int, int], tuple[int, str]] = {}
    unchanged = 0
    for number, name, page, line, digits, saved_at in rows:
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
        current = answers.get(items.item_id(name, page, line))
        if current is not None and _answer(current) == digits:
            unchanged += 1
            continue
        row = f"{path} row {number}: line {line} on page {page} of {name!r}"
        _check_replaces(row, digits, current, saved_at)
        _check_zeros(row, digits, current, lines[where])
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
        batch_id=batch_id, rows=len(rows), saved=len(todo), unchanged=unchanged,
        unanswered=sum(1 for row in rows if not row.digits),
        from_review=sum(1 for i, _, _ in todo if i.crop_key),
        read_again=sum(1 for i, _, _ in todo if not i.crop_key),
        not_digits=sum(1 for _, _, d in todo if d == NOT_DIGITS),
        corrections_uri=store.uri_of(f"{record.PREFIX}/{batch_id}"),
    )  # fmt: skip


def _check_replaces(
    row: str, digits: str, current: record.Correction | None, saved_at: str | None
) -> None:
    """Refuse a row of an exported file (it has ``saved_at``) whose answer would replace one
    saved after the export: on the review page, or by another import since."""
    if saved_at is None or current is None:
        return  # a file made elsewhere says what it says; or there is nothing to replace
    try:
        exported = datetime.fromisoformat(saved_at) if saved_at else None
    except ValueError as exc:
        raise SourceError(f"{row}: saved_at {saved_at[:40]!r} is no time; nothing was "
                          "imported") from exc  # fmt: skip
    if exported != current.at:
        by = f" by {current.by}" if current.by else ""
        raise SourceError(
            f"{row} was answered {_answer(current)!r}{by} at {current.at:%Y-%m-%d %H:%M:%S} "
            f"UTC, after this file was exported; its {digits!r} would replace that answer: "
            "export again and correct the new file, or take the row out; nothing was imported"
        )


def _check_zeros(row: str, digits: str, current: record.Correction | None, read: str) -> None:
    """Refuse digits that are a saved answer or a reading without its leading zeros, as a
    spreadsheet saves a column of numbers (``0042`` as ``42``)."""
    known = [read] + ([current.digits] if current is not None else [])
    for whole in known:
        if len(whole) > len(digits) and (whole.lstrip("0") or "0") == digits:
            raise SourceError(
                f"{row}: {digits!r} is {whole!r} without its leading zeros, as a spreadsheet "
                "saves a number: keep the digits column as text and import again, or, if "
                "those zeros are not written, correct the line on the review page; nothing "
                "was imported"
            )
