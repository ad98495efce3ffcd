"""The prompt: templates rendered in the sandbox, and the instructions that fix the output format.

:func:`render_template` renders ``spec.system`` and ``spec.prompt`` over the task data in
``workflows.templates.SANDBOX`` (no access to Python internals, no eval); a broken template can
never succeed, so it fails at once with a non-retryable ``InvalidPromptTemplate``.
:func:`output_instructions` describes each field's type and limits so the model can comply, and
:func:`build_messages` puts both into the chat messages of one call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SecurityError
from temporalio.exceptions import ApplicationError

from activities.llm._errors import INVALID_PROMPT_TEMPLATE
from workflows.graph import FieldSpec, FieldType, LlmSpec
from workflows.templates import SANDBOX

# --------------------------------------------------------------------------- prompt templates


def _rendered(template: str, context: Mapping[str, Any]) -> str:
    """Render in pieces, refusing output past :data:`MAX_RENDERED_CHARS` as soon as it gets
    there (a loop over the task data can repeat a long text without end)."""
    pieces: list[str] = []
    size = 0
    for piece in SANDBOX.from_string(template).generate(dict(context)):
        size += len(piece)
        if size > MAX_RENDERED_CHARS:
            raise SecurityError(
                f"the rendered text is over {MAX_RENDERED_CHARS:,} characters; render less "
                "(loops repeating long fields)"
            )
        pieces.append(piece)
    return "".join(pieces)


MAX_RENDERED_CHARS = 4_000_000
"""The longest a rendered prompt may get (a few times the largest task data)."""


def render_template(template: str, context: Mapping[str, Any], *, what: str = "prompt") -> str:
    """Render one prompt template over the task data in the sandbox.

    Args:
        template: Jinja2 source, e.g. ``"Classify: {{ text }}"``.
        context: the variables the template may use (seed data and upstream field values).
        what: names the template in error messages (``"prompt"``, ``"system"``).

    Raises:
        ApplicationError: non-retryable, type ``InvalidPromptTemplate``, on a syntax error, an
            undefined variable, anything the sandbox forbids or any other rendering error:
            rendering is deterministic, so a retry would fail the same way.
    """
    try:
        return _rendered(template, context)
    except TemplateSyntaxError as e:
        message = (
            f"the {what} template has a syntax error on line {e.lineno}: {e.message}; "
            "fix the template in the pipeline definition"
        )
    except SecurityError as e:
        message = (
            f"the {what} template was stopped by the sandbox ({e}); templates may only read "
            "task data, not Python internals"
        )
    except UndefinedError as e:
        names = ", ".join(sorted(context)[:30]) or "none"
        message = (
            f"the {what} template refers to something the task data does not have "
            f"({e.message}); available variables: {names}"
        )
    except Exception as e:
        message = f"the {what} template failed to render: {type(e).__name__}: {e}"
    raise ApplicationError(message, type=INVALID_PROMPT_TEMPLATE, non_retryable=True)


# --------------------------------------------------------------------------- messages


def _quoted(options: Sequence[str] | None) -> str:
    return ", ".join(json.dumps(o, ensure_ascii=False) for o in options or [])


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {_fmt(low)} to {_fmt(high)}"
    if low is not None:
        return f" of at least {_fmt(low)}"
    if high is not None:
        return f" of at most {_fmt(high)}"
    return ""


def _describe(f: FieldSpec) -> str:
    """What a valid value of ``f`` looks like, in words a model follows."""
    t = f.type
    if t in (FieldType.SHORT_TEXT, FieldType.LONG_TEXT, FieldType.CODE):
        if t == FieldType.SHORT_TEXT:
            text = "a short single-line text"
        elif t == FieldType.LONG_TEXT:
            text = "free text"
        else:
            text = (
                f"source code{f' in {f.language}' if f.language else ''}, without markdown fences"
            )
        if f.min_length is not None:
            text += f", at least {f.min_length} characters"
        if f.max_length is not None:
            text += f", at most {f.max_length} characters"
        return text
    if t == FieldType.BOOLEAN:
        return "true or false"
    if t == FieldType.NUMBER:
        return "a number" + _range_text(f.min, f.max)
    if t == FieldType.INTEGER:
        return "a whole number" + _range_text(f.min, f.max)
    if t == FieldType.RATING:
        return "a whole-number rating" + _range_text(f.min, f.max)
    if t == FieldType.DATETIME:
        return "an ISO 8601 date and time, e.g. 2024-05-01T13:30:00"
    if t == FieldType.URL:
        return "an absolute http(s) URL"
    if t == FieldType.SELECT:
        return f"exactly one of these options, spelled as given: {_quoted(f.options)}"
    if t == FieldType.MULTI_SELECT:
        text = f"a JSON array of options chosen from: {_quoted(f.options)}"
        if f.min is not None:
            text += f"; at least {_fmt(f.min)} of them"
        if f.max is not None:
            text += f"; at most {_fmt(f.max)} of them"
        return text
    if t == FieldType.RANKING:
        return (
            "a JSON array with every one of these items exactly once, best first: "
            f"{_quoted(f.options)}"
        )
    if t == FieldType.PAIRWISE:
        choices = [*(f.options or []), *(["tie"] if f.allow_tie else [])]
        return f"the better of the two, exactly one of: {_quoted(choices)}"
    return str(t)


def field_line(f: FieldSpec) -> str:
    label = f" ({f.label})" if f.label and f.label != f.name else ""
    help_text = f" {f.help.strip()}" if f.help else ""
    optional = "; may be null if there is nothing to give" if not f.required else ""
    return f'- "{f.name}"{label}: {_describe(f)}{optional}.{help_text}'


def output_instructions(fields: Sequence[FieldSpec], *, as_object: bool = False) -> str:
    """The system-prompt paragraph that tells the model the exact output format.

    Args:
        fields: the fields to fill.
        as_object: ask for a JSON object even for one field (structured output and judges);
            several fields always get a JSON object.
    """
    if len(fields) == 1 and not as_object:
        f = fields[0]
        title = f" ({f.label})" if f.label and f.label != f.name else ""
        help_text = f"\n{f.help.strip()}" if f.help else ""
        return (
            f'Answer with the value of the field "{f.name}"{title}: {_describe(f)}.{help_text}\n'
            "Reply with the bare value only: no explanation, no surrounding quotes, no markdown."
        )
    lines = "\n".join(field_line(f) for f in fields)
    return (
        "Reply with a single JSON object and nothing else (no markdown, no explanation). "
        f"It must have exactly {'this key' if len(fields) == 1 else 'these keys'}:\n"
        f"{lines}\n"
        "Use JSON types: strings for text and options, numbers for numbers, true/false for "
        "yes/no, arrays for lists."
    )


def _chat(
    system_template: str, prompt_template: str, instructions: str, context: Mapping[str, Any]
) -> list[dict[str, str]]:
    system = render_template(system_template, context, what="system") if system_template else ""
    prompt = render_template(prompt_template, context, what="prompt")
    system_text = "\n\n".join(p for p in (system.strip(), instructions) if p)
    return [
        {"role": "system", "content": system_text},
        {"role": "user", "content": prompt},
    ]


def build_messages(
    spec: LlmSpec,
    fields: Sequence[FieldSpec],
    context: Mapping[str, Any],
    *,
    as_object: bool = False,
) -> list[dict[str, str]]:
    """The chat messages for one call: system (instructions + format) and user (the prompt).

    Args:
        as_object: ask for a JSON object even for one field (see :func:`output_instructions`).

    Raises:
        ApplicationError: ``InvalidPromptTemplate`` (non-retryable) if a template fails.
    """
    instructions = output_instructions(fields, as_object=as_object)
    return _chat(spec.system, spec.prompt, instructions, context)
