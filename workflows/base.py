"""The one base of every payload and definition model of the contract.

Frozen, so a payload is a value (safe to share between a workflow, its history and its
callers), and ``extra="forbid"``, so a misspelt field is an error rather than silently
dropped. New fields are added as optional, so running workflows keep decoding old payloads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A frozen pydantic model that refuses unknown fields: the base of every contract model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
