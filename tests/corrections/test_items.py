"""What a batch needs reviewed, and corrections saved as they are given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitflow.corrections import items, record
from digitflow.errors import SourceError
from digitflow.imaging.fields import LineImage
from digitflow.reader import field
from digitflow.reader.decode import ReadDigit, ReadLine
from digitflow.scoring import commits, resume
from digitflow.scoring.extract import FileDigits
from digitflow.scoring.infer import ModelRef
from digitflow.scoring.lines import line_reading
from digitflow.storage import LocalStore, open_store
from tests.corrections.conftest import ReviewBatch

pytestmark = pytest.mark.slow


def test_review_items_are_the_doubtful_lines_largest_doubt_first(
    review_batch: ReviewBatch,
) -> None:
    store = open_store(review_batch.store)
    found = items.review_items(store, review_batch.batch_id)
    assert found and all(i.kind == "line" for i in found)
    doubts = [i.doubt for i in found]
    assert doubts == sorted(doubts, reverse=True)
    ledger = commits.read_ledger(store, review_batch.batch_id).to_pylist()
    read = {(r["file"], ln["line"]): ln["digits"] for r in ledger for ln in r["lines"]}
    for item in found:
        assert item.file in review_batch.truth
        assert item.read == read[item.file, item.line]
        pixels = items.crop_pixels(store, item)
        assert pixels.shape[0] == field.HEIGHT and pixels.dtype == np.uint8
        assert pixels.max() > 128  # ink bright on black, as the reader saw it
    assert len({i.id for i in found}) == len(found)
    assert items.batches(store) == [review_batch.batch_id]
    # A line is doubted when the reader's probability of its string (kept in files.parquet)
    # or one of its digits' is under the threshold (0.9), or nothing was read in it; its
    # doubt is the least of them.
    lines = {(r["file"], ln["page"], ln["line"]): ln for r in ledger for ln in r["lines"]}
    digits = commits.read_digits(store, review_batch.batch_id).to_pylist()
    sure = {where: [ln["confidence"]] for where, ln in lines.items()}
    for d in digits:
        sure[d["file"], d["page"], d["line"]].append(d["confidence"])
    assert all(0.0 <= ln["confidence"] <= 1.0 for ln in lines.values())
    doubted = {w for w, ln in lines.items() if min(sure[w]) < 0.9 or not ln["digits"]}
    assert {(i.file, i.page, i.line) for i in found} == doubted
    for item in found:
        where = item.file, item.page, item.line
        assert item.doubt == pytest.approx(1.0 - min(sure[where]) if item.read else 1.0)


def test_a_line_is_as_doubtful_as_its_string_is_unlikely(tmp_path: Path) -> None:
    """Line 0's digits are each sure, but the reader finds the string unlikely (its steps
    between them hesitate over a digit more): it is doubted most, and its runner-up is
    the string the reader weighed next. Line 1 has a doubtful digit and a likelier string,
    and no other string weighed: its runner-up has that digit's. Line 2 is sure of both and
    is not reviewed."""
    store = LocalStore(tmp_path)

    def read(sure: list[float], line: float, runner_up: str | None = None) -> ReadLine:
        return ReadLine([ReadDigit(k, c, 9, 1 - c, 10.0 * k, 10.0 * k + 10) for k, c in
                         enumerate(sure)], line, runner_up=runner_up)  # fmt: skip

    pixels = np.zeros((field.HEIGHT, 40), np.uint8)
    lines = [(0, LineImage(k, pixels, 0.0, 40.0 * k, 1.0, 1.0)) for k in range(3)]
    files = [FileDigits("form.png", pages=1, lines=lines)]
    reads = [read([0.99, 0.98], 0.3, "011"), read([0.6, 0.99], 0.5), read([0.97, 0.99], 0.95)]
    reading = line_reading(files, reads, "run/line_reader@0123456789ab", 0.9, "b")
    commits.write_shard(store, "b", files, reading, "run/line_reader@0123456789ab")
    store.write_bytes("scoring/b/batch.json", b"{}")
    ledger = commits.read_ledger(store, "b").to_pylist()
    assert [ln["confidence"] for ln in ledger[0]["lines"]] == pytest.approx([0.3, 0.5, 0.95])
    found = items.review_items(store, "b")
    assert [(i.line, i.read) for i in found] == [(0, "01"), (1, "01")]
    assert [i.doubt for i in found] == pytest.approx([0.7, 0.5])
    assert [i.runner_up for i in found] == ["011", "91"]


def test_a_correction_is_saved_at_once_and_a_later_one_replaces_it(
    review_batch: ReviewBatch,
) -> None:
    store = open_store(review_batch.store)
    item = items.review_items(store, review_batch.batch_id)[0]
    pixels = items.crop_pixels(store, item)
    record.save(store, item, pixels, "123", by="ana")
    record.save(store, item, pixels, review_batch.truth[item.file], by="ana")
    saved = record.read_all(store)
    assert [(c.item, c.digits, c.by) for c in saved] == [
        (item.id, review_batch.truth[item.file], "ana")
    ]
    assert np.array_equal(record.crop(store, saved[0]), pixels)
    record.save(store, item, pixels, None)
    assert record.read_all(store, review_batch.batch_id)[0].not_digits


@pytest.mark.parametrize("typed", ["12a", "1 2.5", "9" * 33, ""])
def test_what_is_not_digits_is_refused_and_nothing_is_saved(
    review_batch: ReviewBatch, typed: str
) -> None:
    store = open_store(review_batch.store)
    item = items.review_items(store, review_batch.batch_id)[0]
    with pytest.raises(SourceError, match=item.file):
        record.save(store, item, items.crop_pixels(store, item), typed)
    assert record.read_all(store) == []


def test_an_unknown_batch_is_named(review_batch: ReviewBatch) -> None:
    with pytest.raises(SourceError, match="no scoring batch 'nope'"):
        items.review_items(open_store(review_batch.store), "nope")


def test_a_batch_not_yet_scored_and_a_name_that_is_no_batch_id_are_said_so(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "in").mkdir()
    ref = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version="r/m@aaaa")
    resume.open_batch(store, "started", str(tmp_path / "in"), ref)  # its run not yet done
    with pytest.raises(SourceError, match="batch 'started' has no results yet"):
        items.review_items(store, "started")
    store.write_bytes("scoring/started/files.parquet", b"")  # done, and held nothing
    assert items.review_items(store, "started") == []
    with pytest.raises(SourceError, match=r"no scoring batch '\.\./started'"):
        items.review_items(store, "../started")


def test_a_damaged_correction_is_named_and_stops_the_dataset(review_batch: ReviewBatch) -> None:
    from digitflow.corrections import dataset

    store = open_store(review_batch.store)
    item = items.review_items(store, review_batch.batch_id)[0]
    record.save(store, item, items.crop_pixels(store, item), review_batch.truth[item.file])
    key = record.key(review_batch.batch_id, item.id, "json")
    store.write_bytes(key, store.read_bytes(key)[:-20])  # cut short
    with pytest.raises(SourceError, match=f"{key} is not a correction"):
        dataset.build(store)
    assert not store.list(f"{dataset.PREFIX}/")
