"""The line reader's export in 8 bits, where it reads as well: what scoring runs.

Reading lines is most of what a page costs the scoring process (about half of a page's
CPU in all), and most of the reading is the reader's convolutions. ONNX Runtime runs them
in 8-bit integers (weights per channel, activations calibrated on validation strings):
the reader reads with 1.7x less CPU than in float (`benchmarks/quantize.py`); the GRU and
the dense layers stay in float. Quantising moves
a reading here and there, so the 8-bit export replaces the float one only if it reads
the reader's validation strings, as scoring reads them, no worse than the Keras model
less ``MARGIN``; otherwise the float export (which reads as Keras does) is kept.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digitflow.exported import session_run
from digitflow.reader import field
from digitflow.reader.infer import read_with, score_strings

logger = logging.getLogger(__name__)

CALIBRATION = 256  # validation strings that set the activations' ranges
# The 8-bit export may read this share of the validation strings fewer than Keras does.
MARGIN = 0.005
# What the card's scores say of the export (digitflow.candidates.Card.scores).
INT8 = "onnx_int8"  # 1 where the export is in 8 bits, 0 where it was kept in float
EXPORT_EXACT = "onnx_validation_exact"  # exact strings of the 8-bit export


def quantize(source: Path, target: Path, calibration: Sequence[np.ndarray]) -> None:
    """Write ``source`` (a line reader's float ONNX) to ``target`` with its convolutions
    and poolings in 8 bits, their ranges set by the reader inputs ``calibration``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(str(source))
    graph = model.graph
    name = graph.input[0].name
    batches = [field.reading_batch(list(calibration[k : k + 16]))[0]
               for k in range(0, len(calibration), 16)]  # fmt: skip

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.left, None)
            return None if batch is None else {name: batch}

    # The main graph's nodes only: the GRU's loops are left in float.
    nodes = [n.name for n in graph.node if n.op_type in ("Conv", "MaxPool")]
    root = logging.getLogger()
    root.addFilter(_no_advice)  # its advice to pre-process, on the root logger, each call
    try:
        quantize_static(
            str(source), str(target), Batches(), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes,
        )  # fmt: skip
    finally:
        root.removeFilter(_no_advice)
    # What the float export says of itself (that it reads padding as marked), the 8-bit
    # one says too.
    quantized = onnx.load(str(target))
    onnx.helper.set_model_props(quantized, {p.key: p.value for p in model.metadata_props})
    onnx.save(quantized, str(target))


def _no_advice(record: logging.LogRecord) -> bool:
    """False for ONNX Runtime's advice to pre-process a model before quantising it (its
    shape inference cannot follow the reader's free width, and the model needs none)."""
    return not record.getMessage().startswith("Please consider")


def quantize_export(
    onnx: Path, inputs: Sequence[np.ndarray], texts: Sequence[str], keras_read: Sequence[str]
) -> dict[str, float]:
    """Replace the float export at ``onnx`` by its 8-bit one if that reads the validation
    strings (``inputs``, whose digits are ``texts``) no worse than Keras read them
    (``keras_read``) less ``MARGIN``. Returns the card's scores of the export."""
    keras_exact = score_strings(texts, keras_read).exact_rate
    with tempfile.TemporaryDirectory(prefix="digitflow-int8-") as tmp:
        int8 = Path(tmp) / onnx.name
        try:
            quantize(onnx, int8, inputs[:CALIBRATION])
            read = [line.text for line in read_with(session_run(int8.read_bytes(), str(int8)),
                                                    inputs)]  # fmt: skip
        except Exception as exc:  # the quantiser lacks an operator: keep the float export
            logger.warning("no 8-bit export (%s: %s); the float one scores",
                           type(exc).__name__, exc)  # fmt: skip
            return {INT8: 0.0}
        exact = score_strings(texts, read).exact_rate
        if exact < keras_exact - MARGIN:
            logger.warning("the 8-bit export reads %.1f %% of the validation strings exactly, "
                           "Keras %.1f %%: the float export scores", 100 * exact,
                           100 * keras_exact)  # fmt: skip
            return {INT8: 0.0}
        shutil.copyfile(int8, onnx)
    logger.info("the 8-bit export reads %.1f %% of the validation strings exactly (Keras "
                "%.1f %%): it scores", 100 * exact, 100 * keras_exact)  # fmt: skip
    return {INT8: 1.0, EXPORT_EXACT: exact}
