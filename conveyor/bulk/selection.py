"""Which tasks a bulk action applies to, and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from store.explorer import TaskFilter

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each page or chunk."""


class Selection(BaseModel):
    """Which tasks a bulk action applies to.

    Explicit ids (``filter.workflow_ids`` and nothing else) are taken as given, so a task whose
    workflow exists but whose store rows do not can still be deleted. Anything else is resolved
    in the store: ``pipeline``'s tasks matching ``filter`` (all of them for an empty filter).
    """

    model_config = ConfigDict(frozen=True)

    pipeline: str | None = None
    filter: TaskFilter = Field(default_factory=TaskFilter)

    @model_validator(mode="after")
    def _needs_a_pipeline(self) -> Selection:
        if self.pipeline is None and not self.filter.is_explicit_only():
            raise ValueError("a selection needs a pipeline unless it is a list of workflow ids")
        return self

    @classmethod
    def of_ids(cls, workflow_ids: Sequence[str], pipeline: str | None = None) -> Selection:
        return cls(pipeline=pipeline, filter=TaskFilter(workflow_ids=list(workflow_ids)))


# --------------------------------------------------------------------------- progress bar
