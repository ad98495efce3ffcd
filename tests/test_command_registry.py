"""One command registry, every table of commands checked against it.

``workflows.messages.TASK_COMMANDS`` names the commands a task takes from outside. A command
added there (or a wiring removed anywhere) fails here until it is handled by the engine,
sendable by the client, reachable from the CLI, mapped by the HTTP API and offered by the web
app (or listed as deliberately not offered). Pure: no Temporal, no store.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

import starter
from conveyor.api.app import API_PREFIX, create_api
from conveyor.api.routes.commands import CLAIM_ROUTES, COMMAND_ROUTES
from conveyor.client import _command_name
from conveyor.commands import task_command
from conveyor.web import contributor, explorer
from workflows import engine
from workflows.messages import (
    COMMAND_TYPES,
    INTERNAL_COMMANDS,
    TASK_COMMANDS,
    Command,
    actor_field,
)

ALL = set(TASK_COMMANDS)
TEMPLATES = Path(explorer.__file__).parent / "templates"


# --------------------------------------------------------------------------- the registry


def test_the_registry_names_each_command_by_its_type() -> None:
    for name, model in TASK_COMMANDS.items():
        assert model.model_fields["type"].default == name
        actor_field(model)  # exactly one sender field


def test_every_command_of_the_union_has_an_engine_handler() -> None:
    assert set(engine._HANDLERS) == set(COMMAND_TYPES)


def test_internal_commands_are_not_sendable() -> None:
    internal = {"claim_timeout", "llm_started", "llm_result", "llm_failure", "llm_draft"}
    assert internal | {"judge_result"} == set(INTERNAL_COMMANDS)
    assert not set(INTERNAL_COMMANDS) & ALL
    assert set(TASK_COMMANDS.values()) | set(INTERNAL_COMMANDS.values()) == set(COMMAND_TYPES)


# --------------------------------------------------------------------------- the client


def test_the_client_sends_every_task_command_and_no_internal_one() -> None:
    for name, model in TASK_COMMANDS.items():
        assert _command_name(cast(Command, model.model_construct())) == name
    for model in INTERNAL_COMMANDS.values():
        with pytest.raises(TypeError):
            _command_name(cast(Command, model.model_construct()))


# --------------------------------------------------------------------------- the CLI


def _send_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every subcommand that sends a task command, with its path."""
    if parser.get_default("handler") is starter.cmd_send:
        yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _send_parsers(sub, (*path, name))


def _argv(path: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str]:
    """The subcommand with a made-up value for each required argument."""
    argv = [*path]
    for action in parser._actions:
        if not action.required:
            continue
        if action.choices:
            value = str(next(iter(action.choices)))
        else:
            value = "{}" if action.dest == "values" else "x"
        argv += [action.option_strings[0], value] if action.option_strings else [value]
    return argv


def test_every_task_command_has_a_cli_subcommand() -> None:
    parsers = dict(_send_parsers(starter.build_parser()))
    assert {" ".join(p) for p in parsers} == set(starter.CLI_COMMANDS)
    assert {name for name, _ in starter.CLI_COMMANDS.values()} == ALL
    for path, sub in parsers.items():
        args = starter.build_parser().parse_args(_argv(path, sub))
        assert args.command_name == " ".join(path)
        name, fields = starter.CLI_COMMANDS[args.command_name]
        command = task_command(name, actor=args.as_, **fields(args))
        assert type(command) is TASK_COMMANDS[name], path


# --------------------------------------------------------------------------- the HTTP API


def test_every_task_command_has_an_http_route() -> None:
    assert {r.command for r in COMMAND_ROUTES} | set(CLAIM_ROUTES) == ALL
    assert not {r.command for r in COMMAND_ROUTES} & set(CLAIM_ROUTES)
    paths: dict[str, Any] = create_api().openapi()["paths"]
    served = [f"/tasks/{{workflow_id}}/{r.path}" for r in COMMAND_ROUTES]
    served += [p for routes in CLAIM_ROUTES.values() for p in routes]
    for path in served:
        assert "post" in paths.get(API_PREFIX + path, {}), path


# --------------------------------------------------------------------------- the web app


def _values(template: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (TEMPLATES / template).read_text()))


def test_every_task_command_has_a_web_form_or_is_deliberately_left_out() -> None:
    ops = _values("task_detail.html", r'name="op" value="(\w+)"')
    assert ops == set(explorer.TASK_OPS)
    actions = _values("task_form.html", r'name="action" value="(\w+)"')
    actions |= _values("review.html", r'name="action" value="(\w+)"')
    assert actions == set(contributor.FORM_ACTIONS)
    assert _values("work.html", r'action="(/work/\w+)"') == set(contributor.CLAIM_FORMS)
    offered = (
        set(explorer.TASK_OPS.values())
        | set(contributor.FORM_ACTIONS.values())
        | set(contributor.CLAIM_FORMS.values())
    )
    assert not offered & set(explorer.NOT_OFFERED)
    assert offered | set(explorer.NOT_OFFERED) == ALL


def test_workflows_started_by_name_keep_their_names() -> None:
    """The starter below the activities starts and queries workflows by these names."""
    from temporalio import workflow

    from workflows.options import PIPELINE_DESCRIBE_QUERY, PIPELINE_WORKFLOW, TASK_WORKFLOW
    from workflows.pipeline import PipelineWorkflow
    from workflows.task import TaskWorkflow

    assert workflow._Definition.must_from_class(TaskWorkflow).name == TASK_WORKFLOW
    pipeline = workflow._Definition.must_from_class(PipelineWorkflow)
    assert pipeline.name == PIPELINE_WORKFLOW
    assert PIPELINE_DESCRIBE_QUERY in pipeline.queries
