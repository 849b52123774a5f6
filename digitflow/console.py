"""What the command line shows a person: progress bars while flows run, summaries after.

Progress comes with the flows' own log records (epochs, shards, stages), as structured
fields (``digitflow.progress``), so the bars need no second channel and move exactly when
the Prefect UI shows the line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digitflow.errors import DigitflowError
from digitflow.progress import step_of


class KnownErrorsWithoutTraceback(logging.Filter):
    """Errors digitflow raised on purpose already say what and where: drop their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DigitflowError):
            record.exc_info = None
            record.exc_text = None
        return True


class ProgressHandler(logging.Handler):
    """Moves a progress bar for each log record that carries a progress step."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress
        self.bars: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        step = step_of(record)
        if step is None:
            return
        if step.bar not in self.bars:
            if step.total is None:
                return  # a step of a bar whose size was never announced
            self.bars[step.bar] = self.progress.add_task(step.bar, total=step.total)
        if step.done is None:
            self.progress.advance(self.bars[step.bar])
        else:
            self.progress.update(self.bars[step.bar], completed=step.done)


@contextmanager
def flow_progress(console: Console, title: str) -> Iterator[None]:
    """Progress bars fed by the flows' logs for the duration of a command."""
    progress = Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=False,
    )  # fmt: skip
    handler = ProgressHandler(progress)
    loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "prefect.task_runs")]
    for logger in loggers:
        logger.addHandler(handler)
    console.print(f"[bold]{title}[/]")
    try:
        with progress:
            yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def print_summary(console: Console, title: str, result: dict[str, Any]) -> None:
    """Scalars as one table; each list of records as a table of its own."""
    scalars = Table(title=title, show_header=False, title_justify="left")
    nested: list[tuple[str, list[dict[str, Any]]]] = []
    for field, value in flatten(result):
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested.append((field, value))
        else:
            scalars.add_row(field, cell(value))
    console.print(scalars)
    for field, rows in nested:
        table = Table(title=field, title_justify="left")
        columns = [k for k in rows[0] if not isinstance(rows[0][k], dict | list)]
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(cell(row.get(c)) for c in columns))
        console.print(table)


def flatten(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested records as dotted field names (count dictionaries stay whole)."""
    items: list[tuple[str, Any]] = []
    for key, value in record.items():
        if (
            isinstance(value, dict)
            and value
            and not all(isinstance(v, int) for v in value.values())
        ):
            items += flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, everything else as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


# The brief's published test errors of the seed models, shown beside ours.
PUBLISHED_ERROR = {"baseline_mlp": 0.0191, "simple_cnn": 0.0103, "larger_cnn": 0.0082}


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f} %"


def print_training(console: Console, training: dict[str, Any]) -> None:
    """A training run's candidates beside the brief's errors, best validation first."""
    table = Table(
        title=f"Training run {training['training_run']} (dataset {training['dataset_version']})",
        title_justify="left",
    )
    for column in ("model", "validation error", "test error", "brief's test error", "seconds"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for c in sorted(training["candidates"], key=lambda c: c["val_error"]):
        table.add_row(
            c["model_name"],
            _pct(c["val_error"]),
            _pct(c["test_error"]),
            _pct(PUBLISHED_ERROR.get(c["model_name"])),
            f"{c['wall_s']:.0f}",
        )
    for name, reason in training["failures"].items():
        table.add_row(name, "failed", reason[:60], "", "")
    console.print(table)


def print_retrain(console: Console, result: dict[str, Any]) -> None:
    """Candidates beside the brief's errors, and what the gate decided; the reader tuned on
    corrections, and its gate's decision."""
    if result.get("training"):
        print_training(console, result["training"])
    if result.get("promotion"):
        print_promotions(console, result["promotion"])
    adaptation = result.get("adaptation")
    if adaptation is None:
        return
    corrections = adaptation["corrections"]
    if corrections is None:
        console.print("No corrections in the store: no reader was tuned on them.")
        return
    console.print(
        f"Corrections {corrections['version']}: {corrections['train']} to learn from, "
        f"{corrections['heldout']} held out (batches {', '.join(corrections['batches'])})"
    )
    if adaptation.get("skipped"):
        console.print(f"No reader was tuned on them: {adaptation['skipped']}")
    if adaptation.get("promotion"):
        print_promotions(console, {"reader": adaptation["promotion"]})


def print_promotions(console: Console, promotions: dict[str, Any]) -> None:
    """Each gated role's champion afterwards, and why."""
    for role in ("classifier", "reader"):
        promotion = promotions.get(role)
        if promotion is None:
            continue
        verdict = "[green]promoted[/]" if promotion["promoted"] else "[yellow]not promoted[/]"
        console.print(
            f"{role.capitalize()} champion: [bold]{promotion['champion'] or 'none'}[/] ({verdict})"
        )
        console.print(f"Why: {promotion['reason']}", highlight=False)


def print_pipeline(console: Console, result: dict[str, Any]) -> None:
    """The main job's summary: models and champion, then what scoring read and where."""
    print_retrain(console, result["retrain"])
    scoring, accuracy = result["scoring"], result["sample_accuracy"]
    console.print(
        f"Scored [bold]{scoring['files']}[/] files ({scoring['pages']} pages) from "
        f"{result['scans']}: {scoring['digits']} digits, {scoring['needs_review']} need "
        f"review ({scoring.get('review_crops', 0)} crops for the review page), "
        f"{scoring['quarantined']} files quarantined, {scoring['partial']} partial",
        highlight=False,
    )
    if accuracy:
        console.print(
            f"Against the samples' ground truth: {100 * accuracy['digit_accuracy']:.1f} % of "
            f"{accuracy['digits']} digits and {100 * accuracy['line_accuracy']:.1f} % of "
            f"{accuracy['lines']} lines read exactly",
            highlight=False,
        )
    console.print(f"Per-file table: {scoring['files_uri']}", highlight=False, soft_wrap=True)
    console.print(f"Digits:         {scoring['digits_uri']}", highlight=False, soft_wrap=True)
    console.print(f"Review folder:  {scoring['review_uri']}", highlight=False, soft_wrap=True)
