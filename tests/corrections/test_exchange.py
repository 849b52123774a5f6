"""Corrections out to a CSV and back in: whole or not at all, any line of the batch."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from digitflow.corrections import dataset, exchange, items, record
from digitflow.errors import NotFoundError, SourceError
from digitflow.scoring import commits
from digitflow.storage import ObjectStore, open_store
from tests.corrections.conftest import NAMES, ReviewBatch

pytestmark = pytest.mark.slow


def _lines(batch: ReviewBatch) -> list[tuple[str, int, int]]:
    ledger = commits.read_ledger(open_store(batch.store), batch.batch_id).to_pylist()
    return [(r["file"], ln["page"], ln["line"]) for r in ledger for ln in r["lines"]]


def _write(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([exchange.COLUMNS, *rows])
    return path


def test_the_truth_imported_is_saved_for_every_line_and_exported_back(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    lines = _lines(review_batch)
    assert len(lines) == len(review_batch.truth)  # a field is one line
    rows = [[f, p, ln, review_batch.truth[f]] for f, p, ln in lines]
    summary = exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "in.csv", rows),
                                  by="team")  # fmt: skip
    assert (summary.rows, summary.saved) == (len(lines), len(lines))
    saved = {c.file: c for c in record.read_all(store, review_batch.batch_id)}
    assert {f: c.digits for f, c in saved.items()} == review_batch.truth
    assert {c.by for c in saved.values()} == {"team"}
    out = tmp_path / "out.csv"
    written = exchange.export_csv(store, review_batch.batch_id, out)
    exported = {exchange.from_text(r["file"]): r["digits"] for r in csv.DictReader(out.open())}
    assert written == len(items.review_items(store, review_batch.batch_id))
    assert all(review_batch.truth[f] == d for f, d in exported.items())


def test_a_file_named_like_a_formula_is_exported_as_text_and_imported_back(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    lines = _lines(review_batch)
    out = tmp_path / "out.csv"
    everything = [[exchange.as_text(f), p, ln, review_batch.truth[f]] for f, p, ln in lines]
    exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "in.csv", everything))
    exchange.export_csv(store, review_batch.batch_id, out)
    cells = [row[0] for row in list(csv.reader(out.open()))[1:]]
    assert cells and not [c for c in cells if c.startswith(("=", "+", "-", "@"))]
    named = set(NAMES.values()) & {i.file for i in items.review_items(store, review_batch.batch_id)}
    assert named, "no field named like a formula went to review: the export would not show it"
    assert {exchange.as_text(n) for n in named} <= set(cells)
    escaped = ["'=1+2 field_00.jpg", "'@field_01.jpg", "''field_02.jpg"]
    assert [exchange.as_text(n) for n in NAMES.values()] == escaped
    # As a spreadsheet saves a cell it showed as text: the names as they are.
    plain = [[f, p, ln, review_batch.truth[f]] for f, p, ln in lines]
    exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "plain.csv", plain))
    saved = {c.file: c.digits for c in record.read_all(store, review_batch.batch_id)}
    assert saved == review_batch.truth  # both imports: every name read back as it is


def test_a_line_not_sent_to_review_is_read_again_from_the_input(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    item = items.review_items(store, review_batch.batch_id)[0]
    pixels = items.crop_pixels(store, item)
    store.delete(item.crop_key)  # as if it had been read with confidence
    rows = [[item.file, item.page, item.line, review_batch.truth[item.file]]]
    summary = exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "c.csv", rows))
    assert (summary.read_again, summary.from_review) == (1, 0)
    [saved] = record.read_all(store)
    assert np.array_equal(record.crop(store, saved), pixels)  # the very line scoring read


def test_a_file_replaced_or_gone_since_scoring_is_not_read_again(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    folder = tmp_path / "fields"  # the batch's input, moved here so that it can be changed
    shutil.copytree(review_batch.folder, folder)
    key = f"scoring/{review_batch.batch_id}/batch.json"
    started = json.loads(store.read_bytes(key))
    store.write_bytes(key, json.dumps({**started, "input": str(folder)}).encode())
    item, *others = items.review_items(store, review_batch.batch_id)
    other = next(i for i in others if i.file != item.file)
    store.delete(item.crop_key)  # as if it had been read with confidence
    rows = [[item.file, item.page, item.line, review_batch.truth[item.file]]]
    (folder / item.file).write_bytes((folder / other.file).read_bytes())  # a re-scan, say
    with pytest.raises(SourceError, match="is not the file batch fields read: it was replaced"):
        exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "c.csv", rows))
    assert record.read_all(store) == []  # nothing was saved
    (folder / item.file).unlink()  # gone since: said so, and what to do
    with pytest.raises(SourceError, match="is no longer in .* Put the file back"):
        exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "c.csv", rows))
    shutil.copy(review_batch.folder / item.file, folder / item.file)  # the scan it read
    summary = exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "c.csv", rows))
    assert summary.read_again == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["nope.jpg", 0, 0, "12"], "no line 0 on page 0 of 'nope.jpg'"),
        (["{file}", 0, 7, "12"], "no line 7"),
        (["{file}", "x", 0, "12"], "whole numbers"),
        (["{file}", 0, 0, "12a"], "not digits"),
        (["{file}", 0, 0, "1\n2"], "not digits"),  # a line break is no digit
        (["x" * 200_000, 0, 0, "12"], "not CSV .field larger than field limit"),
    ],
)
def test_a_bad_row_stops_the_import_with_its_number_and_saves_nothing(
    review_batch: ReviewBatch, tmp_path: Path, row: list, message: str
) -> None:
    store = open_store(review_batch.store)
    file = _lines(review_batch)[0][0]
    good = [[f, p, ln, review_batch.truth[f]] for f, p, ln in _lines(review_batch)[1:4]]
    bad = [file if v == "{file}" else v for v in row]
    path = _write(tmp_path / "bad.csv", [*good, bad])
    with pytest.raises(SourceError, match=message) as caught:
        exchange.import_csv(store, review_batch.batch_id, path)
    assert "row 5" in str(caught.value)
    assert record.read_all(store) == []


def test_a_line_given_two_answers_stops_the_import_and_the_same_answer_twice_is_one(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    file, page, line = _lines(review_batch)[0]
    truth = review_batch.truth[file]
    other = "1" if truth != "1" else "2"
    rows = [[file, page, line, truth], [file, page, line, truth], [file, page, line, other]]
    with pytest.raises(SourceError, match="row 4: line .* is corrected on row 2 too, otherwise"):
        exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "two.csv", rows))
    assert record.read_all(store) == []
    summary = exchange.import_csv(store, review_batch.batch_id,
                                  _write(tmp_path / "same.csv", rows[:2]))  # fmt: skip
    assert (summary.rows, summary.saved) == (2, 1)
    assert [c.digits for c in record.read_all(store)] == [truth]


def test_a_huge_file_is_refused_before_it_is_read(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    path = _write(tmp_path / "huge.csv", [])
    with path.open("r+b") as f:
        f.truncate(exchange.MAX_BYTES + 1)  # sparse: nothing is written to disk
    with pytest.raises(SourceError, match="is over 64 MiB"):
        exchange.import_csv(open_store(review_batch.store), review_batch.batch_id, path)


def test_a_file_without_the_columns_is_refused(review_batch: ReviewBatch, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("name,value\na,1\n")
    with pytest.raises(SourceError, match="no column file, page, line, digits"):
        exchange.import_csv(open_store(review_batch.store), review_batch.batch_id, path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file;page;line;digits\na;0;0;1\n", "one cell holding a ';'"),
        ("File,Page,Line,Digits\na,0,0,1\n", "names are lower case"),
        ("file,page,line,digits\ncaf\xe9,0,0,1\n", "is not UTF-8 text .*CSV UTF-8"),
    ],
)
def test_a_file_saved_otherwise_by_a_spreadsheet_is_refused_with_what_to_do(
    review_batch: ReviewBatch, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(SourceError, match=message):
        exchange.import_csv(open_store(review_batch.store), review_batch.batch_id, path)


def _export_rows(store: ObjectStore, batch_id: str, path: Path) -> list[dict[str, str]]:
    exchange.export_csv(store, batch_id, path)
    return list(csv.DictReader(path.open()))


def _rewrite(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_an_import_saves_no_row_over_an_answer_given_after_its_export(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    """A team fills in an export while someone answers on the page: the answers of the
    file may not silently undo the later ones; the rows unchanged keep who gave them."""
    store, batch_id = open_store(review_batch.store), review_batch.batch_id
    found = [i for i in items.review_items(store, batch_id) if i.kind == "line"]
    first, second = found[0], found[1]
    record.save(store, first, items.crop_pixels(store, first), "12", by="bob")
    out = tmp_path / "out.csv"
    rows = _export_rows(store, batch_id, out)
    by_id = {items.item_id(exchange.from_text(r["file"]), int(r["page"]), int(r["line"])): r
             for r in rows}  # fmt: skip
    assert by_id[first.id]["digits"] == "12" and by_id[first.id]["saved_at"]
    later = record.save(store, first, items.crop_pixels(store, first), "1429", by="ana")
    by_id[second.id]["digits"] = "77"
    with pytest.raises(SourceError, match=r"was answered '1429' by ana .* after this file was "
                       r"exported; its '12' would replace that answer"):  # fmt: skip
        exchange.import_csv(store, batch_id, _rewrite(out, rows), by="team")
    assert {c.item: c for c in record.read_all(store, batch_id)} == {first.id: later}

    fresh = _export_rows(store, batch_id, tmp_path / "fresh.csv")
    again = exchange.import_csv(store, batch_id, tmp_path / "fresh.csv", by="carol")
    assert (again.saved, again.unchanged) == (0, 1)  # ana's answer, as it was
    assert {c.item: c for c in record.read_all(store, batch_id)} == {first.id: later}
    assert len(fresh) == len(rows)


def test_digits_that_lost_their_leading_zeros_in_a_spreadsheet_are_refused(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store, batch_id = open_store(review_batch.store), review_batch.batch_id
    item = next(i for i in items.review_items(store, batch_id) if i.kind == "line")
    record.save(store, item, items.crop_pixels(store, item), "0042")
    out = tmp_path / "out.csv"
    rows = _export_rows(store, batch_id, out)
    for row in rows:
        if row["digits"] == "0042":
            row["digits"] = "42"  # a column of numbers, opened and saved
    with pytest.raises(SourceError, match="'42' is '0042' without its leading zeros"):
        exchange.import_csv(store, batch_id, _rewrite(out, rows))
    assert [c.digits for c in record.read_all(store, batch_id)] == ["0042"]


def test_an_export_is_staged_under_a_name_of_its_own(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    """A link laid where the staging file would be (in a folder others may write) is not
    followed: the export neither writes through it nor leaves the CSV a link."""
    victim, out = tmp_path / "victim", tmp_path / "out.csv"
    victim.write_text("secret")
    (tmp_path / ".out.csv.partial").symlink_to(victim)
    assert exchange.export_csv(open_store(review_batch.store), review_batch.batch_id, out)
    assert victim.read_text() == "secret"
    assert not out.is_symlink() and out.read_text().startswith("file,page,line,digits,read")
    assert not [p for p in tmp_path.glob(".out.csv.*.partial")]


def test_the_dataset_is_content_addressed_with_a_stable_held_out_part(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    assert dataset.build(store) is None
    lines = _lines(review_batch)
    rows = [[f, p, ln, review_batch.truth[f]] for f, p, ln in lines]
    exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "a.csv", rows[:-1]))
    first = dataset.build(store)
    assert first is not None and first.train + first.heldout == len(rows) - 1
    keys = {k: store.read_with_etag(k)[1] for k in store.list(f"{dataset.PREFIX}/")}
    assert dataset.build(store) == first  # the same corrections: the same version, untouched
    assert {k: store.read_with_etag(k)[1] for k in store.list(f"{dataset.PREFIX}/")} == keys
    train = dataset.read_part(store, first.version, "train")
    heldout = dataset.read_part(store, first.version, "heldout")
    assert sorted(train.ids + heldout.ids) == sorted(
        f"{review_batch.batch_id}/{items.item_id(f, p, ln)}" for f, p, ln in lines[:-1]
    )
    places = {f"{review_batch.batch_id}/{items.item_id(f, p, ln)}": (f, p, ln)
              for f, p, ln in lines}  # fmt: skip
    assert all(dataset.part_of(*places[i]) == "heldout" for i in heldout.ids)
    assert all(dataset.part_of(*places[i]) == "train" for i in train.ids)
    exchange.import_csv(store, review_batch.batch_id, _write(tmp_path / "b.csv", rows[-1:]))
    second = dataset.build(store)
    assert second is not None and second.version != first.version
    again = dataset.read_part(store, second.version, "heldout")
    assert set(heldout.ids) <= set(again.ids)  # held out once, held out for good
    part = dataset.key(second.version, "train.parquet")
    intact, ids = store.read_bytes(part), dataset.read_part(store, second.version, "train").ids
    store.write_bytes(part, intact[:-100] + bytes(100))  # the footer lost
    with pytest.raises(SourceError, match="train.parquet: checksum does not match"):
        dataset.read_part(store, second.version, "train")
    store.write_bytes(part, intact)
    assert dataset.read_part(store, second.version, "train").ids == ids
    manifest = dataset.key(second.version, "manifest.json")
    store.write_bytes(manifest, b'{"format": "dig')  # cut short
    with pytest.raises(SourceError, match="manifest.json: not a manifest"):
        dataset.read_part(store, second.version, "train")
    store.delete(manifest)
    with pytest.raises(NotFoundError, match="no manifest"):
        dataset.read_part(store, second.version, "train")
    [png, *_] = [k for k in store.list(f"{record.PREFIX}/") if k.endswith(".png")]
    store.write_bytes(png, store.read_bytes(png)[:40])  # a crop cut short
    with pytest.raises(SourceError, match=f"{png} is not a crop"):
        dataset.build(store)


def test_the_cli_exports_and_imports_a_batch(review_batch: ReviewBatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from digitflow.cli import app

    runner = CliRunner()
    out = tmp_path / "review.csv"
    store = ["--store", review_batch.store]
    exported = runner.invoke(app, ["review", "export", review_batch.batch_id, "--csv", str(out),
                                   *store])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(out.open()))
    # Before any correction, no line has an answer, and each shows what the reader read.
    ledger = commits.read_ledger(open_store(review_batch.store), review_batch.batch_id)
    read = {(r["file"], str(ln["page"]), str(ln["line"])): ln["digits"]
            for r in ledger.to_pylist() for ln in r["lines"]}  # fmt: skip
    for row in rows:
        row["file"] = exchange.from_text(row["file"])
    assert rows and all(r["digits"] == "" for r in rows)
    assert all(r[exchange.READ] == read[r["file"], r["page"], r["line"]] for r in rows)
    for row in rows:
        row["digits"] = review_batch.truth[row["file"]]
    rows[0]["digits"] = exchange.NOT_DIGITS
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    imported = runner.invoke(app, ["review", "import", review_batch.batch_id, str(out),
                                   "--by", "office", "--json", *store])  # fmt: skip
    assert imported.exit_code == 0, imported.output
    summary = exchange.ImportSummary.model_validate_json(imported.output.splitlines()[-1])
    assert (summary.saved, summary.not_digits) == (len(rows), 1)
    saved = {c.file: c for c in record.read_all(open_store(review_batch.store))}
    assert saved[rows[0]["file"]].not_digits
    assert all(saved[r["file"]].digits == r["digits"] for r in rows[1:])
    again = runner.invoke(app, ["review", "import", "nope", str(out), *store])
    assert again.exit_code == 1 and "no scoring batch 'nope'" in again.output


def test_an_export_imported_unchanged_saves_nothing_and_answers_only_what_was_given(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    store = open_store(review_batch.store)
    out = tmp_path / "out.csv"
    written = exchange.export_csv(store, review_batch.batch_id, out)
    assert written
    # What the reader read is beside the answers, never one: rows nobody looked at (a line
    # read as nothing among them) come back as no answer, not as corrections.
    unchanged = exchange.import_csv(store, review_batch.batch_id, out)
    assert (unchanged.rows, unchanged.saved, unchanged.unanswered) == (written, 0, written)
    assert record.read_all(store) == []
    rows = list(csv.DictReader(out.open()))
    first = exchange.from_text(rows[0]["file"])
    rows[0]["digits"] = review_batch.truth[first]
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    answered = exchange.import_csv(store, review_batch.batch_id, out)
    assert (answered.saved, answered.unanswered) == (1, written - 1)
    assert [(c.file, c.digits) for c in record.read_all(store)] == [
        (first, review_batch.truth[first])
    ]


def test_a_row_is_numbered_as_the_file_shows_it(review_batch: ReviewBatch, tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    file, page, line = _lines(review_batch)[0]
    path.write_text(f"file,page,line,digits\n\n\n{exchange.as_text(file)},{page},{line},12x\n")
    with pytest.raises(SourceError, match="gaps.csv row 4: '12x' is not digits"):
        exchange.import_csv(open_store(review_batch.store), review_batch.batch_id, path)


def test_a_pipe_is_read_no_further_than_the_limit(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    fifo = tmp_path / "corrections.csv"
    os.mkfifo(fifo)  # says nothing of its size: the limit holds as it is read

    def write() -> None:
        try:
            with fifo.open("wb") as f:
                f.write(b"file,page,line,digits\n")
                chunk = b"a.png,1,1,12\n" * 65_536
                for _ in range(exchange.MAX_BYTES // len(chunk) + 2):
                    f.write(chunk)
        except BrokenPipeError:
            pass  # the import stopped reading at the limit

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with pytest.raises(SourceError, match="is over 64 MiB"):
        exchange.import_csv(open_store(review_batch.store), review_batch.batch_id, fifo)
    writer.join(timeout=30)
    assert not writer.is_alive()


def test_a_line_corrected_in_two_batches_is_in_one_part(review_batch: ReviewBatch) -> None:
    store = open_store(review_batch.store)
    found = items.review_items(store, review_batch.batch_id)
    for batch_id in (review_batch.batch_id, "fields-scored-again"):
        for item in found:  # the same scans, read again in another batch, corrected there too
            again = replace(item, batch_id=batch_id)
            record.save(store, again, items.crop_pixels(store, item),
                        review_batch.truth[item.file])  # fmt: skip
    built = dataset.build(store)
    assert built is not None and built.train + built.heldout == 2 * len(found)
    places = {f"{b}/{i.id}": (i.file, i.page, i.line)
              for b in (review_batch.batch_id, "fields-scored-again") for i in found}  # fmt: skip
    parts = {name: {places[i] for i in dataset.read_part(store, built.version, name).ids}
             for name in dataset.PARTS}  # fmt: skip
    assert parts["heldout"] and parts["train"]
    assert not parts["heldout"] & parts["train"]  # never gated on a line it was tuned on
    assert all(dataset.part_of(*p) == "heldout" for p in parts["heldout"])


def test_a_batch_that_followed_links_out_of_its_folder_is_imported_following_them(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    from flows.score import ScoreParams, score_flow

    linked = tmp_path / "linked"  # each scan a link to a file outside the folder
    linked.mkdir()
    for scan in review_batch.folder.iterdir():
        (linked / scan.name).symlink_to(scan)
    summary = score_flow(ScoreParams(input=str(linked), store=review_batch.store,
                                     batch_id="linked", follow_outside_links=True))  # fmt: skip
    assert summary.scored == len(review_batch.truth)
    store = open_store(review_batch.store)
    item = items.review_items(store, "linked")[0]
    store.delete(item.crop_key)  # as if it had been read with confidence: read again
    path = _write(tmp_path / "c.csv", [[item.file, item.page, item.line, "12"]])
    with pytest.raises(SourceError, match="outside the input folder: not read .give "
                                          "--follow-outside-links"):  # fmt: skip
        exchange.import_csv(store, "linked", path)
    assert record.read_all(store) == []
    imported = exchange.import_csv(store, "linked", path, follow_outside_links=True)
    assert imported.read_again == 1 and [c.digits for c in record.read_all(store)] == ["12"]


def test_an_export_says_why_it_cannot_be_written_or_holds_no_lines(
    review_batch: ReviewBatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from digitflow.cli import app
    from flows.score import ScoreParams, score_flow

    store = ["--store", review_batch.store]
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old")
    link.symlink_to(real)  # written through: the link stays, the file it leads to is the CSV
    result = CliRunner().invoke(app, ["review", "export", review_batch.batch_id, "--csv",
                                      str(link), *store])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and real.read_text().startswith("file,page,line,digits,read")
    assert not list(tmp_path.glob(".*partial"))  # no staging file left
    real.chmod(0o600)  # a CSV of people's answers: it stays as private as it was
    assert exchange.export_csv(open_store(review_batch.store), review_batch.batch_id, link)
    assert real.stat().st_mode & 0o777 == 0o600
    loop_a, loop_b = tmp_path / "loop-a.csv", tmp_path / "loop-b.csv"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    result = CliRunner().invoke(app, ["review", "export", review_batch.batch_id, "--csv",
                                      str(loop_a), *store])  # fmt: skip
    assert result.exit_code == 1 and result.stderr.startswith(f"error: cannot write {loop_a}")
    # To standard output, redirected to a file after a line of its own: appended, and what
    # was written is said on standard error, not in the CSV.
    out = tmp_path / "out.txt"
    out.write_text("EARLIER LINE\n")
    with out.open("a") as stdout:
        proc = subprocess.run(
            [sys.executable, "-m", "digitflow", "review", "export", review_batch.batch_id,
             "--csv", "/dev/stdout", *store], stdout=stdout, stderr=subprocess.PIPE, text=True,
            timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[:2] == ["EARLIER LINE", "file,page,line,digits,read,saved_at"]
    assert "Wrote" not in lines[-1]
    assert "Wrote" in proc.stderr
    nowhere = tmp_path / "no-such-folder" / "review.csv"
    result = CliRunner().invoke(app, ["review", "export", review_batch.batch_id, "--csv",
                                      str(nowhere), *store])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [f"error: cannot write {nowhere}: "
                                                  "No such file or directory"]  # fmt: skip
    # A batch read digit by digit sends digits to review, which a CSV of lines cannot hold.
    params = ScoreParams(input=str(review_batch.folder), store=review_batch.store,
                         batch_id="digits", reader="classifier", review_threshold=1.0)  # fmt: skip
    score_flow(params)
    out = tmp_path / "digits.csv"
    result = CliRunner().invoke(app, ["review", "export", "digits", "--csv", str(out), *store])
    assert result.exit_code == 1, result.output
    assert "read digit by digit (--reader classifier)" in result.stderr, result.stderr
    assert "digitflow review digits" in result.stderr and not out.exists()
