"""Scoring with the line reader: fields read whole, pages line by line, every digit placed,
uncertain lines sent to review; the classifier path still selectable on the same store."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from digitflow.cli import app
from digitflow.errors import SourceError
from digitflow.reader import synth
from digitflow.samples import load_mnist
from digitflow.scoring import commits, resume
from digitflow.scoring.infer import ModelRef
from digitflow.storage import LocalStore, open_store
from flows.score import ScoreParams, score_flow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fields(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Eight generated check-amount fields as JPEG files, and the digits of each."""
    folder = tmp_path_factory.mktemp("fields")
    mnist = load_mnist(mnist_dir)
    digits = synth.Digits(mnist.images, mnist.labels)
    rng = np.random.default_rng(3)
    truth = {}
    for k in range(8):
        grey, text = synth.make_field(digits, digits.by_label(), rng)
        cv2.imwrite(str(folder / f"field_{k}.jpg"), grey)
        truth[f"field_{k}.jpg"] = text
    return folder, truth


def _read(store_uri: str, batch_id: str) -> tuple[list[dict], list[dict]]:
    ledger, digits = commits.read_batch(open_store(store_uri), batch_id)
    return ledger.to_pylist(), digits.to_pylist()


def test_fields_are_read_whole_with_each_digit_placed(
    reader_store: str, fields: tuple[Path, dict], tmp_path: Path
) -> None:
    folder = tmp_path / "fields"
    shutil.copytree(fields[0], folder)
    truth = fields[1]
    data = (folder / "field_0.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])  # a truncated scan
    summary = score_flow(ScoreParams(input=str(folder), store=reader_store, review_threshold=1.0))
    assert summary.model_version.startswith("reader-run/line_reader@")
    assert summary.files == len(truth) + 1 and summary.scored == len(truth)
    ledger, digits = _read(reader_store, summary.batch_id)
    [cut] = [r for r in ledger if r["file"] == "cut.jpg"]  # the same treatment as ever
    assert cut["status"] == "quarantined" and "cut.jpg" in cut["error"]
    ledger = [r for r in ledger if r["file"] != "cut.jpg"]
    store = LocalStore(reader_store)
    for row in ledger:  # a field is one line, whatever it holds
        assert {line["line"] for line in row["lines"]} <= {0}
        mine = [d for d in digits if d["file"] == row["file"]]
        assert "".join(str(d["digit"]) for d in mine) == "".join(
            line["digits"] for line in row["lines"]
        )
        height, width = cv2.imread(str(folder / row["file"]), cv2.IMREAD_GRAYSCALE).shape
        lefts = [d["x0"] for d in mine]
        assert lefts == sorted(lefts)  # left to right
        for d in mine:
            assert 0 <= d["x0"] < d["x1"] <= width + 1 and 0 <= d["y0"] < d["y1"] <= height + 1
            # With a threshold of 1, every digit is doubted: its line's crop is there.
            assert d["needs_review"] and d["review"] and store.exists(d["review"])
            assert f"-l{d['line']}-read" in d["review"]


def test_pages_are_read_line_by_line_and_the_classifier_stays_selectable(
    reader_store: str, sample_scans: tuple[Path, Path]
) -> None:
    folder, _ = sample_scans
    lines = score_flow(ScoreParams(input=str(folder), store=reader_store, reader="line"))
    classifier = score_flow(ScoreParams(input=str(folder), store=reader_store, reader="classifier"))
    assert lines.batch_id != classifier.batch_id  # two readings, two batches
    assert "line_reader" in lines.model_version and "simple_cnn" in classifier.model_version
    by_reader = {}
    for summary in (lines, classifier):
        ledger, _ = _read(reader_store, summary.batch_id)
        assert [r["status"] for r in ledger] == ["scored"] * len(ledger) and ledger
        by_reader[summary.batch_id] = {r["file"]: len(r["lines"]) for r in ledger}
    pages = [n for n in by_reader[lines.batch_id] if n.startswith("scan_")]
    for name in pages:  # the lines found on a page, however well a short-trained reader reads
        assert by_reader[lines.batch_id][name] == by_reader[classifier.batch_id][name] >= 3
    # A single digit is a field the line reader leaves to the classifier (whose digits
    # these are), with a truth to compare.
    _, digits = _read(reader_store, lines.batch_id)
    singles = [d for d in digits if d["file"].startswith("single_")]
    assert singles and all("simple_cnn" in d["model_version"] for d in singles)
    with open(sample_scans[1], newline="") as stream:
        truth = {r["file"]: r["digits"] for r in csv.DictReader(stream)}
    right = sum(str(d["digit"]) == truth[d["file"]] for d in singles)
    assert right >= len(singles) - 1


def test_the_reader_and_layout_options(reader_store: str, fields: tuple[Path, dict]) -> None:
    folder, _ = fields
    runner = CliRunner()
    bad = runner.invoke(app, ["score", str(folder), "--layout", "pages", "--store", reader_store])
    assert bad.exit_code == 2 and "--layout" in bad.stderr
    bad = runner.invoke(app, ["score", str(folder), "--reader", "ocr", "--store", reader_store])
    assert bad.exit_code == 2 and "--reader" in bad.stderr
    ok = runner.invoke(app, ["score", str(folder), "--layout", "page", "--reader",
                             "classifier", "--store", reader_store, "--json"])  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_a_batch_keeps_its_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "in").mkdir()
    ref = ModelRef(store_uri=store.uri, model_key="m", sha256="a" * 64, version="r/m@a",
                   role="reader")  # fmt: skip
    resume.open_batch(store, "b", str(tmp_path / "in"), ref, "field")
    resume.open_batch(store, "b", str(tmp_path / "in"), ref, "field")  # a rerun: fine
    with pytest.raises(SourceError, match="--layout field"):
        resume.open_batch(store, "b", str(tmp_path / "in"), ref, "page")


def test_a_lone_digit_read_as_up_to_two_is_read_by_the_classifier_and_the_reader(
    reader_store: str, mnist_dir: Path
) -> None:
    """Where the classifier is sure of a lone digit and the reader leans a little to
    another, the classifier's reading wins; where the reader is sure of a digit the
    classifier gives some chance to, the reader's does. Each digit's probability is the
    product of theirs."""
    from digitflow.imaging.fields import LineImage
    from digitflow.imaging.segment import DigitBox
    from digitflow.reader.decode import ReadDigit, ReadLine
    from digitflow.reader.field import STRIDE
    from digitflow.reader.infer import SURE
    from digitflow.scoring.extract import FileDigits
    from digitflow.scoring.infer import Scorer, resolve_model, scorer_for
    from digitflow.scoring.lines import read_lone_digits

    ref = resolve_model(open_store(reader_store), choice="line")
    assert ref.lone is not None
    classifier = scorer_for(ref.lone)
    mnist = load_mnist(mnist_dir)
    probs = classifier.probabilities(mnist.images[:200])
    sure = next(k for k in range(200) if probs[k].max() > 0.999)
    torn = next(k for k in range(200) if np.sort(probs[k])[-2] > 0.05 and probs[k].max() < 0.9)
    right, other = int(probs[sure].argmax()), (int(probs[sure].argmax()) + 1) % 10
    runner = int(np.argsort(-probs[torn])[1])
    # The reader's leaning, by the line's brightness: 0.55 for `other` (0.45 for `right`)
    # on the first two lines; 0.99 for the classifier's runner-up on the third.
    leans = {1: {other: 0.55, right: 0.45}, 2: {other: 0.55, right: 0.45}, 3: {runner: 0.99}}

    def run(batch: np.ndarray) -> np.ndarray:
        out = np.full((len(batch), batch.shape[2] // STRIDE, 11), 1e-6, np.float32)
        out[:, :, 0] = 1.0
        for k, x in enumerate(batch):
            out[k, 0, 0] = 1e-6
            for digit, p in leans.get(round(float(x[0, 0, 0]) * 10), {}).items():
                out[k, 0, digit + 1] = p
        return np.log(out)

    reader = Scorer(run, "reader@r", "onnx")
    box = DigitBox(0, 0, 4, 2, 24, 30, np.ones((28, 20), bool))
    lines = [LineImage(0, np.full((32, 40), 25 * k, np.uint8), 0.0, 0.0, 1.0, 1.0)
             for k in (1, 2, 3, 3, 1, 1)]  # fmt: skip
    images = [sure, sure, torn, torn, sure, sure]
    files = [FileDigits(f"f{k}", 1, [(0, box)], mnist.images[i : i + 1], [(0, line)])
             for k, (i, line) in enumerate(zip(images, lines, strict=True))]  # fmt: skip
    ones = [ReadDigit(1, 0.6, 7, 0.3, 8.0 * j, 8.0 * j + 8) for j in range(3)]
    reads = [ReadLine(ones[:1], 0.6), ReadLine(ones[:2], 0.6), ReadLine(ones[:1], 0.6),
             ReadLine(ones[:3], 0.6), ReadLine(ones[:2], SURE), ReadLine([], 0.0)]  # fmt: skip
    out = read_lone_digits(files, reads, classifier, reader)
    # Two digits the reader is sure of: one piece that joins two (an underlined 60), kept.
    assert out[4] is reads[4]
    assert len(out[5].digits) == 1 and out[5].digits[0].digit == right  # none read: weighed
    for k in (0, 1):  # one or two digits read: the classifier, sure, outweighs the reader
        assert out[k].model == f"reader@r+{ref.lone.version}" and len(out[k].digits) == 1
        (digit,) = out[k].digits
        assert (digit.digit, digit.runner_up) == (right, other)
        product = probs[sure] * np.where(np.arange(10) == right, 0.45,
                                         np.where(np.arange(10) == other, 0.55, 1e-6))  # fmt: skip
        assert digit.confidence == pytest.approx(product[right] / product.sum(), abs=1e-3)
        assert digit.x0 == pytest.approx(4.0) and out[k].confidence == digit.confidence
    (digit,) = out[2].digits  # the reader, sure, outweighs the torn classifier
    assert digit.digit == runner and digit.runner_up == int(probs[torn].argmax())
    assert out[3] is reads[3]  # three read: not a lone digit, the reader's reading stays


def test_a_digit_alone_on_its_page_is_weighed_by_the_classifier_too(
    reader_store: str, mnist_dir: Path
) -> None:
    from digitflow.imaging.fields import LineImage, Piece
    from digitflow.reader.decode import ReadDigit, ReadLine, softmax
    from digitflow.reader.field import STRIDE
    from digitflow.reader.infer import span_logs
    from digitflow.scoring.extract import FileDigits
    from digitflow.scoring.infer import resolve_model, scorer_for
    from digitflow.scoring.lines import _CLASSIFIER_WEIGHT, second_opinion

    ref = resolve_model(open_store(reader_store), choice="line")
    assert ref.lone is not None
    classifier = scorer_for(ref.lone)
    mnist = load_mnist(mnist_dir)
    probs = classifier.probabilities(mnist.images[:100])
    sure = [k for k in range(100) if probs[k].argmax() == mnist.labels[k] and probs[k].max() > 0.99]
    a, b, c = (int(k) for k in sure[:3])
    right = {j: int(mnist.labels[k]) for j, k in enumerate((a, b, c))}
    wrong = {j: (label + 1) % 10 for j, label in right.items()}

    # Columns 0-20, 20-40, 40-60, 60-80 of the line are the reader's four digits (steps
    # 0-4, 5-9, 10-14, 15-19); the line lies at x = 100 on its page, at twice the input's
    # scale. Each digit's middle step holds what the reader thinks of it, the rest blanks.
    steps = np.full((80 // STRIDE, 11), 1e-4, np.float32)
    steps[:, 0] = 1.0

    def read(j: int, scores: dict[int, float]) -> ReadDigit:
        spread = np.full(10, 1e-4)
        for digit, p in scores.items():
            spread[digit] = p
        steps[5 * j + 2, 0] = 1e-4
        steps[5 * j + 2, 1:] = spread
        best, second = np.argsort(-spread)[:2]
        return ReadDigit(int(best), float(spread[best]), int(second), float(spread[second]),
                         20.0 * j, 20.0 * j + 20)  # fmt: skip

    pieces = (
        Piece(104, 136, mnist.images[a]),  # all of digit 0
        Piece(144, 176, mnist.images[b]),  # all of digit 1
        Piece(184, 250, mnist.images[c]),  # digit 2 and half of digit 3: two digits touching
    )
    line = LineImage(0, np.zeros((32, 80), np.uint8), 100.0, 0.0, 2.0, 2.0, pieces)
    digits = [
        read(0, {wrong[0]: 0.55, right[0]: 0.45}),  # doubted: the classifier tips it
        read(1, {wrong[1]: 0.999}),  # sure: the reader's reading stands, doubted now
        read(2, {wrong[2]: 0.55, right[2]: 0.45}),  # not alone: the reader's
        read(3, {3: 0.9}),
    ]
    kept = softmax(np.log(steps))
    reads = [
        ReadLine(digits, 0.4, steps=kept),
        ReadLine(digits[:1], 0.9),  # its steps not kept: as read
    ]
    files = [FileDigits("f", 1, lines=[(0, line), (0, replace(line, pieces=pieces[:1]))])]
    out = second_opinion(files, reads, classifier)
    first = out[0].digits
    assert first[0].digit == right[0] and first[0].runner_up == wrong[0]
    assert first[0].confidence > 0.8
    # The weighed probability: the reader's over the digit's columns times the
    # classifier's to the power of the weight.
    theirs = classifier.probabilities(mnist.images[a : a + 1])[0]
    mine = np.exp(span_logs([kept], [(0.0, 20.0)])[0])
    both = mine * theirs**_CLASSIFIER_WEIGHT
    assert first[0].confidence == pytest.approx(both[right[0]] / both.sum(), rel=1e-3)
    assert first[1].digit == wrong[1] and first[1].confidence < 0.999
    assert first[2:] == reads[0].digits[2:]
    assert [d.x0 for d in first] == [d.x0 for d in reads[0].digits]
    assert out[1] is reads[1]


def test_a_digit_at_the_edge_of_a_field_is_boxed_inside_the_page() -> None:
    """A field's margins of paper reach past the image where its writing touches an edge:
    a digit read there is boxed on the page (not at -1), one at the far edge too."""
    from digitflow.imaging.fields import LineImage
    from digitflow.reader.decode import ReadDigit, ReadLine
    from digitflow.scoring.extract import FileDigits
    from digitflow.scoring.lines import line_reading

    pixels = np.zeros((32, 60), np.uint8)
    pixels[4:28, 0:12] = 255
    pixels[2:32, 50:60] = 255
    line = LineImage(0, pixels, -6.0, -4.0, 1.5, 1.5, field=True, page=(40, 80))
    digits = [ReadDigit(1, 0.99, 7, 0.01, -1.0, 12.0), ReadDigit(4, 0.99, 9, 0.01, 50.0, 61.0)]
    files = [FileDigits("f.png", 1, lines=[(0, line)])]
    reading = line_reading(files, [ReadLine(digits, 0.99)], "reader@v", 0.5, "batch")
    boxes = [(r["x0"], r["y0"], r["x1"], r["y1"]) for r in reading.digits.to_pylist()]
    assert boxes == [(0, 2, 12, 38), (69, 0, 80, 40)]


def test_a_model_named_for_the_other_reader_says_which_it_is(reader_store: str) -> None:
    from digitflow.errors import ModelError
    from digitflow.scoring.infer import resolve_model

    store = open_store(reader_store)
    with pytest.raises(ModelError, match="test-run/simple_cnn is a classifier, not a line "
                       "reader: score with --reader classifier"):  # fmt: skip
        resolve_model(store, "test-run/simple_cnn", choice="line")
    with pytest.raises(ModelError, match="reader-run/line_reader is a line reader, not a "
                       "classifier: score with --reader line"):  # fmt: skip
        resolve_model(store, "reader-run/line_reader", choice="classifier")
    assert resolve_model(store, "test-run/simple_cnn").role == "classifier"  # auto finds it
