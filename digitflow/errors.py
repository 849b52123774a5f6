"""Exceptions with messages meant for people: what went wrong, where, and what to do."""

from __future__ import annotations

from pydantic import ValidationError


class DigitflowError(Exception):
    """Base of every error digitflow raises on purpose."""


class TransientError(DigitflowError):
    """A failure that may pass if the same step is tried again (network, endpoint down)."""


class SourceError(DigitflowError):
    """An input (MNIST source file, URL, S3 prefix) is missing, unreachable or malformed."""


class UnreadableNow(SourceError):
    """An input that cannot be read now, for a reason that may pass (it is gone for a
    moment, it may not be read, a link is broken): a batch's next run reads it again."""


class StoreError(DigitflowError):
    """The object store cannot be read or written."""


class SourceUnreachable(SourceError, TransientError):
    """A source URL or endpoint did not answer."""


class StoreUnavailable(StoreError, TransientError):
    """The object store's endpoint did not answer."""


class NotFoundError(StoreError):
    """A key does not exist in the object store."""


class ObjectTooLarge(StoreError):
    """An object holds more bytes than the caller reads (``size`` of them)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class PreconditionFailed(StoreError):
    """A conditional write lost: the object changed (or appeared) since it was read."""


class ImageError(DigitflowError):
    """A scanned image cannot be decoded or is unusable."""


class ReaderStartError(DigitflowError):
    """The processes that find digits in scans cannot start."""


class ModelError(DigitflowError):
    """A model cannot be built, loaded or verified."""


class TrainingError(DigitflowError):
    """A model failed to train (bad hyper-parameter, crash of its process, ...)."""

    child_traceback: str = ""


class ParameterError(DigitflowError):
    """A parameter (a command-line option, a flow parameter) is wrong, or conflicts with
    another; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def describe(exc: ValidationError, where: bool = True) -> str:
    """A pydantic validation error in one line: where (if anywhere, and ``where``) and what."""
    first = exc.errors()[0]
    at = ".".join(str(part) for part in first["loc"]) if where else ""
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{at + ': ' if at else ''}{first['msg']}{more}"
