"""Flow: corrections → dataset version → the reader champion tuned on them → its gate."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from digitflow.corrections.dataset import CorrectionsVersion
from digitflow.errors import TrainingError
from digitflow.gatekeeper import PromotionResult
from digitflow.promotion import ReaderGateConfig
from digitflow.recipes import ADAPT_RECIPE, ADAPT_STEPS
from flows.params import StoreParams
from flows.promote import PromoteParams, promote_flow
from flows.train import new_training_run
from tasks.adapt import adapt_reader, build_corrections, not_ready
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
    when_ready: bool = Field(
        default=False,
        description="True: where the corrections are too few to tune on (or none is held "
        "out, or there is no reader champion), skip with the reason instead of failing: "
        "the scheduled retraining's way.",
    )


class AdaptSummary(BaseModel):
    """What one adaptation did: nothing without corrections."""

    corrections: CorrectionsVersion | None
    skipped: str | None = None  # why the reader was not tuned on them (``when_ready``)
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
        if not params.when_ready:
            raise TrainingError(
                "no corrections in the store: nothing to tune the line reader on. Correct a "
                "batch's review items first (`digitflow review BATCH`, or `review import`)"
            )
        return AdaptSummary(corrections=None)
    reason = not_ready(store, corrections.version)
    if reason is not None:
        if not params.when_ready:
            raise TrainingError(reason)
        get_run_logger().warning("not adapting the line reader: %s", reason)
        return AdaptSummary(corrections=corrections, skipped=reason)
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
