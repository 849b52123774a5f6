"""Progress on log records: structured fields that the command line's bars read.

A task logs a line for people and passes ``extra=step(...)`` with it; the console reads
the fields, never the words, so rewording a log line cannot break a bar.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

FIELD = "digitflow_progress"


class Step(BaseModel):
    """A move of the bar named ``bar``: to ``done`` of ``total``, or one step on if None."""

    bar: str
    done: int | None = None
    total: int | None = None


def step(bar: str, done: int | None = None, total: int | None = None) -> dict[str, Any]:
    """``extra=`` for a log record that moves bar ``bar`` (to ``done`` of ``total``)."""
    return {FIELD: Step(bar=bar, done=done, total=total)}


def step_of(record: logging.LogRecord) -> Step | None:
    """The progress a log record carries, if any."""
    value = getattr(record, FIELD, None)
    return value if isinstance(value, Step) else None
