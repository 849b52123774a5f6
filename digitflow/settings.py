"""Settings read from the environment (prefix ``DIGITFLOW_``), built once per command or flow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from digitflow.errors import ParameterError


class Settings(BaseSettings):
    """Every knob digitflow reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="DIGITFLOW_", extra="ignore")

    store: str = Field(
        default=".digitflow/store",
        description="Object store: a local directory or s3://bucket/prefix.",
    )
    mnist_source: str | None = Field(
        default=None,
        description="MNIST source: a directory, an http(s) base URL or an s3:// prefix. "
        "Unset: the public mirrors.",
    )
    download_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest wait for one read of an http(s) source."
    )
    download_deadline_s: float = Field(
        default=600.0,
        gt=0,
        description="Longest time for the whole download of an http(s) source's four files.",
    )
    readers: int | None = Field(
        default=None,
        ge=1,
        description="Processes that find digits in scans while scoring. Unset: one per "
        "core; 1: in the scoring threads themselves.",
    )
    file_deadline_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest time a reader process may take over one file while scoring: "
        "past it the reader is stopped and the file quarantined (a hostile PDF can take hours "
        "to render one page).",
    )
    inference: Literal["auto", "keras"] = Field(
        default="auto",
        description="What runs the models when scoring. auto: ONNX Runtime on a model's ONNX "
        "export where it has one (no TensorFlow to start), else Keras; keras: always Keras.",
    )
    work_dir: str = Field(
        default=".digitflow/work",
        description="Local scratch space: generated sample scans for the main job.",
    )


def for_store(store: str | None) -> Settings:
    """The environment's settings, with ``store`` if given (None or empty: DIGITFLOW_STORE).
    ParameterError where DIGITFLOW_STORE is set but empty: a mistake, not the current folder."""
    settings = Settings(store=store) if store else Settings()
    if not settings.store:
        raise ParameterError(
            "store",
            "DIGITFLOW_STORE is set but empty: unset it (the store is then .digitflow/store), "
            "or give a store",
        )
    return settings
