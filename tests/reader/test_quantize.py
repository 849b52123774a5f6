"""The line reader's export in 8 bits: stored only where it reads the validation strings as
well as Keras, what the card says of it, and the float export kept where it does not."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import pytest

from digitflow import registry
from digitflow.exported import export_reader, session_run
from digitflow.layout import READER
from digitflow.model_files import load_model
from digitflow.reader import quantize
from digitflow.reader.infer import read_inputs, read_with
from digitflow.reader.strings import fixed_set
from digitflow.reader.synth import Digits
from digitflow.samples import load_mnist
from digitflow.storage import open_store

pytestmark = pytest.mark.slow


Export = tuple[Path, list, list[str], list[str]]


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _copy(source: Path, folder: Path) -> Path:
    """A copy of an export to quantise, the source kept to compare with."""
    path = folder / "model.onnx"
    path.write_bytes(source.read_bytes())
    return path


@pytest.fixture(scope="module")
def float_export(
    reader_store: str, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Export:
    """The reader champion exported in float, 60 strings of MNIST digits, and what Keras
    reads of them."""
    store = open_store(reader_store)
    champion, _ = registry.current_champion(store, READER)
    assert champion is not None
    model = load_model(store, champion.model_key, champion.sha256)
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    assert export_reader(model, path)
    mnist = load_mnist(mnist_dir)
    strings = fixed_set(Digits(mnist.images[:2000], mnist.labels[:2000]), 60, seed=5)
    inputs = [f.pixels for f in strings.fields]
    return path, inputs, strings.texts, [line.text for line in read_inputs(model, inputs)]


def test_the_8_bit_export_replaces_the_float_one_where_it_reads_as_well(
    float_export: Export, tmp_path: Path
) -> None:
    source, inputs, texts, keras_read = float_export
    path = _copy(source, tmp_path)
    assert "QuantizeLinear" not in _ops(path)
    scores = quantize.quantize_export(path, inputs, texts, keras_read)
    assert scores[quantize.INT8] == 1.0
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(path)
    assert path.stat().st_size < 0.6 * source.stat().st_size  # weights in a byte, not four
    # The card's number is what the stored export reads, as scoring reads.
    read = [line.text for line in read_with(session_run(path.read_bytes(), "int8"), inputs)]
    exact = sum(a == b for a, b in zip(read, texts, strict=True)) / len(texts)
    assert scores[quantize.EXPORT_EXACT] == pytest.approx(exact)
    keras_exact = sum(a == b for a, b in zip(keras_read, texts, strict=True)) / len(texts)
    assert exact >= keras_exact - quantize.MARGIN


def test_the_float_export_is_kept_where_the_8_bit_one_reads_worse(
    float_export: Export, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, inputs, _, keras_read = float_export
    path = _copy(source, tmp_path)
    # Texts that Keras read perfectly and the 8-bit export cannot: each Keras reading with
    # a digit more, and Keras said to have read them all.
    longer = [text + "7" for text in keras_read]
    with caplog.at_level(logging.WARNING, logger="digitflow.reader.quantize"):
        assert quantize.quantize_export(path, inputs, longer, longer) == {quantize.INT8: 0.0}
    assert path.read_bytes() == source.read_bytes()
    assert "the float export scores" in caplog.text  # the training log says why


def test_a_trained_reader_scores_on_its_8_bit_export_and_its_card_says_so(
    reader_store: str,
) -> None:
    store = open_store(reader_store)
    champion, _ = registry.current_champion(store, READER)
    assert champion is not None and champion.onnx_key is not None
    card = registry.read_card(store, champion.training_run, champion.model_name, READER)
    assert card.scores[quantize.INT8] == 1.0
    # The guard held: the export read the validation strings no worse than Keras did.
    exact = 1.0 - card.validation.error
    assert card.scores[quantize.EXPORT_EXACT] >= exact - quantize.MARGIN
    assert "QuantizeLinear" in _ops(Path(reader_store, champion.onnx_key))


def test_an_export_that_cannot_be_quantised_is_kept_in_float(
    reader_store: str, float_export: Export, tmp_path: Path
) -> None:
    """The classifier's export, handed line images (of another shape) to calibrate on:
    ONNX Runtime fails, and the export is stored as it was."""
    _, inputs, texts, keras_read = float_export
    champion, _ = registry.current_champion(open_store(reader_store))
    assert champion is not None and champion.onnx_key is not None
    source = Path(reader_store, champion.onnx_key)
    path = _copy(source, tmp_path)
    assert quantize.quantize_export(path, inputs, texts, keras_read) == {quantize.INT8: 0.0}
    assert path.read_bytes() == source.read_bytes()
