"""Task commands by name, as every interface builds them.

The CLI, the HTTP API and the web app each map their own input (flags, request bodies, form
fields) to a command of :data:`workflows.messages.TASK_COMMANDS`; this builds it, filling the
sender's field (``contributor``, ``admin`` or ``by``) with who is acting and the request id with
a fresh one when none was given. Which interface offers which command is checked against the
registry by ``tests/test_command_registry.py``.
"""

from __future__ import annotations

from typing import Any, cast

from conveyor.client import new_request_id
from workflows.messages import TASK_COMMANDS, Command, actor_field


def request_id_or_new(request_id: str | None) -> str:
    """``request_id`` if the caller gave one (to retry safely), else a fresh one."""
    return request_id or new_request_id()


def task_command(name: str, *, actor: str, request_id: str | None = None, **fields: Any) -> Command:
    """The command ``name`` of :data:`TASK_COMMANDS`, sent by ``actor``.

    ``fields`` are the command's own fields (node, token, values, reason…); pydantic validates
    them as the command's model does. Raises ``KeyError`` for a name that is not a command
    callers may send.
    """
    model = TASK_COMMANDS[name]
    fields["request_id"] = request_id_or_new(request_id)
    fields[actor_field(model)] = actor
    return cast(Command, model.model_validate(fields))
