"""``digitflow promote`` and ``digitflow models``: the gate, and the registry it feeds."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel

from digitflow import registry
from digitflow.candidates import Unreadable
from digitflow.cli.options import JsonOpt, StoreOpt, gate_options, params, settings
from digitflow.cli.runner import run_flow, show
from digitflow.errors import NotFoundError, ParameterError
from digitflow.history import HistoryRecord
from digitflow.layout import LAYOUTS, Layout
from digitflow.storage import ObjectStore, open_existing


@gate_options
def promote(
    gate: dict[str, Any],
    reader_gate: dict[str, Any],
    training_run: Annotated[str | None, typer.Option(help="[default: the newest run]")] = None,
    role: Annotated[
        str | None, typer.Option(help="classifier | reader [default: every role trained]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a training run's candidates against the champion and promote through the
    gate, for each role it trained (the classifiers, the line readers)."""
    from flows.promote import PromoteParams, promote_flow

    fields = {"training_run": training_run, "gate": gate, "reader_gate": reader_gate,
              "role": role, "store": settings(store).store}  # fmt: skip
    promotion = params(PromoteParams, fields)
    run_flow("Evaluating and promoting…", lambda: promote_flow(promotion), as_json,
             beside=("keras",))  # fmt: skip


app = typer.Typer(
    help="The model registry: candidates, champion, history, rollback.", no_args_is_help=True
)


class Row(BaseModel):
    """One candidate in ``models list``."""

    model: str
    role: str
    champion: bool
    dataset: str
    val_error: float
    test_error: float
    created_at: str


class Listing(BaseModel):
    """``models list``: every readable candidate of both roles, each role's champion marked;
    the unreadable apart."""

    champion: str | None
    reader_champion: str | None
    candidates: list[Row]
    unreadable: list[Unreadable]


class Shown(BaseModel):
    """``models show``: one candidate's card and the history records that name it."""

    model: str
    role: str
    champion: bool
    card: dict[str, Any]
    history: list[HistoryRecord]


RoleOpt = Annotated[str, typer.Option(help="classifier | reader")]


def _store(store: str | None) -> ObjectStore:
    return open_existing(settings(store).store)


def _layout(role: str) -> Layout:
    if role not in LAYOUTS:
        raise ParameterError("role", f"{role!r}: choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[role]


def _rows(s: ObjectStore, role: str) -> tuple[str | None, list[Row], list[Unreadable]]:
    champion, _ = registry.current_champion(s, LAYOUTS[role])
    found = registry.list_candidates(s, LAYOUTS[role])
    rows = [
        Row(model=card.id, role=role,
            champion=champion is not None and champion.sha256 == card.sha256,
            dataset=card.dataset_version, val_error=card.val_error,
            test_error=card.test_error, created_at=card.created_at.isoformat())
        for card in found.cards
    ]  # fmt: skip
    return (champion.id if champion else None), rows, found.unreadable


@app.command("list")
def models_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every candidate of both roles with its validation and test error (a line reader's:
    of whole strings); each role's champion marked."""

    def listing() -> Listing:
        s = _store(store)
        champion, rows, unreadable = _rows(s, "classifier")
        reader, reader_rows, reader_unreadable = _rows(s, "reader")
        return Listing(champion=champion, reader_champion=reader,
                       candidates=rows + reader_rows,
                       unreadable=unreadable + reader_unreadable)  # fmt: skip

    show("Models", listing, as_json)


def _find(s: ObjectStore, model: str | None) -> tuple[str, str]:
    """(model, role): the one named, in whichever role has it, else the classifier champion."""
    if model is None:
        champion, _ = registry.current_champion(s)
        if champion is None:
            raise NotFoundError("no champion yet; name a model as training_run/model_name")
        return champion.id, "classifier"
    if "/" not in model:
        raise NotFoundError(f"{model!r}: name a model as training_run/model_name")
    run, _, name = model.partition("/")
    for role, layout in LAYOUTS.items():
        if s.exists(layout.card(run, name)):
            return model, role
    return model, "classifier"  # read_card says it does not exist


@app.command("show")
def models_show(
    version: Annotated[
        str | None, typer.Argument(help="training_run/model [default: the classifier champion]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One model's card (the classifier champion by default) and its promotion history."""

    def shown() -> Shown:
        s = _store(store)
        model, role = _find(s, version)
        layout = LAYOUTS[role]
        champion, _ = registry.current_champion(s, layout)
        run, _, name = model.partition("/")
        card = registry.read_card(s, run, name, layout)
        return Shown(
            model=model,
            role=role,
            champion=champion is not None and champion.id == model,
            card=card.model_dump(mode="json"),
            history=[r for r in registry.history(s, layout) if r.concerns(model)],
        )

    show("Model", shown, as_json)


@app.command("rollback")
def models_rollback(
    role: RoleOpt = "classifier",
    expected: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="training_run/model: roll back only while it is champion (a promotion since "
            "is not undone)",
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the role's previous champion in one step (recorded in the history)."""
    show("Rolling back…",
         lambda: registry.rollback(_store(store), _layout(role), expected), as_json)  # fmt: skip
