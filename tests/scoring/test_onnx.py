"""Scoring on the models' ONNX exports: written and checksummed with every candidate, the
same readings as Keras, refused when tampered, and no TensorFlow to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from digitflow import registry
from digitflow.candidates import sha256_file
from digitflow.cli import app
from digitflow.exported import export, export_reader, load_session, session_run
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.reader import field, quantize, synth
from digitflow.reader.infer import forward, read_inputs, read_with
from digitflow.reader.strings import fixed_set
from digitflow.samples import load_mnist
from digitflow.scoring import commits
from digitflow.scoring.batch import BatchSummary
from digitflow.scoring.infer import ReaderChoice, resolve_model
from digitflow.scoring.truth import read_lines
from digitflow.storage import LocalStore, open_store
from flows.score import ScoreParams, score_flow
from tests.conftest import REPO, clone_store

pytestmark = pytest.mark.slow


def test_every_promoted_model_has_a_checksummed_export_that_reads_as_keras_does(
    reader_store: str, mnist_dir: Path, tmp_path: Path
) -> None:
    """The classifier's export is in float; the reader's is in 8 bits (its guard is tested
    in tests/reader/test_quantize.py), and the float export it was made from reads as Keras."""
    store = open_store(reader_store)
    mnist = load_mnist(mnist_dir)
    for layout in (registry.CLASSIFIER, READER):
        champion, _ = registry.current_champion(store, layout)
        assert champion is not None and champion.onnx_key is not None
        card = registry.read_card(store, champion.training_run, champion.model_name, layout)
        assert (card.onnx_key, card.onnx_sha256) == (champion.onnx_key, champion.onnx_sha256)
        assert card.onnx_key.endswith("/model.onnx")
        path = Path(reader_store, card.onnx_key)
        assert sha256_file(path) == card.onnx_sha256
        onnx = load_session(store, card.onnx_key, card.onnx_sha256)
        keras_model = load_model(store, card.model_key, card.sha256)
        if layout is READER:
            assert card.scores[quantize.INT8] == 1.0
            assert export_reader(keras_model, tmp_path / "float.onnx")
            onnx = session_run((tmp_path / "float.onnx").read_bytes(), "float")
            digits = synth.Digits(mnist.images[:2000], mnist.labels[:2000])
            inputs = [f.pixels for f in fixed_set(digits, 40, seed=5).fields]
            ours, theirs = read_with(onnx, inputs), read_inputs(keras_model, inputs)
            assert [a.text for a in ours] == [b.text for b in theirs]
            for a, b in zip(ours, theirs, strict=True):
                assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
        else:
            x = (mnist.images[:1000].astype(np.float32) / 255.0)[..., np.newaxis]
            probs = onnx(x)
            expected = keras_model(x, training=False).numpy()
            assert np.abs(probs - expected).max() < 1e-4
            assert (probs.argmax(1) == expected.argmax(1)).all()


def test_a_batch_reads_the_same_on_onnx_and_on_keras(
    reader_store: str,
    sample_scans: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The classifier path reads the same digits on either engine. The line reader's 8-bit
    export reads a little differently from Keras, but the same lines of the same files."""
    folder, _ = sample_scans
    store = LocalStore(clone_store(reader_store, tmp_path / "store"))
    assert resolve_model(store).engine == "onnx"
    assert resolve_model(store, inference="keras").engine == "keras"

    def score(batch_id: str, reader: ReaderChoice) -> BatchSummary:
        params = ScoreParams(input=str(folder), store=store.uri, batch_id=batch_id, reader=reader)
        return score_flow(params)

    line_onnx, onnx = score("line-onnx", "line"), score("on-onnx", "classifier")
    monkeypatch.setenv("DIGITFLOW_INFERENCE", "keras")
    line_keras, keras = score("line-keras", "line"), score("on-keras", "classifier")
    assert line_onnx.scored == line_keras.scored == line_onnx.files
    found = [{page: len(lines) for page, lines in read_lines(
        commits.read_ledger(store, batch).to_pylist()).items()}
        for batch in ("line-onnx", "line-keras")]  # fmt: skip
    assert found[0] == found[1] and sum(found[0].values()) > 0
    assert onnx.digits == keras.digits > 0
    a = commits.read_digits(store, "on-onnx").to_pylist()
    b = commits.read_digits(store, "on-keras").to_pylist()

    def place(row: dict) -> list:
        return [row[k] for k in ("file", "page", "line", "x0")]

    a, b = sorted(a, key=place), sorted(b, key=place)
    assert [r["digit"] for r in a] == [r["digit"] for r in b]
    assert np.allclose([r["confidence"] for r in a], [r["confidence"] for r in b], atol=1e-4)


def test_a_line_reads_the_same_alone_and_beside_any_other(
    reader_store: str, mnist_dir: Path
) -> None:
    """A batch pads each line to its widest; each line still reads as it does alone, with
    Keras and on the champion's export as scoring runs it (the recurrent layer's backward
    pass starts at the line's own end, not in the paper after it)."""
    store = open_store(reader_store)
    champion, _ = registry.current_champion(store, READER)
    assert champion is not None and champion.onnx_key and champion.onnx_sha256
    model = load_model(store, champion.model_key, champion.sha256)
    mnist = load_mnist(mnist_dir)
    inputs = [f.pixels for f in fixed_set(synth.Digits(mnist.images[:500], mnist.labels[:500]),
                                          6, seed=3).fields]  # fmt: skip
    short, wide = inputs[0], np.concatenate(inputs, axis=1)
    assert wide.shape[1] > 3 * short.shape[1]
    steps = -(-short.shape[1] // field.STRIDE)
    runs = {"keras": lambda x: np.asarray(forward(model)(x)),
            "onnx": load_session(store, champion.onnx_key, champion.onnx_sha256)}  # fmt: skip
    for name, run in runs.items():
        alone = run(field.reading_batch([short])[0])[0, :steps]
        beside = run(field.reading_batch([short, wide])[0])[0, :steps]
        assert np.abs(alone - beside).max() < 1e-4, name
    # Without the marks (the padding as paper to the end of the batch), the reading moves.
    padded = np.asarray(forward(model)(field.pad_batch([short, wide])[0]))[0, :steps]
    assert np.abs(padded - runs["keras"](field.reading_batch([short])[0])[0, :steps]).max() > 1e-3


def test_an_export_that_does_not_mark_padding_reads_it_as_paper(
    reader_store: str, tmp_path: Path
) -> None:
    """A reader exported before padding was marked is given paper where a batch marks it:
    it reads as it always did."""
    store = open_store(reader_store)
    champion, _ = registry.current_champion(store, READER)
    assert champion is not None
    model = load_model(store, champion.model_key, champion.sha256)
    assert export(model, tmp_path / "plain.onnx")  # the model itself, unmarked
    run = session_run((tmp_path / "plain.onnx").read_bytes(), "plain")
    rng = np.random.default_rng(1)
    lines = [rng.random((32, w), dtype=np.float32) for w in (40, 130)]
    marked, padded = field.reading_batch(lines)[0], field.pad_batch(lines)[0]
    expected = model(np.pad(padded, ((0, 0), (0, 0), (0, marked.shape[2] - padded.shape[2]),
                                     (0, 0))), training=False).numpy()  # fmt: skip
    assert np.abs(run(marked) - expected).max() < 1e-3


@pytest.mark.parametrize("damage", ["tampered", "missing"])
def test_a_bad_export_is_refused_before_any_file_is_read(
    reader_store: str, sample_scans: tuple[Path, Path], tmp_path: Path, damage: str
) -> None:
    store = LocalStore(clone_store(reader_store, tmp_path / "store"))
    before = store.list("scoring/")
    champion, _ = registry.current_champion(store, READER)
    assert champion is not None and champion.onnx_key is not None
    path = Path(store.uri, champion.onnx_key)
    if damage == "tampered":
        data = path.read_bytes()
        path.write_bytes(data[:-64] + bytes(64))
    else:
        path.unlink()
    result = CliRunner().invoke(app, ["score", str(sample_scans[0]), "--store", store.uri])
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert "model.onnx" in message
    assert ("does not match" if damage == "tampered" else "does not exist") in message
    assert "digitflow models rollback" in message
    assert store.list("scoring/") == before  # no batch was opened, no file read


def test_a_champion_without_an_export_scores_with_keras(
    reader_store: str, sample_scans: tuple[Path, Path], tmp_path: Path
) -> None:
    """A champion promoted before models were exported still scores, the old way."""
    store = LocalStore(clone_store(reader_store, tmp_path / "store"))
    for layout in (registry.CLASSIFIER, READER):
        path = Path(store.uri, layout.champion)
        pointer = json.loads(path.read_text())
        pointer.pop("onnx_key"), pointer.pop("onnx_sha256")
        path.write_text(json.dumps(pointer))
    ref = resolve_model(store)
    assert ref.engine == "keras" and ref.lone is not None and ref.lone.engine == "keras"
    summary = score_flow(ScoreParams(input=str(sample_scans[0]), store=store.uri))
    assert summary.scored == summary.files and summary.digits > 0


def test_scoring_on_onnx_never_starts_tensorflow(
    reader_store: str, sample_scans: tuple[Path, Path]
) -> None:
    """`digitflow score` in a process of its own: TensorFlow (3 s to import) stays out."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from digitflow.cli import app\n"
        "if __name__ == '__main__':\n"
        f"    result = CliRunner().invoke(app, ['score', {str(sample_scans[0])!r}, "
        f"'--store', {reader_store!r}, '--batch-id', 'no-tf', '--json'])\n"
        "    assert result.exit_code == 0, result.output\n"
        "    print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
