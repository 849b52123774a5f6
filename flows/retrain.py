"""Flow: ingest → train in parallel → evaluate → promote. The scheduled retraining job."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from digitflow.gatekeeper import Promotions
from flows.ingest import IngestParams, ingest_flow
from flows.params import StoreParams
from flows.promote import PromoteParams, promote_flow
from flows.train import TrainParams, TrainSummary, train_flow


class RetrainParams(StoreParams):
    """Parameters of the retrain flow: the ingest, train and promote steps' own."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a source URL may hold a password

    ingest: IngestParams = Field(default_factory=IngestParams)
    train: TrainParams = Field(default_factory=TrainParams)
    promote: PromoteParams = Field(default_factory=PromoteParams)


class RetrainSummary(BaseModel):
    """What one retraining did."""

    dataset_version: str
    training: TrainSummary
    promotion: Promotions


@flow(name="retrain")
def retrain_flow(params: RetrainParams | None = None) -> RetrainSummary:
    """Ingest the data, train the models side by side, then gate and promote."""
    params = params or RetrainParams()
    store = params.settings().store
    dataset = ingest_flow(params.ingest.model_copy(update={"store": store}))
    training = train_flow(
        params.train.model_copy(update={"store": store, "dataset_version": dataset.version})
    )
    promotion = promote_flow(
        params.promote.model_copy(update={"store": store, "training_run": training.training_run})
    )
    return RetrainSummary(dataset_version=dataset.version, training=training, promotion=promotion)
