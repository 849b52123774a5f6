"""Models exported to ONNX: written beside ``model.keras`` when a candidate is saved, and
run with ONNX Runtime when scoring.

Scoring then needs no TensorFlow: ONNX Runtime imports in about 0.1 s where TensorFlow
takes about 3, and on 2 cores it ran the classifier 1.9x and the line reader 1.25x as fast
as Keras (benchmarks/score.py). An export is kept only if it gives the Keras model's
outputs on a probe batch; a model that cannot be exported still scores, with Keras. A line
reader's export is then stored in 8 bits where that reads as well
(digitflow.reader.quantize).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from digitflow.errors import ModelError
from digitflow.layout import ONNX
from digitflow.model_files import fetch_verified
from digitflow.storage import ObjectStore

logger = logging.getLogger(__name__)

# Outputs of the exported model and of Keras may differ by float rounding only.
RTOL, ATOL = 1e-3, 1e-4
PROBE_WIDTH = 96  # columns of a line reader's probe lines (its width is free)

Run = Callable[[np.ndarray], np.ndarray]


# Metadata of an export that reads a batch's padding as marked (``field.PADDING``): a line
# reader's reading model (``line_reader.reading``). An export without it is given paper
# where the padding was marked, as exports were before readers marked it.
MARKED = ("digitflow.padding", "marked")


def _probe(model: Any, marked: bool) -> np.ndarray:
    """A seeded batch of inputs of the model's shape, in [0, 1]; where ``marked``, half of
    them marked as padding from their middle on."""
    shape = [PROBE_WIDTH if size is None else size for size in model.inputs[0].shape[1:]]
    probe = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    if marked:
        from digitflow.reader.field import PADDING

        probe[4:, :, PROBE_WIDTH // 2 :] = PADDING
    return probe


def export(model: Any, path: Path, marked: bool = False) -> bool:
    """Write ``model`` as ONNX to ``path`` if it converts and gives the model's outputs on a
    probe batch; False (and no file) if not, with the reason logged. ``marked``: the model
    reads padding as marked (``MARKED``), and the export says so."""
    import keras

    probe = _probe(model, marked)
    expected = keras.ops.convert_to_numpy(model(probe, training=False))
    try:
        with warnings.catch_warnings():  # the converter's own deprecation notices
            warnings.simplefilter("ignore")
            model.export(str(path), format="onnx", verbose=False)
        if marked:
            mark(path)
        got = session_run(path.read_bytes(), str(path))(probe)
    except Exception as exc:  # a layer the converter lacks: the model scores with Keras
        logger.warning("%s: no ONNX export (%s: %s); it scores with Keras",
                       model.name, type(exc).__name__, exc)  # fmt: skip
        path.unlink(missing_ok=True)
        return False
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
        worst = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else -1.0
        logger.warning("%s: its ONNX export disagrees with it (largest difference %.3g); it "
                       "scores with Keras", model.name, worst)  # fmt: skip
        path.unlink()
        return False
    return True


def export_reader(model: Any, path: Path) -> bool:
    """``export`` for a line reader: its reading model (``line_reader.reading``), which
    reads a batch's padding as marked, and says so."""
    from digitflow.models.line_reader import reading

    return export(reading(model), path, marked=True)


def mark(path: Path) -> None:
    """Say in an export's metadata that it reads padding as marked (``MARKED``)."""
    import onnx

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                        MARKED[0]: MARKED[1]})  # fmt: skip
    onnx.save(proto, str(path))


def session_run(data: bytes, where: str) -> Run:
    """An ONNX Runtime session on a model's bytes, as a function of its one input. An
    export that does not say it reads marked padding (``MARKED``) is given paper there."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no notices about unused initialisers
    # Its threads sleep between runs instead of spinning: scoring runs a session from
    # several shard threads beside the reader processes, which need those cores (scoring
    # 496 pages on 2 cores took 40-41 s of CPU so, 45-46 s with spinning).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{where}: ONNX Runtime cannot load the model: {exc}") from exc
    name = session.get_inputs()[0].name
    metadata = session.get_modelmeta().custom_metadata_map
    marked = metadata.get(MARKED[0]) == MARKED[1]

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x if marked else np.maximum(x, 0.0), np.float32)
        out: np.ndarray = session.run(None, {name: x})[0]
        return out

    return run


def load_session(store: ObjectStore, key: str, sha256: str) -> Run:
    """Download an exported model, check its sha256, and open it in ONNX Runtime."""
    with tempfile.TemporaryDirectory(prefix="digitflow-onnx-") as tmp:
        path = Path(tmp) / ONNX
        fetch_verified(store, key, sha256, path)
        run = session_run(path.read_bytes(), store.uri_of(key))
    logger.info("loaded %s (sha256 %s…) in ONNX Runtime", store.uri_of(key), sha256[:12])
    return run
