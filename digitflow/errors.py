"""Exceptions with messages meant for people: what went wrong, where, and what to do."""


class DigitflowError(Exception):
    """Base of every error digitflow raises on purpose."""


class TransientError(DigitflowError):
    """A failure that may pass if the same step is tried again (network, endpoint down)."""


class SourceError(DigitflowError):
    """An input (MNIST source file, URL, S3 prefix) is missing, unreachable or malformed."""


class StoreError(DigitflowError):
    """The object store cannot be read or written."""


class SourceUnreachable(SourceError, TransientError):
    """A source URL or endpoint did not answer."""


class StoreUnavailable(StoreError, TransientError):
    """The object store's endpoint did not answer."""


class NotFoundError(StoreError):
    """A key does not exist in the object store."""


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
