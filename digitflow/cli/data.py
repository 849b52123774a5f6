"""``digitflow ingest``: MNIST into a content-addressed Parquet dataset version."""

from __future__ import annotations

from typing import Annotated

import typer

from digitflow.cli.options import JsonOpt, SourceOpt, StoreOpt, params, settings
from digitflow.cli.runner import run_flow


def ingest(
    source: SourceOpt = None,
    accept_custom: Annotated[
        bool, typer.Option(help="Accept files that differ from the published MD5s.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest MNIST into a content-addressed Parquet dataset version."""
    from flows.ingest import IngestParams, ingest_flow

    fields = {"source": source, "accept_custom": accept_custom, "store": settings(store).store}
    ingest = params(IngestParams, fields)
    run_flow("Ingesting MNIST…", lambda: ingest_flow(ingest), as_json)
