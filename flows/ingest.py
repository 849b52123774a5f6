"""Flow: MNIST to a content-addressed Parquet dataset."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from digitflow.data.ingest import DatasetRecord
from digitflow.settings import Settings
from tasks.ingest import ingest_dataset


class IngestParams(BaseModel):
    """Parameters of the ingest flow (rendered as a form in the Prefect UI)."""

    source: str | None = Field(
        default=None,
        description="Directory, http(s) base URL or s3:// prefix of the four MNIST .gz "
        "files. Empty: DIGITFLOW_MNIST_SOURCE, else the public mirrors.",
    )
    store: str | None = Field(default=None, description="Object store URI. Empty: DIGITFLOW_STORE.")
    accept_custom: bool = Field(
        default=False, description="Accept files whose MD5 differs from the published one."
    )


@flow(name="ingest")
def ingest_flow(params: IngestParams | None = None) -> DatasetRecord:
    """Ingest MNIST into the object store; returns the dataset record."""
    params = params or IngestParams()
    settings = Settings()
    return ingest_dataset(
        params.source or settings.mnist_source,
        params.store or settings.store,
        params.accept_custom,
        settings.download_timeout_s,
    )
