"""The one place where an expected error becomes the one line ``error: …`` and an exit code.

Ours (``DigitflowError``) exit 1; a bad option, whether click, pydantic or a parameter
check says so, exits 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

try:  # typer parses options with a copy of click of its own (typer 0.2x)
    from typer._click import Context
    from typer._click import exceptions as parsing
except ImportError:  # an older typer parses them with click itself
    from click import Context  # type: ignore[assignment]
    from click import exceptions as parsing  # type: ignore[no-redef]

from digitflow.errors import DigitflowError, ParameterError, describe

BAD_OPTION = 2
FAILED = 1


def option(field: str) -> str:
    """The command-line spelling of a parameter: ``batch_size`` → ``--batch-size``."""
    return "--" + field.replace("_", "-")


class Failure(parsing.ClickException):
    """An expected error, shown as one line on stderr."""

    exit_code = FAILED

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever it quotes

    def show(self, file: IO[Any] | None = None) -> None:
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(self.message)}", soft_wrap=True, highlight=False
        )


class BadOption(Failure):
    """An option that is wrong, or does not fit with another."""

    exit_code = BAD_OPTION


def failure(exc: Exception) -> Failure | None:
    """The one-line failure an expected error stands for; None for a bug."""
    if isinstance(exc, parsing.NoArgsIsHelpError):
        return None  # help was shown: click exits as it should
    if isinstance(exc, parsing.UsageError):
        return BadOption(exc.format_message())
    if isinstance(exc, ParameterError):
        return BadOption(f"{option(exc.field)}: {exc}")
    if isinstance(exc, DigitflowError):
        return Failure(str(exc))
    if isinstance(exc, ValidationError):
        return Failure(f"{exc.title}: {describe(exc)}")
    return None


def bad_options(exc: ValidationError) -> ParameterError:
    """A flow's parameters that do not validate, as the option that is wrong."""
    names = [part for part in exc.errors()[0]["loc"] if isinstance(part, str)]
    return ParameterError(names[-1] if names else "", describe(exc, where=False))


@contextmanager
def one_line() -> Iterator[None]:
    """Turn the expected errors raised inside into one-line failures."""
    try:
        yield
    except (parsing.ClickException, DigitflowError, ValidationError) as exc:
        shown = failure(exc)
        if shown is None:
            raise
        raise shown from None


class OneLineErrors(TyperGroup):
    """The ``digitflow`` group: every command's expected errors end in one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context | None = None,
        **extra: Any,
    ) -> Context:  # fmt: skip
        with one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Context) -> Any:
        with one_line():
            return super().invoke(ctx)
