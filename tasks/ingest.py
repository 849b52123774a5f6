"""Task around MNIST ingestion."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from digitflow.data.download import redact
from digitflow.data.ingest import DatasetRecord, ingest
from digitflow.progress import step
from digitflow.storage import open_store
from tasks.retry import STORAGE_RETRIES


@task(
    name="ingest-mnist",
    **STORAGE_RETRIES,
)
def ingest_dataset(
    source: str | None,
    store_uri: str,
    accept_custom: bool = False,
    timeout_s: float = 60.0,
    deadline_s: float = 600.0,
) -> DatasetRecord:
    """Ingest MNIST into the store and publish a per-class summary artifact."""
    logger = get_run_logger()
    shown = redact(source) if source else "the public mirrors"
    logger.info("ingesting MNIST from %s into %s", shown, store_uri)
    record = ingest(
        open_store(store_uri), source, accept_custom=accept_custom, timeout_s=timeout_s,
        deadline_s=deadline_s,
    )  # fmt: skip
    logger.info(
        "dataset %s: %s (%s)",
        record.version,
        ", ".join(f"{n} {c:,} rows" for n, c in record.counts.items()),
        "written" if record.written else "already present, nothing rewritten",
        extra=step("ingest", 1, 1),
    )
    rows: list[dict[str, int | str]] = [
        {"digit": digit, **{split: counts[digit] for split, counts in record.class_counts.items()}}
        for digit in range(10)
    ]
    rows.append({"digit": "all", **record.counts})
    create_table_artifact(
        rows,
        key="mnist-dataset",
        description=f"MNIST dataset {record.version}: images per class and split "
        f"(checksums {'verified' if record.checksums_verified else 'custom, not the published'}).",
    )
    return record
