"""What every part of the Data Explorer shares: page sizes, the frozen base model, the errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from workflows.errors import Invalid, NotFound

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 5000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class InvalidCursor(Invalid, ValueError):
    """A cursor this module did not make, or one made for another sort order."""

    code = "invalid_cursor"


class TaskNotFound(NotFound, LookupError):
    """No task with that workflow id in the store."""

    code = "task_not_found"

    def __init__(self, workflow_id: str):
        super().__init__(
            f"no task {workflow_id!r} in the store; workflow ids look like 'pipeline/key' "
            "(list them with `explore tasks --pipeline P`)"
        )
        self.workflow_id = workflow_id
