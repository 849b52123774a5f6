"""What a batch needs reviewed, and corrections saved as they are given."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.corrections import items, record
from digitflow.errors import SourceError
from digitflow.reader import field
from digitflow.scoring import commits
from digitflow.storage import open_store
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
