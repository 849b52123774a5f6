"""Where one role's models lie in the object store: a base prefix, and every key under it.

The classifier's base is ``models``::

    models/candidates/<training_run>/<model_name>/model.keras   (model.onnx, history.json)
    models/candidates/<training_run>/<model_name>/card.json     written last
    models/champion.json                                        the pointer
    models/history/<utc-timestamp>-<action>.json                append-only audit
    models/announce/<utc-timestamp>-promote.json                a promotion whose event is unsent
    models/reports/<training_run>/<model_name>/…                evaluation images

The line reader's role has the same layout under ``models/reader``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

CARD = "card.json"
MODEL = "model.keras"
ONNX = "model.onnx"  # the model exported to ONNX, beside model.keras where it could be


@dataclass(frozen=True)
class Layout:
    """The keys of one role's candidates, champion pointer, history and reports."""

    base: str = "models"

    @property
    def candidates(self) -> str:
        """The prefix every candidate lies under (no trailing slash)."""
        return f"{self.base}/candidates"

    @property
    def champion(self) -> str:
        """Key of the champion pointer."""
        return f"{self.base}/champion.json"

    @property
    def history(self) -> str:
        """The prefix of the history records (no trailing slash)."""
        return f"{self.base}/history"

    def run(self, training_run: str) -> str:
        """The prefix of one training run's candidates (with its trailing slash)."""
        return f"{self.candidates}/{training_run}/"

    def candidate(self, training_run: str, model_name: str, name: str) -> str:
        """Key of one file of a candidate."""
        return f"{self.run(training_run)}{model_name}/{name}"

    def card(self, training_run: str, model_name: str) -> str:
        """Key of a candidate's card."""
        return self.candidate(training_run, model_name, CARD)

    def model(self, training_run: str, model_name: str) -> str:
        """Key of a candidate's model file."""
        return self.candidate(training_run, model_name, MODEL)

    def card_of(self, key: str) -> tuple[str, str] | None:
        """(training_run, model_name) if ``key`` is a candidate's card, else None."""
        rest = key.removeprefix(self.candidates + "/")
        parts = rest.split("/")
        if rest == key or len(parts) != 3 or parts[2] != CARD or not all(parts):
            return None
        return parts[0], parts[1]

    def record(self, at: datetime, action: str, attempt: int = 1) -> str:
        """Key of a history record written at ``at`` (a second one at that time: ``-2``…)."""
        suffix = "" if attempt == 1 else f"-{attempt}"
        return f"{self.history}/{at:%Y%m%dT%H%M%S.%fZ}-{action}{suffix}.json"

    def report(self, training_run: str, name: str) -> str:
        """The prefix of the evaluation images of one model of a training run."""
        return f"{self.base}/reports/{training_run}/{name}"


CLASSIFIER = Layout("models")
READER = Layout("models/reader")
LAYOUTS = {"classifier": CLASSIFIER, "reader": READER}


def layout_of(role: str) -> Layout:
    """The layout of a role's models (``classifier`` or ``reader``)."""
    return LAYOUTS[role]
