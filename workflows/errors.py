"""One error hierarchy for the whole project: four kinds of problem, each with a stable code.

Every error a caller of Conveyor can meet is a :class:`ConveyorError` of one kind:

- :class:`NotFound`: what was asked for does not exist (HTTP 404);
- :class:`Invalid`: the caller's input does not fit (HTTP 422);
- :class:`Conflict`: the input is fine, the state refuses it (HTTP 409);
- :class:`Unavailable`: something that must answer did not (HTTP 503).

``code`` is stable (the HTTP API answers with it, clients branch on it; the README lists
them); a subclass sets its own where callers need to tell it apart. ``details`` carries
structured data when there is any (per-field problems, a definition's problems). The HTTP API
maps by kind (``conveyor.api.errors``), so a new error needs no new row there.

This module sits below every layer, so the store, the client and the operations can all raise
these; it imports nothing. The engine's own rejections stay pure (``workflows.engine``) and
the client translates them. Subclasses keep the builtin base they had (``LookupError``,
``ValueError``, ``TimeoutError``) as a second base, for callers that catch those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "Conflict",
    "ConveyorError",
    "Invalid",
    "NotFound",
    "Unavailable",
    "UnknownPipeline",
]


class ConveyorError(Exception):
    """Base of every error Conveyor raises for its callers; ``str(err)`` says what to fix."""

    code: ClassVar[str] = "internal_error"
    """Stable machine-readable code (the HTTP API's ``error.code``)."""

    def __init__(self, *args: object, details: Any = None) -> None:
        super().__init__(*args)
        self.details = details
        """Structured data for the caller (JSON-ready), or None."""


class NotFound(ConveyorError):
    """What was asked for does not exist."""

    code = "not_found"


class Invalid(ConveyorError):
    """The caller's input does not fit; the message (and ``details``) say where."""

    code = "invalid_input"


class Conflict(ConveyorError):
    """The request is well-formed, but the current state refuses it."""

    code = "conflict"


class Unavailable(ConveyorError):
    """Something that must answer (Temporal, a worker, the store) did not."""

    code = "temporal_unavailable"


class UnknownPipeline(NotFound, LookupError):
    """No pipeline of that name was applied (``python starter.py pipeline apply FILE``).

    Raised by the client (no pipeline workflow) and by the store (no row, nothing recorded):
    one kind whichever layer finds out. ``name`` is the pipeline asked for (when known) and
    ``known`` the pipelines there are (when the store listed them).
    """

    code = "unknown_pipeline"

    def __init__(self, message: str, *, name: str | None = None, known: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.known = list(known)
