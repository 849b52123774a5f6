"""Flow: evaluate a training run's candidates and promote the best one through the gate."""

from __future__ import annotations

from prefect import flow
from pydantic import Field

from digitflow.gatekeeper import PromotionResult
from digitflow.promotion import GateConfig
from flows.params import StoreParams
from tasks.promote import announce_promotion, apply_gate, assess_candidates
from tasks.train import latest_training_run


class PromoteParams(StoreParams):
    """Parameters of the promote flow."""

    training_run: str | None = Field(default=None, description="Empty: the newest run.")
    gate: GateConfig = Field(default_factory=GateConfig)


@flow(name="promote")
def promote_flow(params: PromoteParams | None = None) -> PromotionResult:
    """Evaluate candidates and champion on the same validation examples; gate; promote."""
    params = params or PromoteParams()
    store = params.settings().store
    run = params.training_run or latest_training_run(store)
    report = assess_candidates(store, run)
    result = apply_gate(store, report, params.gate)
    announce_promotion(result, store)
    return result
