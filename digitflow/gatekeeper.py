"""The gate applied to an assessed training run: decide, apply, explain.

``judge`` takes the gate's decision (``digitflow.promotion``, pure) and applies it to the
registry. The report functions lay it out for people: a table of candidates and champion,
and a Markdown page with the decision in words and the shown model's confusion matrix
and misclassified digits.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import BaseModel

from digitflow.assessment import Assessment, RunAssessment
from digitflow.candidates import Unreadable
from digitflow.evaluation import format_p
from digitflow.layout import CLASSIFIER, READER, Layout
from digitflow.promotion import (
    WILCOXON,
    Decision,
    GateConfig,
    ReaderGateConfig,
    decide,
    decide_adapted,
    pct,
)
from digitflow.registry import apply_decision, unannounced
from digitflow.storage import ObjectStore


class PromotionResult(BaseModel):
    """What the gate decided for one role's candidates, and its champion afterwards."""

    role: str = "classifier"
    training_run: str
    promoted: bool
    champion: str | None
    reason: str
    decision: Decision
    record: str | None = None  # the decision's history record; None: nothing recorded
    completed: str | None = None  # an earlier promotion whose missing record was written
    change: str | None = None  # the history key of the change that made the champion
    # The champion's promotion, by an earlier round, whose event was never sent (stopped
    # between the champion's move and its event).
    unannounced: bool = False
    unreadable: list[Unreadable] = []  # candidates of the run whose card cannot be read

    def news(self) -> str | None:
        """The champion to announce: this decision's, or an earlier one that went unrecorded
        or unannounced until now."""
        if self.champion and (self.promoted or self.completed == self.champion or self.unannounced):
            return self.champion
        return None


def judge(
    store: ObjectStore, report: RunAssessment, gate: GateConfig, layout: Layout = CLASSIFIER
) -> PromotionResult:
    """Decide on an assessed run and apply the decision; the same result on a retry."""
    champion = report.champion.evaluation if report.champion else None
    mnist = [a.evaluation for a in report.candidates]
    if report.heldout is not None and champion is not None and isinstance(gate, ReaderGateConfig):
        held = report.heldout
        decision = decide_adapted(held.candidates, held.champion, held.guard_candidates,
                                  held.guard_champion, gate, held.corrections_version)  # fmt: skip
    else:
        decision = decide(mnist, champion, gate)
    applied = apply_decision(store, decision, report.gate_round, layout)
    return PromotionResult(
        role="reader" if layout == READER else "classifier",
        training_run=report.training_run,
        promoted=applied.promoted,
        champion=applied.champion.id if applied.champion else None,
        reason=applied.reason,
        decision=decision,
        record=applied.record,
        completed=applied.completed.id if applied.completed else None,
        change=applied.champion.record_key if applied.champion else None,
        # Its own promotion's announcement waits until its event is sent: not an earlier one.
        unannounced=not applied.promoted and unannounced(store, applied.champion),
        unreadable=report.unreadable,
    )


def comparison_rows(report: RunAssessment, decision: Decision) -> list[dict[str, Any]]:
    """One table row per candidate and for the champion, on the same validation examples."""
    p_values = {r.id: r.p_value for r in decision.rows}
    held = report.heldout
    heldout = {e.id: e.error for e in [*held.candidates, held.champion]} if held else {}
    rows: list[dict[str, Any]] = []
    for a in [*report.candidates, *([report.champion] if report.champion else [])]:
        p = p_values.get(a.id) if a.role == "candidate" else None
        rows.append({
            "model": a.id, "role": a.role,
            "validation error %": round(100 * a.validation_error, 3),
            "test error % (reported only)": round(100 * a.test_error, 3),
            "log-loss": _rounded(a.validation_log_loss), "ECE": _rounded(a.validation_ece),
            f"{decision.test} p": None if p is None else round(p, 5),
            "promoted": a.id == decision.winner and decision.promoted,
        })  # fmt: skip
        if heldout:
            error = heldout.get(a.id)
            rows[-1]["held-out corrections error %"] = (
                None if error is None else round(100 * error, 3)
            )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _cell(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


# What Wilcoxon's test weighs, in the rules' words.
_WILCOXON_RULE = (
    " (Wilcoxon's signed-rank test, one-sided, on each example's log-likelihood of its right "
    "answer under the candidate and the champion)"
)


def _rules(decision: Decision) -> str:
    """The gate's rules for the decision, in words."""
    cfg = decision.config
    test = f"{decision.test} p < {cfg.alpha:g}{_WILCOXON_RULE if decision.test == WILCOXON else ''}"
    if decision.corrections_version:
        # A decision recorded before the readers' gate kept its config names no margin.
        margin = (
            f"+ {100 * cfg.mnist_margin:.2f} pp" if isinstance(cfg, ReaderGateConfig)
            else "plus the gate's margin"
        )  # fmt: skip
        return (
            f"Rules: against the champion, on the held-out corrections no fewer read exactly "
            f"and {test}; on MNIST's guard strings, an error no more than the champion's "
            f"{margin}."
        )
    return (
        f"Rules: validation error ≤ {pct(cfg.max_error)}; against a champion, an improvement of "
        f"at least {100 * cfg.min_margin:.2f} pp and {test} on the same examples."
    )


def decision_markdown(decision: Decision) -> str:
    """The decision explained for a person, as Markdown (for a Prefect artifact or a log)."""
    title = f"## Promoted: `{decision.winner}`" if decision.winner else "## No promotion"
    adapted = bool(decision.corrections_version)
    before = (
        f"Champion before this decision: `{decision.champion}` at "
        f"{pct(decision.champion_error or 0.0)}."
        if decision.champion
        else "There was no champion before this decision."
    )
    lines = [
        title, "", decision.reason, "", before, "", _rules(decision),
        "b = examples only the champion gets right, c = only the candidate.",
        "",
        *([f"Tuned on corrections {decision.corrections_version}: the table holds each "
           "reader's error on the held-out corrections; on MNIST's guard strings: "
           + ", ".join(f"`{k}` {pct(v)}" for k, v in decision.mnist_errors.items()) + ".", ""]
          if decision.corrections_version else []),
        f"| candidate | {'held-out' if adapted else 'validation'} error | clears floor "
        f"| margin (pp) | b | c | {decision.test} p |",
        "|---|---:|:---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for row in decision.rows:
        margin = None if row.margin is None else 100 * row.margin
        p = "-" if row.p_value is None else format_p(row.p_value)
        floor = "-" if adapted else ("yes" if row.cleared_floor else "no")  # no floor there
        lines.append(
            f"| `{row.id}` | {pct(row.error)} | {floor} | "
            f"{_cell(margin, '+.2f')} | {_cell(row.b, 'd')} | {_cell(row.c, 'd')} | {p} |"
        )
    return "\n".join(lines) + "\n"


def shown_model(report: RunAssessment, decision: Decision) -> Assessment | None:
    """The candidate a report shows in pictures: the winner, else the best on validation."""
    winner = next((a for a in report.candidates if a.id == decision.winner), None)
    return winner or min(report.candidates, key=lambda a: a.validation_error, default=None)


def decision_page(decision: Decision, shown: str | None, images: dict[str, bytes]) -> str:
    """The decision in Markdown, then the shown model's images (title → PNG), inline."""
    markdown = decision_markdown(decision)
    if shown is not None:
        markdown += f"\n\n### {shown} on the validation slice\n\n"
    for title, png in images.items():
        data = base64.b64encode(png).decode()
        markdown += f"**{title}**\n\n![{title}](data:image/png;base64,{data})\n"
    return markdown


def report_page(store: ObjectStore, report: RunAssessment, decision: Decision) -> str:
    """``decision_page`` with the shown model's images read from the store."""
    shown = shown_model(report, decision)
    images: dict[str, bytes] = {}
    if shown is not None and shown.confusion_key is not None:
        images["Confusion matrix"] = store.read_bytes(shown.confusion_key)
        images["Misclassified digits"] = store.read_bytes(shown.gallery_key)
    elif shown is not None:
        images["Misread strings"] = store.read_bytes(shown.gallery_key)
    return decision_page(decision, shown.id if shown else None, images)


class Promotions(BaseModel):
    """A training run through the gate: each role's result (None: it trained none)."""

    training_run: str
    classifier: PromotionResult | None = None
    reader: PromotionResult | None = None

    def results(self) -> list[PromotionResult]:
        """The results of the roles that were gated."""
        return [r for r in (self.classifier, self.reader) if r is not None]
