"""The ``digitflow`` command: runs the flows from a shell, with progress and a JSON summary.

One module per group of commands (``data``, ``training``, ``registry``, ``scoring``); the
options they share and those derived from the library's models in ``options``; the one
mapping of expected errors to a one-line ``error:`` in ``errors``; Prefect's temporary
server in ``server``.
"""

from __future__ import annotations

import typer

from digitflow.api_server import start_early
from digitflow.cli import registry, review
from digitflow.cli.data import ingest
from digitflow.cli.errors import OneLineErrors
from digitflow.cli.scoring import score
from digitflow.cli.training import pipeline, retrain, train

app = typer.Typer(
    name="digitflow",
    cls=OneLineErrors,
    help="Batch system for handwritten digits: ingest MNIST, train, promote, score scans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts say "[default: …]", which is not markup
)


@app.callback()
def root(ctx: typer.Context) -> None:
    """digitflow: every flow, from a shell. Each command takes --store and --json."""
    start_early(ctx.invoked_subcommand)  # Prefect's temporary server boots meanwhile


app.command()(ingest)
app.command()(train)
app.command()(registry.promote)
app.command()(retrain)
app.add_typer(registry.app, name="models")
app.command()(pipeline)
app.command()(score)
app.add_typer(review.app, name="review")


def main() -> None:
    """Entry point of the ``digitflow`` console script."""
    app()
