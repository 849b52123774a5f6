"""Flow: evaluate a training run's candidates and promote the best one of each role (the
classifiers, the line readers) through that role's gate."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import Field

from digitflow.gatekeeper import Promotions
from digitflow.promotion import GateConfig, ReaderGateConfig
from flows.params import StoreParams
from tasks.promote import announce_promotion, apply_gate, assess_candidates, roles_of_run
from tasks.train import latest_training_run


class PromoteParams(StoreParams):
    """Parameters of the promote flow."""

    training_run: str | None = Field(default=None, description="Empty: the newest run.")
    gate: GateConfig = Field(default_factory=GateConfig, description="The classifiers' gate.")
    reader_gate: ReaderGateConfig = Field(
        default_factory=ReaderGateConfig, description="The line readers' gate (on strings)."
    )
    role: Literal["classifier", "reader"] | None = Field(
        default=None, description="Gate only this role's candidates. Empty: every role trained."
    )


@flow(name="promote")
def promote_flow(params: PromoteParams | None = None) -> Promotions:
    """Per role: evaluate candidates and champion on the same validation examples; gate;
    promote."""
    params = params or PromoteParams()
    store = params.settings().store
    run = params.training_run or latest_training_run(store, params.role)
    gates = {"classifier": params.gate, "reader": params.reader_gate}
    promotions = Promotions(training_run=run)
    for role in roles_of_run(store, run, params.role):
        report = assess_candidates(store, run, role)
        result = apply_gate(store, report, gates[role], role)
        announce_promotion(result, store)
        setattr(promotions, role, result)
    return promotions
