"""Flow: corrections → dataset version → the reader champion tuned on them → its gate."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from digitflow.corrections.dataset import CorrectionsVersion
from digitflow.gatekeeper import PromotionResult
from digitflow.promotion import ReaderGateConfig
from digitflow.recipes import ADAPT_RECIPE, ADAPT_STEPS
from flows.params import StoreParams
from flows.promote import PromoteParams, promote_flow
from flows.train import new_training_run
from tasks.adapt import adapt_reader, build_corrections
from tasks.train import latest_dataset


class AdaptParams(StoreParams):
    """Parameters of the adapt flow."""

    dataset_version: str | None = Field(default=None, description="Empty: the newest.")
    epochs: int = Field(default=ADAPT_RECIPE.epochs, ge=1, description="Epochs of tuning.")
    steps: int = Field(default=ADAPT_STEPS, ge=1, description="Batches an epoch.")
    strings: int = Field(
        default=ADAPT_RECIPE.strings, ge=10,
        description="MNIST strings the tuned reader is measured on: validation, test and guard.",
    )  # fmt: skip
    reader_gate: ReaderGateConfig = Field(
        default_factory=ReaderGateConfig,
        description="The readers' gate: held-out corrections, and MNIST within its margin.",
    )


class AdaptSummary(BaseModel):
    """What one adaptation did: nothing without corrections."""

    corrections: CorrectionsVersion | None
    dataset_version: str | None = None  # the MNIST version its generated strings came from
    training_run: str | None = None
    promotion: PromotionResult | None = None


@flow(name="adapt")
def adapt_flow(params: AdaptParams | None = None) -> AdaptSummary:
    """Build the corrections dataset, tune the reader champion on it, and gate the result
    on the held-out corrections and MNIST's guard strings together."""
    params = params or AdaptParams()
    store = params.settings().store
    corrections = build_corrections(store)
    if corrections is None:
        return AdaptSummary(corrections=None)
    version = params.dataset_version or latest_dataset(store)
    run = f"{new_training_run()}-adapt"
    adapt_reader(
        store, version, corrections.version, run, params.epochs, params.steps, params.strings
    )
    gate = PromoteParams(store=store, training_run=run, role="reader",
                         reader_gate=params.reader_gate)  # fmt: skip
    promotion = promote_flow(gate)
    return AdaptSummary(corrections=corrections, dataset_version=version, training_run=run,
                        promotion=promotion.reader)  # fmt: skip
