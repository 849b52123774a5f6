"""What every flow's parameters share: the object store, and the settings of a run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from digitflow.data.download import has_credentials
from digitflow.settings import Settings, for_store
from digitflow.storage import AWS_CREDENTIALS

# The UI's form and the server refuse a URL with user information before a run stores it.
NO_CREDENTIALS: JsonDict = {"pattern": r"^(?![A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@)"}


def without_credentials(uri: str | None) -> str | None:
    """``uri``, if it holds no credentials (a flow run keeps its parameters, and its logs
    show them)."""
    if uri and has_credentials(uri):
        raise ValueError(
            "the URI holds credentials, which would be stored with the flow run and shown in "
            f"its logs: {AWS_CREDENTIALS}, never in the URI"
        )
    return uri


class StoreParams(BaseModel):
    """Parameters that name the object store a flow reads and writes."""

    # A rejected value is not repeated in the error: it may hold a password.
    model_config = ConfigDict(hide_input_in_errors=True)

    store: str | None = Field(
        default=None,
        description="Object store URI. Empty: DIGITFLOW_STORE.",
        json_schema_extra=NO_CREDENTIALS,
    )

    _store_without_credentials = field_validator("store")(without_credentials)

    def settings(self) -> Settings:
        """The run's settings: the environment's (DIGITFLOW_*), with this store if named."""
        return for_store(self.store)
