"""Process-level set-up for training and inference: seeds, thread pools, GPU pinning."""

from __future__ import annotations

import logging
import os
import random

import numpy as np

logger = logging.getLogger(__name__)


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend from one number."""
    random.seed(seed)
    np.random.seed(seed)
    import keras

    keras.utils.set_random_seed(seed)


def gpu_env(slot: int, gpu_count: int) -> dict[str, str]:
    """Environment that pins a child process to one GPU (round robin), or to none."""
    if gpu_count <= 0:
        return {}
    return {"CUDA_VISIBLE_DEVICES": str(slot % gpu_count)}


def visible_gpu_count() -> int:
    """GPUs this process could use, from CUDA_VISIBLE_DEVICES or the driver's device files."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()])


def configure(threads: int | None) -> str:
    """Size the backend's thread pools and turn on GPU memory growth; describe the device.

    Must run before the backend executes its first operation.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return _describe_other(keras.backend.backend())
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if gpus:
        return f"GPU ({', '.join(g.name for g in gpus)})"
    return f"CPU ({threads or os.cpu_count()} threads)"


def _describe_other(backend: str) -> str:
    if backend == "jax":
        import jax

        return f"{jax.devices()[0].platform.upper()} via jax ({jax.devices()[0]})"
    return f"{backend} backend"
