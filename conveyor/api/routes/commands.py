"""The HTTP API's task commands: one table from route to (body model, command), one route
factory for all of them.

Each route is ``POST /tasks/{workflow_id}/<op>`` (claimed work, for whoever holds the claim) or
``POST /tasks/{workflow_id}/admin/<op>`` (admins). A body's fields are the command's own fields
under the same names; the sender (``contributor``, ``admin`` or ``by``) is always the signed-in
user, and the request id a fresh one unless the body gives one. Claiming is not here: it goes
through the work queue, which keeps claim limits (``routes/queue.py``).

(No ``from __future__ import annotations`` here: the routes are made in a loop, and FastAPI
reads their body types from the annotations at run time.)
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field, model_validator

from conveyor.api.routes.common import Deps, RequestId, WorkflowId
from conveyor.commands import task_command
from store.users import User
from workflows.messages import TASK_COMMANDS, CommandResult, QuarantineAction, Verdict, actor_field

Text = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str | None, Field(max_length=2000)]
TagName = Annotated[str, Field(min_length=1, max_length=100)]


# --------------------------------------------------------------------------- bodies: claimed work


class TokenBody(BaseModel):
    request_id: RequestId = None
    node: Text
    token: str = Field(min_length=1, max_length=200)


class ValuesBody(TokenBody):
    values: dict[str, Any]


class ReviewBody(TokenBody):
    verdict: Verdict
    reason: str | None = Field(default=None, max_length=5000, description="required on fail")
    values: dict[str, Any] = Field(default_factory=dict, description="the review's own fields")

    @model_validator(mode="after")
    def _reason_on_fail(self) -> "ReviewBody":
        if self.verdict is Verdict.FAIL and not (self.reason or "").strip():
            raise ValueError("a failed review needs a reason: say what to fix")
        return self


class AdjudicateBody(TokenBody):
    pick: Text | None = Field(
        default=None, description="the annotator whose answer becomes the final one"
    )
    values: dict[str, Any] = Field(
        default_factory=dict, description="the final answer's fields (over the picked answer)"
    )
    reason: str = Field(min_length=1, max_length=5000, description="why this is the final answer")


# --------------------------------------------------------------------------- bodies: admin


class PauseBody(BaseModel):
    request_id: RequestId = None
    reason: Reason = None


class ByBody(BaseModel):
    request_id: RequestId = None


class TagBody(BaseModel):
    request_id: RequestId = None
    tags: list[TagName] = Field(min_length=1, max_length=100)


class EditBody(BaseModel):
    request_id: RequestId = None
    node: Text
    values: dict[str, Any]
    reason: Reason = None


class ReleaseClaimBody(BaseModel):
    request_id: RequestId = None
    node: Text
    reason: Reason = None
    holder: Text | None = Field(
        default=None, description="whose claim, on a consensus node where several hold places"
    )


class EscalateBody(BaseModel):
    request_id: RequestId = None
    reason: str = Field(min_length=1, max_length=2000)


class ReasonBody(BaseModel):
    request_id: RequestId = None
    reason: Reason = None


class ResolveBody(BaseModel):
    request_id: RequestId = None
    action: QuarantineAction
    reason: Reason = None


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class CommandRoute:
    """``POST /tasks/{workflow_id}/<path>``: the body ``body`` sends the command ``command``."""

    path: str
    """After the workflow id: ``release``, ``admin/pause``…"""
    command: str
    """A name of :data:`workflows.messages.TASK_COMMANDS`."""
    body: type[BaseModel]
    summary: str
    name: str
    """The route's name (and so its OpenAPI operation id)."""

    def __post_init__(self) -> None:
        model = TASK_COMMANDS[self.command]
        unknown = set(self.body.model_fields) - {"request_id"} - set(model.model_fields)
        if unknown or actor_field(model) in self.body.model_fields:
            raise TypeError(f"{self.body.__name__} does not fit {model.__name__}: {unknown}")

    def build(self, body: BaseModel, user: User) -> Any:
        """The command this route sends for ``body``, sent by ``user``."""
        fields = {k: getattr(body, k) for k in type(body).model_fields if k != "request_id"}
        request_id = getattr(body, "request_id", None)
        return task_command(self.command, actor=user.name, request_id=request_id, **fields)


WORK_ROUTES = (
    CommandRoute(
        "release", "release", TokenBody, "Give a claimed node back (the draft is kept)", "release"
    ),
    CommandRoute(
        "draft",
        "save_draft",
        ValuesBody,
        "Save a draft on a claimed node (inline evaluators answer)",
        "draft",
    ),
    CommandRoute(
        "submit",
        "submit",
        ValuesBody,
        "Submit a claimed subtask's form (422 invalid_values with per-field errors)",
        "submit",
    ),
    CommandRoute(
        "review",
        "review",
        ReviewBody,
        "Pass or fail a claimed review (a fail needs a reason)",
        "review",
    ),
    CommandRoute(
        "adjudicate",
        "adjudicate",
        AdjudicateBody,
        "Settle a consensus item under a claimed adjudicate node: pick an answer and/or write "
        "the final one, with a reason",
        "adjudicate",
    ),
    CommandRoute(
        "regenerate",
        "regenerate",
        TokenBody,
        "Ask the model again for the LLM fields of a claimed node's draft",
        "regenerate",
    ),
)
"""Commands on claimed work, for the contributor holding the claim (``routes/queue.py``)."""


def _admin(op: str, command: str, body: type[BaseModel], summary: str) -> CommandRoute:
    return CommandRoute(
        f"admin/{op}", command, body, f"Admin: {summary}", f"admin_{op.replace('-', '_')}"
    )


ADMIN_ROUTES = (
    _admin("pause", "pause", PauseBody, "Pause a task (claims' timers and LLM work freeze)"),
    _admin("resume", "resume", ByBody, "Resume a paused task exactly where it was"),
    _admin("activate", "activate", ByBody, "Make a Pending task available for work"),
    _admin("tag", "tag", TagBody, "Add tags"),
    _admin("untag", "untag", TagBody, "Remove tags"),
    _admin(
        "edit",
        "edit_submission",
        EditBody,
        "Edit a submission (the timeline keeps before and after)",
    ),
    _admin("release-claim", "release_claim", ReleaseClaimBody, "Release whoever holds a node"),
    _admin("escalate", "escalate", EscalateBody, "Flag a task for admin attention"),
    _admin("deescalate", "deescalate", ReasonBody, "Return an Escalated task to work"),
    _admin(
        "resolve",
        "resolve_quarantine",
        ResolveBody,
        "Resolve a Quarantined task: rework, finish or fail",
    ),
    _admin(
        "retry", "retry", ReasonBody, "Put a Failed task back where it was and re-run what failed"
    ),
)
"""Admin operations on a task (``routes/tasks.py``)."""

CLAIM_ROUTES = {"claim": ("/tasks/{workflow_id}/claim", "/queue/next")}
"""Claiming goes through the work queue (claim limits, the claim count in the answer), so its
routes are written out in ``routes/queue.py``."""

COMMAND_ROUTES = WORK_ROUTES + ADMIN_ROUTES


def add_command_routes(
    router: APIRouter,
    routes: tuple[CommandRoute, ...],
    auth: Any,
    *,
    check: Callable[[str], object] | None = None,
    tags: list[str | Enum] | None = None,
) -> None:
    """Add ``routes`` to ``router``, for users passing ``auth`` (``Worker`` or ``Admin``).

    ``check`` runs on the workflow id first (e.g. that it looks like a task's). A body whose
    fields are all optional may be left out.
    """
    for route in routes:
        optional = all(not f.is_required() for f in route.body.model_fields.values())
        router.add_api_route(
            f"/tasks/{{workflow_id:path}}/{route.path}",
            _endpoint(route, auth, check, optional),
            methods=["POST"],
            response_model=CommandResult,
            name=route.name,
            summary=route.summary,
            tags=tags,
        )


def _endpoint(
    route: CommandRoute, auth: Any, check: Callable[[str], object] | None, optional: bool
) -> Callable[..., Any]:
    body_type = route.body

    if optional:

        async def send_optional(
            workflow_id: WorkflowId,
            deps: Deps,
            user: auth,
            body: Annotated[body_type | None, Body()] = None,  # type: ignore[valid-type]
        ) -> CommandResult:
            if check is not None:
                check(workflow_id)
            command = route.build(body if body is not None else body_type(), user)
            return await deps.conveyor.task(workflow_id).send(command)

        return send_optional

    async def send(
        workflow_id: WorkflowId,
        deps: Deps,
        user: auth,
        body: Annotated[body_type, Body()],  # type: ignore[valid-type]
    ) -> CommandResult:
        if check is not None:
            check(workflow_id)
        return await deps.conveyor.task(workflow_id).send(route.build(body, user))

    return send
