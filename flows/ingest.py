"""Flow: MNIST to a content-addressed Parquet dataset."""

from __future__ import annotations

from prefect import flow
from pydantic import Field

from digitflow.data.ingest import DatasetRecord
from flows.params import StoreParams
from tasks.ingest import ingest_dataset


class IngestParams(StoreParams):
    """Parameters of the ingest flow (rendered as a form in the Prefect UI)."""

    source: str | None = Field(
        default=None,
        description="Directory, http(s) base URL or s3:// prefix of the four MNIST .gz "
        "files. Empty: DIGITFLOW_MNIST_SOURCE, else the public mirrors.",
    )
    accept_custom: bool = Field(
        default=False, description="Accept files whose MD5 differs from the published one."
    )


@flow(name="ingest")
def ingest_flow(params: IngestParams | None = None) -> DatasetRecord:
    """Ingest MNIST into the object store; returns the dataset record."""
    params = params or IngestParams()
    settings = params.settings()
    return ingest_dataset(
        params.source or settings.mnist_source,
        settings.store,
        params.accept_custom,
        settings.download_timeout_s,
    )
