"""What every flow's parameters share: the object store, and the settings of a run."""

from __future__ import annotations

from pydantic import BaseModel, Field

from digitflow.settings import Settings


class StoreParams(BaseModel):
    """Parameters that name the object store a flow reads and writes."""

    store: str | None = Field(default=None, description="Object store URI. Empty: DIGITFLOW_STORE.")

    def settings(self) -> Settings:
        """The run's settings: the environment's (DIGITFLOW_*), with this store if named."""
        return Settings(**self.model_dump(include={"store"}, exclude_none=True))
