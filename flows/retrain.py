"""Flow: ingest → train in parallel → evaluate → promote, then the reader tuned on people's
corrections where there are enough. The scheduled retraining job."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from digitflow.gatekeeper import Promotions
from flows.adapt import AdaptParams, AdaptSummary, adapt_flow
from flows.ingest import IngestParams, ingest_flow
from flows.params import StoreParams
from flows.promote import PromoteParams, promote_flow
from flows.train import TrainParams, TrainSummary, train_flow
from tasks.train import latest_dataset


class RetrainParams(StoreParams):
    """Parameters of the retrain flow: the ingest, train and promote steps' own."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a source URL may hold a password

    ingest: IngestParams = Field(default_factory=IngestParams)
    train: TrainParams = Field(default_factory=TrainParams)
    promote: PromoteParams = Field(default_factory=PromoteParams)
    adapt: bool | None = Field(
        default=None,
        description="True: only tune the champions on the corrections (no ingestion, no "
        "training from scratch). False: never. Empty: train, then tune on the corrections "
        "if there are enough of them.",
    )


class RetrainSummary(BaseModel):
    """What one retraining did."""

    dataset_version: str
    training: TrainSummary | None
    promotion: Promotions | None
    adaptation: AdaptSummary | None = None


@flow(name="retrain")
def retrain_flow(params: RetrainParams | None = None) -> RetrainSummary:
    """Ingest the data, train the models side by side, then gate and promote; tune the
    reader on the corrections (``params.adapt``)."""
    params = params or RetrainParams()
    store = params.settings().store
    gate = params.promote.reader_gate
    if params.adapt is True:  # the champions and their dataset are in the store already
        version = latest_dataset(store)
        adapted = adapt_flow(AdaptParams(store=store, dataset_version=version, reader_gate=gate))
        return RetrainSummary(dataset_version=version, training=None, promotion=None,
                              adaptation=adapted)  # fmt: skip
    dataset = ingest_flow(params.ingest.model_copy(update={"store": store}))
    training = train_flow(
        params.train.model_copy(update={"store": store, "dataset_version": dataset.version})
    )
    promotion = promote_flow(
        params.promote.model_copy(update={"store": store, "training_run": training.training_run})
    )
    adaptation: AdaptSummary | None = None
    if params.adapt is None:
        adaptation = adapt_flow(AdaptParams(store=store, dataset_version=dataset.version,
                                            reader_gate=gate, when_ready=True))  # fmt: skip
    return RetrainSummary(dataset_version=dataset.version, training=training,
                          promotion=promotion, adaptation=adaptation)  # fmt: skip
