"""The errors the client library raises, on the one hierarchy of :mod:`workflows.errors`.

Catch by kind (``except NotFound``) or by class; every error has a stable ``code`` (the HTTP
API's ``error.code``) and optional ``details``. ``conveyor.client`` exports these too.
"""

from __future__ import annotations

from collections.abc import Mapping

from workflows.errors import (
    Conflict,
    ConveyorError,
    Invalid,
    NotFound,
    Unavailable,
    UnknownPipeline,
)
from workflows.messages import CommandResult

__all__ = [
    "ClientClosed",
    "CommandRejected",
    "Conflict",
    "ConveyorError",
    "Invalid",
    "InvalidSeedData",
    "NoWorkerResponded",
    "NotFound",
    "PipelineCommandRejected",
    "PipelineNotAccepting",
    "Unavailable",
    "UnknownPipeline",
]


class CommandRejected(Conflict):
    """The task refused a command; ``result`` says why (and per field, for forms)."""

    code = "rejected"

    def __init__(self, result: CommandResult):
        self.result = result
        detail = "".join(f"\n  {k}: {v}" for k, v in result.field_errors.items())
        super().__init__(
            f"{result.command} rejected: {result.message}{detail}",
            details=result.model_dump(mode="json"),
        )


class InvalidSeedData(Invalid, ValueError):
    """Seed data that does not fit the pipeline's predefined fields."""

    code = "invalid_seed_data"

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        lines = "".join(f"\n  {k}: {v}" for k, v in self.errors.items())
        super().__init__(f"seed data does not fit the pipeline:{lines}", details=self.errors)


class NoWorkerResponded(Unavailable, TimeoutError):
    """An update got no answer in time: usually no worker polls the task queue."""

    code = "no_worker"


class PipelineNotAccepting(Conflict, ValueError):
    """The pipeline takes no new tasks in its status (Draft, Completed or Archived)."""

    code = "pipeline_not_accepting"


class PipelineCommandRejected(Conflict, ValueError):
    """The pipeline refused a status change or a definition; the message says why."""

    code = "pipeline_rejected"


class ClientClosed(RuntimeError):
    """The :class:`~conveyor.client.ConveyorClient` was closed; connect a new one.

    A mistake in the calling code, not a problem a caller answers: no kind of its own.
    """
