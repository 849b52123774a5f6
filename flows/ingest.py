"""Flow: MNIST to a content-addressed Parquet dataset."""

from __future__ import annotations

from prefect import flow
from pydantic import ConfigDict, Field, field_validator

from digitflow.data.download import has_credentials
from digitflow.data.ingest import DatasetRecord
from flows.params import NO_CREDENTIALS, StoreParams
from tasks.ingest import ingest_dataset


class IngestParams(StoreParams):
    """Parameters of the ingest flow (rendered as a form in the Prefect UI)."""

    # A rejected value is not repeated in the error: it may hold a password.
    model_config = ConfigDict(hide_input_in_errors=True)

    source: str | None = Field(
        default=None,
        description="Directory, http(s) base URL or s3:// prefix of the four MNIST .gz "
        "files, without credentials (they go in ~/.netrc). Empty: DIGITFLOW_MNIST_SOURCE, "
        "else the public mirrors.",
        # The form and the server refuse a URL with credentials before a run stores it.
        json_schema_extra=NO_CREDENTIALS,
    )
    accept_custom: bool = Field(
        default=False, description="Accept files whose MD5 differs from the published one."
    )

    @field_validator("source")
    @classmethod
    def _without_credentials(cls, source: str | None) -> str | None:
        if source and has_credentials(source):
            raise ValueError(
                "the URL holds credentials, which would be stored with the flow run and shown "
                "in its logs: put them in ~/.netrc (machine HOST login USER password ...), or "
                "give the URL in DIGITFLOW_MNIST_SOURCE instead"
            )
        return source


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
        settings.download_deadline_s,
    )
