"""``digitflow promote`` and ``digitflow models``: the gate, and the registry it feeds."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel

from digitflow import registry
from digitflow.candidates import Unreadable
from digitflow.cli.options import JsonOpt, StoreOpt, gate_options, params, settings
from digitflow.cli.runner import run_flow, show
from digitflow.errors import NotFoundError
from digitflow.history import HistoryRecord
from digitflow.storage import ObjectStore, open_store


@gate_options
def promote(
    gate: dict[str, Any],
    training_run: Annotated[str | None, typer.Option(help="[default: the newest run]")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a training run's candidates against the champion and promote through the gate."""
    from flows.promote import PromoteParams, promote_flow

    fields = {"training_run": training_run, "gate": gate, "store": settings(store).store}
    promotion = params(PromoteParams, fields)
    run_flow("Evaluating and promoting…", lambda: promote_flow(promotion), as_json,
             beside=("keras",))  # fmt: skip


app = typer.Typer(
    help="The model registry: candidates, champion, history, rollback.", no_args_is_help=True
)


class Row(BaseModel):
    """One candidate in ``models list``."""

    model: str
    champion: bool
    dataset: str
    val_error: float
    test_error: float
    created_at: str


class Listing(BaseModel):
    """``models list``: every readable candidate, the champion marked; the unreadable apart."""

    champion: str | None
    candidates: list[Row]
    unreadable: list[Unreadable]


class Shown(BaseModel):
    """``models show``: one candidate's card and the history records that name it."""

    model: str
    champion: bool
    card: dict[str, Any]
    history: list[HistoryRecord]


def _store(store: str | None) -> ObjectStore:
    return open_store(settings(store).store)


@app.command("list")
def models_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every candidate with its validation and test error; the champion marked."""

    def listing() -> Listing:
        s = _store(store)
        champion, _ = registry.current_champion(s)
        found = registry.list_candidates(s)
        rows = [
            Row(model=card.id, champion=champion is not None and champion.sha256 == card.sha256,
                dataset=card.dataset_version, val_error=card.val_error,
                test_error=card.test_error, created_at=card.created_at.isoformat())
            for card in found.cards
        ]  # fmt: skip
        return Listing(champion=champion.id if champion else None, candidates=rows,
                       unreadable=found.unreadable)  # fmt: skip

    show("Models", listing, as_json)


@app.command("show")
def models_show(
    version: Annotated[
        str | None, typer.Argument(help="training_run/model [default: champion]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One model's card (the champion by default) and its promotion history."""

    def shown() -> Shown:
        s = _store(store)
        champion, _ = registry.current_champion(s)
        model = version or (champion.id if champion else None)
        if model is None or "/" not in model:
            raise NotFoundError("no champion yet; name a model as training_run/model_name")
        run, _, name = model.partition("/")
        card = registry.read_card(s, run, name)
        return Shown(
            model=model,
            champion=champion is not None and champion.id == model,
            card=card.model_dump(mode="json"),
            history=[r for r in registry.history(s) if r.concerns(model)],
        )

    show("Model", shown, as_json)


@app.command("rollback")
def models_rollback(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Restore the previous champion in one step (recorded in the history)."""
    show("Rolling back…", lambda: registry.rollback(_store(store)), as_json)
