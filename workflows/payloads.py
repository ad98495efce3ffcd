"""Reading command payloads inside workflow code, so that no input can break a workflow task.

Handlers take the raw payload (``RawValue``) and decode it here. Whatever arrives — an encoding
the converter cannot read, bad JSON, ``null``, a list, wrong types, missing or unknown fields,
unknown enum values, absurd nesting — becomes :class:`Undecodable`, naming each problem; it never
reaches the workflow task as an exception. Updates turn it into a ``CommandRejected`` refusal,
signals into a ``rejected`` timeline event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RawValue

from workflows.messages import CommandResult, Problem

M = TypeVar("M", bound=BaseModel)

MAX_DEPTH = 32
"""How deeply a command's JSON may nest. Commands are shallow (a form's values are at most a
list inside a dict); the limit keeps pathological payloads away from recursive code."""

_WHOLE = "(payload)"


class Undecodable(Exception):
    """A payload that is not the command it was sent as.

    Attributes:
        result: the refusal: the command name, a message, each problem (``at``, ``problem``)
            and the request_id when one could be read.
        actor: the sender as the payload names them (contributor, admin or by), if readable.
    """

    def __init__(self, result: CommandResult, actor: str | None) -> None:
        super().__init__(result.message)
        self.result = result
        self.actor = actor


def decode_command(name: str, args: Sequence[RawValue], commands: Mapping[str, type[M]]) -> M:
    """Read the arguments of a handler call named ``name`` as one of ``commands``.

    Raises:
        Undecodable: an unknown name, not exactly one payload, or a payload that is not the
            command; nothing else is raised.
    """
    model = commands.get(name)
    if model is None:
        known = ", ".join(commands)
        _refuse(
            name,
            [Problem(at="(name)", problem=f"no command '{name}'; the commands: {known}")],
            _peek(args),
        )
    if len(args) != 1:
        _refuse(
            name,
            [
                Problem(
                    at=_WHOLE,
                    problem=f"expected exactly one payload (the command as a JSON object), "
                    f"got {len(args)}",
                )
            ],
            _peek(args),
        )
    return decode(name, args[0], model)


def _peek(args: Sequence[RawValue]) -> dict[str, Any] | None:
    """The first payload as a JSON object, if it is one (to name the request and sender)."""
    try:
        value = workflow.payload_converter().from_payload(args[0].payload)
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def decode(name: str, raw: Any, model: type[M]) -> M:
    """Read ``raw`` (a handler's ``RawValue``) as ``model``, the command ``name``.

    Raises:
        Undecodable: the payload cannot be read as ``model``; nothing else is raised.
    """
    payload = raw.payload if isinstance(raw, RawValue) else None
    if payload is None:
        _refuse(name, [Problem(at=_WHOLE, problem="no payload: send the command as JSON")])
    encoding = payload.metadata.get("encoding", b"").decode("utf-8", "replace") or "none"
    try:
        value = workflow.payload_converter().from_payload(payload)
    except Exception as err:  # any converter failure is the sender's, never the task's
        _refuse(
            name,
            [Problem(at=_WHOLE, problem=f"cannot be decoded as {encoding}: {_short(err)}")],
        )
    if not isinstance(value, dict):
        _refuse(
            name,
            [
                Problem(
                    at=_WHOLE,
                    problem=f"expected a JSON object (encoding json/plain), got "
                    f"{_kind(value)} (encoding {encoding})",
                )
            ],
        )
    if _depth(value) > MAX_DEPTH:
        _refuse(
            name,
            [Problem(at=_WHOLE, problem=f"nested deeper than {MAX_DEPTH} levels")],
            value,
        )
    try:
        return model.model_validate(value)
    except ValidationError as err:
        problems = [
            Problem(
                at=".".join(str(part) for part in error["loc"]) or _WHOLE,
                problem=error["msg"],
            )
            for error in err.errors(include_url=False, include_input=False)
        ]
        _refuse(name, problems, value)
    except Exception as err:  # a validator of ours that raised something else
        _refuse(name, [Problem(at=_WHOLE, problem=_short(err))], value)


def _refuse(name: str, problems: list[Problem], value: dict[str, Any] | None = None) -> NoReturn:
    value = value or {}
    request_id = value.get("request_id")
    readable = request_id if isinstance(request_id, str) and 0 < len(request_id) <= 200 else ""
    actor = next(
        (
            v
            for k in ("contributor", "admin", "by")
            if isinstance(v := value.get(k), str) and 0 < len(v) <= 200
        ),
        None,
    )
    listed = "; ".join(f"{p.at}: {p.problem}" for p in problems)
    result = CommandResult(
        request_id=readable,
        command=name,
        accepted=False,
        message=f"the {name} payload is not a valid {name} command ({listed})",
        field_errors={p.at: p.problem for p in problems},
        problems=problems,
        actor=actor,
    )
    raise Undecodable(result, actor)


def _depth(value: Any) -> int:
    """How deeply ``value`` nests, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} raw bytes"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _short(err: Exception) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= 300 else text[:297] + "..."
