"""The LLM activities: render a prompt, call the model through litellm, validate the output.

``LlmActivities.call_llm`` fills an ``llm`` node's fields:

1. Render ``spec.system`` and ``spec.prompt`` as Jinja2 templates over the task data in a sandbox
   (no access to Python internals, no eval). A broken template can never succeed, so it fails
   at once with a non-retryable ``InvalidPromptTemplate``.
2. Ask for the bare value (one field) or a JSON object with exactly the field names (several
   fields, with the provider's JSON mode when it has one), describing each field's type and
   limits so the model can comply. With ``structured_output`` and a model that supports it, the
   JSON object is constrained by a JSON schema built from the fields (:func:`json_schema_for`).
3. Call ``litellm.acompletion(..., num_retries=0)``: Temporal owns retries, so every attempt is
   visible in the workflow's history. Provider errors become ``ApplicationError`` s whose type is
   the litellm exception's class name; errors that cannot succeed on retry (bad key, unknown
   model, bad request, prompt too long) are non-retryable and name the fix.
4. Validate the output against the field specs (``workflows.forms``). Invalid output retries
   (the model may do better) until attempt ``MAX_OUTPUT_ATTEMPTS``, then fails for good.

``LlmActivities.judge_llm`` runs one LLM judge the same way (see :func:`run_judge`, which a bulk
evaluation calls directly) and returns an :class:`~workflows.messages.EvaluationRecord`.

Every attempt of either activity, successful or not, writes one ``llm_calls`` row for LLM
Analytics (model, tokens, cost, latency, outcome, error class; never prompts, completions or
keys). Recording is best effort: a store failure is logged and never fails the call.

API keys come from :class:`LlmSettings` (the worker's environment) or litellm's own provider
variables (``OPENAI_API_KEY``…); never from workflow input, and never into messages or logs.

``model: conveyor/offline`` (:data:`OFFLINE_MODEL`) is a clearly labelled fake model for demos and
tests: it contacts no server and answers deterministically (see :func:`offline_answer`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SecurityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from store.db import transaction
from store.dialect import upsert_ignore
from store.models import LlmCallRow
from workflows.evaluators import judge_range, judge_verdict
from workflows.forms import DEFAULT_RATING_MAX, DEFAULT_RATING_MIN, coerce_llm_text, validate_value
from workflows.graph import EvaluatorKind, FieldSpec, FieldType, JudgeOutput, JudgeSpec, LlmSpec
from workflows.messages import (
    EvaluationKind,
    EvaluationRecord,
    JudgeRequest,
    LlmRequest,
    LlmResponse,
)
from workflows.templates import SANDBOX

# Without this, importing litellm downloads its model price map from GitHub; workers often have
# no internet access, and start-up must not depend on (or hang on) the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm
import openai

# litellm prints "Provider List: https://…" banners on every error; our errors say it better.
litellm.suppress_debug_info = True

# litellm's DEBUG records quote whole requests, rendered prompts included, and its INFO records
# repeat a line per call that our own "LLM call" line already says. A worker that logs at DEBUG
# (to trace Temporal, say) must still not write prompts to its logs, so litellm's own loggers
# stop at WARNING unless LITELLM_LOG asks for more on purpose.
if not os.environ.get("LITELLM_LOG"):
    for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(_name).setLevel(logging.WARNING)

__all__ = [
    "INVALID_LLM_REQUEST",
    "INVALID_PROMPT_TEMPLATE",
    "LLM_OUTPUT_INVALID",
    "MAX_OUTPUT_ATTEMPTS",
    "OFFLINE_LABEL",
    "OFFLINE_MODEL",
    "RECORD_TIMEOUT_SECONDS",
    "LlmActivities",
    "LlmSettings",
    "build_messages",
    "json_schema_for",
    "judge_fields",
    "offline_answer",
    "output_instructions",
    "parse_output",
    "render_template",
    "run_judge",
    "supports_structured_output",
]

OFFLINE_MODEL = "conveyor/offline"
"""The offline demo model: deterministic answers, no server, no key, cost 0.0."""

OFFLINE_LABEL = "[offline demo model — not a real LLM]"
"""Prefix of every text the offline model writes, so nobody mistakes it for a real answer."""

_OFFLINE_LITELLM_MODEL = "openai/conveyor-offline"
"""What the offline model is called in litellm; ``mock_response`` means no request is sent."""

MAX_OUTPUT_ATTEMPTS = 3
"""From this attempt on, output that fails validation is a non-retryable failure."""

INVALID_PROMPT_TEMPLATE = "InvalidPromptTemplate"
LLM_OUTPUT_INVALID = "LlmOutputInvalid"
INVALID_LLM_REQUEST = "InvalidLlmRequest"

RECORD_TIMEOUT_SECONDS = 10.0
"""How long recording an attempt in ``llm_calls`` may take before the call goes on without it."""

_EXCERPT_CHARS = 300

_T = TypeVar("_T")


@dataclass(frozen=True)
class LlmSettings:
    """Worker-wide LLM configuration (``CONVEYOR_LLM_*`` environment variables).

    Attributes:
        api_base: default endpoint for OpenAI-compatible servers (vLLM, Ollama, a proxy); a
            node's own ``llm.api_base`` wins. When set it applies to every model, so leave it
            unset when nodes use hosted providers.
        api_key: key sent with every call. Secret: excluded from ``repr``, never logged or
            returned. When unset, litellm reads the provider's own variable (``OPENAI_API_KEY``,
            ``ANTHROPIC_API_KEY``…).
        timeout_seconds: per-call HTTP timeout; keep the activity's start-to-close timeout above
            it so the provider's timeout, not Temporal's, reports a slow call.
    """

    api_base: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LlmSettings:
        """Read the settings from ``CONVEYOR_LLM_*`` environment variables.

        ``CONVEYOR_LLM_API_BASE``, ``CONVEYOR_LLM_API_KEY`` and ``CONVEYOR_LLM_TIMEOUT_SECONDS``;
        empty values count as unset.

        Args:
            environ: the variables to read; ``os.environ`` by default.

        Raises:
            ValueError: if the timeout is not a positive number.
        """
        env = os.environ if environ is None else environ
        timeout_text = (env.get("CONVEYOR_LLM_TIMEOUT_SECONDS") or "").strip()
        timeout = cls.timeout_seconds
        if timeout_text:
            try:
                timeout = float(timeout_text)
            except ValueError:
                timeout = -1.0
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(
                    f"CONVEYOR_LLM_TIMEOUT_SECONDS={timeout_text!r} is not a positive number of "
                    "seconds; write e.g. 60"
                )
        return cls(
            api_base=(env.get("CONVEYOR_LLM_API_BASE") or "").strip() or None,
            api_key=(env.get("CONVEYOR_LLM_API_KEY") or "").strip() or None,
            timeout_seconds=timeout,
        )


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


def _field_line(f: FieldSpec) -> str:
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
    lines = "\n".join(_field_line(f) for f in fields)
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


# --------------------------------------------------------------------------- structured output


def _value_schema(f: FieldSpec) -> dict[str, Any]:
    """The JSON schema of one field's value (not allowing null)."""
    t = f.type
    options = list(f.options or [])
    schema: dict[str, Any]
    if t in (FieldType.SHORT_TEXT, FieldType.LONG_TEXT, FieldType.CODE, FieldType.URL):
        # Length limits stay out: strict-mode providers reject minLength / maxLength. The
        # instructions state them and the output is validated against them anyway.
        schema = {"type": "string"}
    elif t in (FieldType.NUMBER, FieldType.INTEGER):
        schema = {"type": "number" if t == FieldType.NUMBER else "integer"}
        if f.min is not None:
            schema["minimum"] = _int_if_whole(f.min)
        if f.max is not None:
            schema["maximum"] = _int_if_whole(f.max)
    elif t == FieldType.RATING:
        low = DEFAULT_RATING_MIN if f.min is None else math.ceil(f.min)
        high = DEFAULT_RATING_MAX if f.max is None else math.floor(f.max)
        schema = {"type": "integer", "minimum": low, "maximum": high}
    elif t == FieldType.BOOLEAN:
        schema = {"type": "boolean"}
    elif t == FieldType.SELECT:
        schema = {"type": "string", "enum": options}
    elif t == FieldType.PAIRWISE:
        schema = {"type": "string", "enum": [*options, *(["tie"] if f.allow_tie else [])]}
    elif t == FieldType.MULTI_SELECT:
        schema = {"type": "array", "items": {"type": "string", "enum": options}}
        if f.min is not None:
            schema["minItems"] = math.ceil(f.min)
        if f.max is not None:
            schema["maxItems"] = math.floor(f.max)
    elif t == FieldType.RANKING:
        # A schema cannot say "a permutation": parse_output still checks that.
        schema = {
            "type": "array",
            "items": {"type": "string", "enum": options},
            "minItems": len(options),
            "maxItems": len(options),
        }
    elif t == FieldType.DATETIME:
        schema = {"type": "string", "format": "date-time"}
    else:  # pragma: no cover - every FieldType is matched above
        schema = {}
    schema["description"] = _describe(f) + (f" {f.help.strip()}" if f.help else "")
    return schema


def json_schema_for(fields: Sequence[FieldSpec]) -> dict[str, Any]:
    """The JSON schema of a reply filling ``fields``: an object with exactly their names.

    Every key is required and no other key is allowed (strict structured output demands both);
    an optional field accepts ``null``. The schema narrows what the model may write, but the
    reply is still validated by :func:`parse_output` (a schema cannot say everything: a
    ranking's items must each appear once, providers may ignore some keywords).
    """
    properties: dict[str, Any] = {}
    for f in fields:
        value = _value_schema(f)
        if not f.required:
            value = {"anyOf": [value, {"type": "null"}]}
        properties[f.name] = value
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in fields],
        "additionalProperties": False,
    }


def _json_schema_format(fields: Sequence[FieldSpec]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "fields", "strict": True, "schema": json_schema_for(fields)},
    }


def supports_structured_output(model: str, api_base: str | None = None) -> bool:
    """Whether ``model`` accepts ``response_format={"type": "json_schema", ...}``.

    litellm's model map decides for hosted models; an ``openai/...`` model on a custom
    ``api_base`` (vLLM, Ollama, a proxy) is assumed to support it, as those servers do.
    """
    if model == OFFLINE_MODEL:
        return False
    if api_base and model.startswith("openai/"):
        return True
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:
        return False


def _supports_json_mode(model: str) -> bool:
    try:
        params = litellm.get_supported_openai_params(model=model)
    except Exception:
        return False
    return bool(params) and "response_format" in (params or [])


# --------------------------------------------------------------------------- output


def _excerpt(text: str, limit: int = _EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validate_json_value(f: FieldSpec, value: Any) -> Any:
    try:
        return validate_value(f, value)
    except ValueError:
        # Models often quote numbers and booleans inside JSON ("4", "true"): accept what the
        # single-field text parser would have accepted, else report the original problem.
        if isinstance(value, str) and f.type not in (
            FieldType.SHORT_TEXT,
            FieldType.LONG_TEXT,
            FieldType.CODE,
        ):
            try:
                return coerce_llm_text(f, value)
            except ValueError:
                pass
        raise


def parse_output(
    fields: Sequence[FieldSpec], content: str | None, *, as_object: bool = False
) -> dict[str, Any]:
    """Turn the model's reply into validated field values.

    One field: the reply is the bare value (``coerce_llm_text``). Several, or ``as_object``: the
    reply must be a JSON object (parsed with ``json.loads``; text around it is a failure) whose
    keys are validated one by one (``validate_value``); keys not asked for are ignored.

    Raises:
        ValueError: naming every problem found, with an excerpt of the reply.
    """
    if content is None or not content.strip():
        raise ValueError("the model returned no text")
    if len(fields) == 1 and not as_object:
        f = fields[0]
        try:
            return {f.name: coerce_llm_text(f, content)}
        except ValueError as e:
            raise ValueError(f"{e}; reply was {_excerpt(content)!r}") from None
    try:
        obj = json.loads(content)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"expected a JSON object, got text that is not JSON ({e.msg} at character {e.pos}); "
            f"reply was {_excerpt(content)!r}"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(
            f"expected a JSON object, got a JSON {type(obj).__name__}; "
            f"reply was {_excerpt(content)!r}"
        )
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in fields:
        if f.name not in obj and f.required:
            problems.append(f"{f.name}: key missing from the JSON object")
            continue
        try:
            values[f.name] = _validate_json_value(f, obj.get(f.name))
        except ValueError as e:
            problems.append(str(e))  # forms' messages start with the field name
    if problems:
        raise ValueError("; ".join(problems) + f"; reply was {_excerpt(content)!r}")
    return values


# --------------------------------------------------------------------------- offline model


def _offline_value(f: FieldSpec, prompt: str) -> Any:
    """The offline model's answer for ``f`` as a JSON value (see :func:`offline_answer`)."""
    options = list(f.options or [])
    t = f.type
    if t in (FieldType.SELECT, FieldType.PAIRWISE):
        return options[0] if options else ""
    if t == FieldType.MULTI_SELECT:
        return options[: max(1, math.ceil(f.min or 1))]
    if t == FieldType.RANKING:
        return options
    if t == FieldType.BOOLEAN:
        return True
    if t in (FieldType.NUMBER, FieldType.INTEGER):
        number = f.min if f.min is not None else min(0.0, f.max) if f.max is not None else 0.0
        return math.ceil(number) if t == FieldType.INTEGER else _int_if_whole(number)
    if t == FieldType.RATING:
        low = f.min if f.min is not None else DEFAULT_RATING_MIN
        high = f.max if f.max is not None else max(low, DEFAULT_RATING_MAX)
        return max(math.ceil(low), math.floor((low + high) / 2))
    if t == FieldType.DATETIME:
        return "2000-01-01T00:00:00"
    if t == FieldType.URL:
        return "https://example.invalid/offline"
    # Text-like fields: the label first, so the answer always says what it is.
    gist = " ".join(prompt.split())
    text = f"{OFFLINE_LABEL} {_excerpt(gist, 80)}".rstrip()
    if f.max_length is not None:
        text = text[: f.max_length]
    if f.min_length is not None and len(text) < f.min_length:
        text += "." * (f.min_length - len(text))
    return text


def _int_if_whole(number: float) -> float | int:
    return int(number) if float(number).is_integer() else number


def offline_answer(field: FieldSpec, prompt: str) -> str:
    """The offline demo model's reply for one field, as a model would write it.

    Deterministic: text fields get ``OFFLINE_LABEL`` plus an excerpt of the rendered prompt;
    select / pairwise the first option; multi_select the first option (or as many as ``min``
    requires) as a JSON list; ranking the options in order; number / integer ``min`` or 0;
    rating the middle of its range; boolean ``true``; datetime ``2000-01-01T00:00:00``; url
    ``https://example.invalid/offline``.

    Args:
        field: the field to answer.
        prompt: the rendered user prompt.
    """
    value = _offline_value(field, prompt)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _offline_reply(fields: Sequence[FieldSpec], prompt: str) -> str:
    if len(fields) == 1:
        return offline_answer(fields[0], prompt)
    return json.dumps({f.name: _offline_value(f, prompt) for f in fields}, ensure_ascii=False)


# --------------------------------------------------------------------------- provider errors


_AUTH_HINT = (
    "the provider rejected the credentials for model {model}: set the provider's API key in "
    "the worker's environment (e.g. OPENAI_API_KEY, or CONVEYOR_LLM_API_KEY for an "
    "OpenAI-compatible endpoint) and restart the worker"
)
_PERMISSION_HINT = (
    "the API key is not allowed to use model {model}: give the worker a key with access to it, "
    "or choose another model"
)
_NOT_FOUND_HINT = (
    "model {model} was not found: check the model name (litellm form 'provider/model', e.g. "
    "openai/gpt-4o-mini) and the api_base"
)
_BAD_REQUEST_HINT = (
    "the provider rejected the request for model {model} as invalid: check the model name and "
    "the node's llm settings (temperature, max_tokens, api_base)"
)


@dataclass(frozen=True)
class _ErrorRule:
    exc_type: type[BaseException]
    retryable: bool
    hint: str
    """How to fix it; ``{model}`` is replaced by the model name."""


# Order matters: subclasses (ContextWindowExceededError is a BadRequestError, Timeout is an
# APIConnectionError) come before their bases.
_ERROR_RULES: tuple[_ErrorRule, ...] = (
    _ErrorRule(
        litellm.ContextWindowExceededError,
        False,
        "the prompt for model {model} is longer than its context window: shorten the prompt "
        "template or the data it includes, lower max_tokens, or choose a larger model",
    ),
    _ErrorRule(
        litellm.UnsupportedParamsError,
        False,
        "model {model} does not support a parameter Conveyor sends (temperature, max_tokens or "
        "JSON output): change the node's llm settings or choose another model",
    ),
    _ErrorRule(
        litellm.ContentPolicyViolationError,
        False,
        "the provider of model {model} refused the prompt under its content policy: change the "
        "prompt template or the task data",
    ),
    _ErrorRule(litellm.AuthenticationError, False, _AUTH_HINT),
    _ErrorRule(litellm.PermissionDeniedError, False, _PERMISSION_HINT),
    _ErrorRule(litellm.NotFoundError, False, _NOT_FOUND_HINT),
    _ErrorRule(litellm.BadRequestError, False, _BAD_REQUEST_HINT),
    _ErrorRule(
        litellm.UnprocessableEntityError,
        False,
        "the provider could not process the request for model {model}: check the node's llm "
        "settings",
    ),
    _ErrorRule(litellm.RateLimitError, True, "model {model} is rate limited; will retry"),
    _ErrorRule(litellm.Timeout, True, "model {model} did not answer in time; will retry"),
    _ErrorRule(
        litellm.APIConnectionError,
        True,
        "could not reach the provider of model {model}; will retry",
    ),
    _ErrorRule(
        litellm.InternalServerError, True, "the provider of model {model} failed; will retry"
    ),
    _ErrorRule(
        litellm.ServiceUnavailableError,
        True,
        "the provider of model {model} is unavailable; will retry",
    ),
    _ErrorRule(
        litellm.BadGatewayError, True, "the provider of model {model} is unreachable; will retry"
    ),
)

# litellm maps some statuses only to its generic APIError (e.g. 403 from OpenAI-compatible
# servers); fall back on the HTTP status so those still fail fast with the right name.
_STATUS_RULES: dict[int, tuple[str, str]] = {
    401: ("AuthenticationError", _AUTH_HINT),
    403: ("PermissionDeniedError", _PERMISSION_HINT),
    404: ("NotFoundError", _NOT_FOUND_HINT),
}
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def _scrub(text: str, secret: str | None) -> str:
    # Providers echo bad keys back ("Incorrect API key provided: sk-…"); never pass them on.
    return text.replace(secret, "***") if secret else text


def _retry_after(exc: BaseException) -> timedelta | None:
    """The provider's Retry-After (seconds, HTTP date, or OpenAI's retry-after-ms), if any."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if not headers:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    seconds: float | None = None
    if "retry-after-ms" in lowered:
        try:
            seconds = float(lowered["retry-after-ms"]) / 1000
        except ValueError:
            seconds = None
    if seconds is None and "retry-after" in lowered:
        value = lowered["retry-after"].strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or not math.isfinite(seconds):
        return None
    return timedelta(seconds=min(max(seconds, 0.0), 3600.0))


def _missing_credentials(exc: BaseException) -> bool:
    """Whether the OpenAI client refused to start for want of a key (no request was sent).

    litellm reports that as a retryable InternalServerError; only the chained exception, the
    client's bare ``openai.OpenAIError``, tells it apart from a provider failure.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause).lower()
        if type(cause) is openai.OpenAIError and ("credential" in text or "api_key" in text):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _classify(exc: Exception) -> tuple[str, bool, str]:
    """``(error type, retryable, hint)`` for a litellm / provider exception."""
    if _missing_credentials(exc):
        return "AuthenticationError", False, _AUTH_HINT + " (no API key was found)"
    for rule in _ERROR_RULES:
        if isinstance(exc, rule.exc_type):
            return type(exc).__name__, rule.retryable, rule.hint
    status_code = getattr(exc, "status_code", None)
    if isinstance(status_code, int) and status_code in _STATUS_RULES:
        error_type, hint = _STATUS_RULES[status_code]
        return error_type, False, hint
    client_error = isinstance(status_code, int) and 400 <= status_code < 500
    if client_error and status_code not in _RETRYABLE_4XX:
        return type(exc).__name__, False, _BAD_REQUEST_HINT
    return type(exc).__name__, True, "calling model {model} failed; will retry"


def _provider_error(exc: Exception, model: str, secret: str | None) -> ApplicationError:
    """Translate a litellm / provider exception into the ApplicationError Temporal should see."""
    error_type, retryable, hint = _classify(exc)
    said = _scrub(str(exc), secret).strip()
    if len(said) > 500:
        said = said[:499] + "…"
    message = f"{hint.format(model=model)}. Provider said: {said}"
    next_delay = _retry_after(exc) if isinstance(exc, litellm.RateLimitError) else None
    return ApplicationError(
        message, type=error_type, non_retryable=not retryable, next_retry_delay=next_delay
    )


# --------------------------------------------------------------------------- cost


def _is_priced(model: str) -> bool:
    try:
        litellm.get_model_info(model=model)
    except Exception:
        return False
    return True


def _cost_usd(response: Any, model: str) -> float | None:
    """The call's cost from litellm's price map; None when the price is unknown (never 0)."""
    if model == OFFLINE_MODEL:
        return 0.0  # known to be free: no provider is called
    try:
        cost = litellm.completion_cost(completion_response=response)
    except Exception:
        # Unmapped models raise (litellm.ModelNotMappedError in 1.110): price unknown.
        return None
    if cost is None or not math.isfinite(cost) or cost < 0:
        return None
    if cost == 0 and not _is_priced(model):
        return None  # a 0.0 for a model litellm has no price for means "unknown", not "free"
    return float(cost)


# --------------------------------------------------------------------------- one completion


@dataclass
class _Usage:
    """What one attempt measured; filled in as the call goes and recorded however it ends."""

    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0

    def details(self, attempt: int) -> dict[str, Any]:
        """Failure details for an attempt whose output was invalid (the usage still counts)."""
        return {
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "attempt": attempt,
        }


@dataclass(frozen=True)
class _Reply:
    content: str | None
    finish_reason: str | None


def _usage(response: Any) -> tuple[int | None, int | None]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def _completion_kwargs(
    settings: LlmSettings,
    *,
    model: str,
    api_base: str | None,
    temperature: float,
    max_tokens: int,
    messages: list[dict[str, str]],
    response_format: dict[str, Any] | None,
    offline_reply: str | None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "num_retries": 0,  # Temporal owns retries: every attempt shows in history
        "timeout": settings.timeout_seconds,
    }
    if model == OFFLINE_MODEL:
        # Through litellm anyway, so usage and parsing take the real code path; with
        # mock_response no request leaves the process (and no key is sent anywhere).
        kwargs["model"] = _OFFLINE_LITELLM_MODEL
        kwargs["mock_response"] = offline_reply or ""
        return kwargs
    kwargs["model"] = model
    if response_format is not None:
        kwargs["response_format"] = response_format
    if api_base:
        kwargs["api_base"] = api_base
    if settings.api_key:
        kwargs["api_key"] = settings.api_key
    return kwargs


async def _complete(settings: LlmSettings, kwargs: dict[str, Any], usage: _Usage) -> _Reply:
    """One ``litellm.acompletion``; measures into ``usage``, maps errors to ApplicationError."""
    started = time.perf_counter()
    try:
        response: Any = await litellm.acompletion(**kwargs)
    except Exception as e:
        # "from None": the original exception (and its chained causes) may quote the key.
        raise _provider_error(e, usage.model, settings.api_key) from None
    finally:
        usage.latency_ms = (time.perf_counter() - started) * 1000
    usage.prompt_tokens, usage.completion_tokens = _usage(response)
    usage.cost_usd = _cost_usd(response, usage.model)
    choice = response.choices[0] if getattr(response, "choices", None) else None
    content = getattr(getattr(choice, "message", None), "content", None)
    finish_reason = getattr(choice, "finish_reason", None)
    return _Reply(
        content if isinstance(content, str) else None,
        finish_reason if isinstance(finish_reason, str) else None,
    )


def _response_format(
    fields: Sequence[FieldSpec], *, structured: bool, model: str, as_object: bool = False
) -> dict[str, Any] | None:
    """A JSON schema (structured output), else JSON mode for an object reply, else nothing."""
    if structured:
        return _json_schema_format(fields)
    if (as_object or len(fields) > 1) and _supports_json_mode(model):
        return {"type": "json_object"}
    return None


def _invalid_output(
    who: str,
    usage: _Usage,
    attempt: int,
    problem: str,
    reply: _Reply,
    max_tokens: int,
    secret: str | None,
) -> ApplicationError:
    """The error for output that failed validation: retryable until MAX_OUTPUT_ATTEMPTS."""
    final = attempt >= MAX_OUTPUT_ATTEMPTS
    if reply.finish_reason == "length":
        problem += f" (the reply was cut off at max_tokens={max_tokens}; raise it)"
    activity.logger.warning(
        "LLM output invalid: %s model=%s attempt=%d final=%s", who, usage.model, attempt, final
    )
    return ApplicationError(
        f"{who}: model {usage.model} gave output that failed validation on attempt {attempt}"
        f"{' (giving up)' if final else ' (will retry)'}: {_scrub(problem, secret)}",
        usage.details(attempt),
        type=LLM_OUTPUT_INVALID,
        non_retryable=final,
    )


def _template_error(who: str, error: ApplicationError) -> ApplicationError:
    return ApplicationError(f"{who}: {error.message}", type=error.type, non_retryable=True)


# --------------------------------------------------------------------------- call records


@dataclass(frozen=True)
class _CallKey:
    """Which call an attempt belongs to: the identity and grouping columns of its row."""

    workflow_id: str
    node: str
    call_id: str
    purpose: str
    """``field`` or ``judge``."""
    fields: tuple[str, ...]
    attempt: int


def _last_attempt(attempt: int, error_type: str, policy: RetryPolicy | None) -> bool:
    """Whether no attempt follows this failure under ``policy`` (its maximum attempts and
    non-retryable types). Without a policy only non-retryable errors are final. A
    schedule-to-close timeout can still end retries early: such a last attempt stays ``retry``.
    """
    if policy is None:
        return False
    if error_type in (policy.non_retryable_error_types or ()):
        return True
    return policy.maximum_attempts > 0 and attempt >= policy.maximum_attempts


def _attempt_outcome(
    exc: BaseException, attempt: int, policy: RetryPolicy | None
) -> tuple[str, str]:
    """``(outcome, error_class)`` of an attempt that ended with ``exc``."""
    if isinstance(exc, asyncio.CancelledError):
        details = activity.cancellation_details() if activity.in_activity() else None
        timed_out = details is not None and details.timed_out
        error_class = "ActivityTimeout" if timed_out else "ActivityCancelled"
        if details is not None and details.cancel_requested:
            return "failed", error_class  # the workflow gave up on the call
        return ("failed" if _last_attempt(attempt, error_class, policy) else "retry"), error_class
    if isinstance(exc, ApplicationError):
        error_class = exc.type or "ApplicationError"
        final = exc.non_retryable or _last_attempt(attempt, error_class, policy)
    else:
        # Anything else is a bug here or in litellm; Temporal retries it like any error.
        error_class = type(exc).__name__
        final = _last_attempt(attempt, error_class, policy)
    return ("failed" if final else "retry"), error_class


def _insert_call(sessions: sessionmaker[Session], row: dict[str, Any]) -> None:
    with transaction(sessions) as session:
        upsert_ignore(session, LlmCallRow, row)


def _store_problem(exc: BaseException) -> str:
    # The first line only: SQLAlchemy appends the statement and its parameters.
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 300 else text[:299] + "…"


async def _record_attempt(
    sessions: sessionmaker[Session] | None,
    key: _CallKey,
    usage: _Usage,
    outcome: str,
    error_class: str | None,
) -> None:
    """Write the attempt's ``llm_calls`` row. Never raises: analytics must not fail the call."""
    if sessions is None:
        return
    row = {
        "workflow_id": key.workflow_id,
        # Truncated to the columns' sizes, which PostgreSQL enforces.
        "pipeline_name": key.workflow_id.split("/", 1)[0][:100],
        "node": key.node[:200],
        "call_id": key.call_id[:300],
        "purpose": key.purpose,
        "fields": list(key.fields),
        "model": usage.model[:200],
        "attempt": key.attempt,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": usage.cost_usd,
        "latency_ms": usage.latency_ms,
        "outcome": outcome,
        "error_class": error_class[:100] if error_class else None,
        "at": datetime.now(UTC),
    }
    try:
        await asyncio.wait_for(
            asyncio.to_thread(_insert_call, sessions, row), RECORD_TIMEOUT_SECONDS
        )
    except Exception as e:
        activity.logger.warning(
            "could not record LLM call attempt for LLM Analytics (workflow=%s call=%s "
            "attempt=%d outcome=%s); the call itself is unaffected: %s",
            key.workflow_id,
            key.call_id,
            key.attempt,
            outcome,
            _store_problem(e),
        )


async def _recorded(
    sessions: sessionmaker[Session] | None,
    key: _CallKey,
    usage: _Usage,
    work: Awaitable[_T],
    policy: RetryPolicy | None,
) -> _T:
    """Await ``work`` (one attempt) and record how it ended, whatever happened."""
    try:
        result = await work
    except (Exception, asyncio.CancelledError) as e:
        outcome, error_class = _attempt_outcome(e, key.attempt, policy)
        await _record_attempt(sessions, key, usage, outcome, error_class)
        raise
    await _record_attempt(sessions, key, usage, "ok", None)
    return result


# --------------------------------------------------------------------------- filling fields


async def _fill_fields(
    settings: LlmSettings, request: LlmRequest, attempt: int, usage: _Usage
) -> LlmResponse:
    spec, fields = request.spec, list(request.fields)
    who = f"node {request.node!r}"
    if not fields:
        raise ApplicationError(
            f"{who}: an LLM call needs at least one field to fill",
            type=INVALID_LLM_REQUEST,
            non_retryable=True,
        )
    api_base = spec.api_base or settings.api_base
    structured = spec.structured_output and supports_structured_output(spec.model, api_base)
    try:
        # Rendering is CPU work (capped, yet a loop over long task data takes a while): in a
        # thread, so the worker's event loop keeps heartbeating and running other activities.
        messages = await asyncio.to_thread(
            build_messages, spec, fields, request.context, as_object=structured
        )
    except ApplicationError as e:
        raise _template_error(who, e) from None
    kwargs = _completion_kwargs(
        settings,
        model=spec.model,
        api_base=api_base,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        messages=messages,
        response_format=_response_format(fields, structured=structured, model=spec.model),
        offline_reply=_offline_reply(fields, messages[-1]["content"])
        if spec.model == OFFLINE_MODEL
        else None,
    )
    reply = await _complete(settings, kwargs, usage)
    try:
        values = parse_output(fields, reply.content, as_object=structured)
    except ValueError as e:
        raise _invalid_output(
            who, usage, attempt, str(e), reply, spec.max_tokens, settings.api_key
        ) from None

    activity.logger.info(
        "LLM call: node=%s model=%s structured=%s tokens=%s/%s cost=%s latency_ms=%.0f attempt=%d",
        request.node,
        spec.model,
        structured,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost_usd,
        usage.latency_ms,
        attempt,
    )
    return LlmResponse(
        values=values,
        model=spec.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        latency_ms=usage.latency_ms,
        attempt=attempt,
    )


# --------------------------------------------------------------------------- LLM judges


_VERDICT = "verdict"
_REASONING = FieldSpec(
    name="reasoning",
    type=FieldType.LONG_TEXT,
    help="Explain briefly why, before giving the verdict.",
)
_OFFLINE_JUDGE_REASONING = f"{OFFLINE_LABEL} a fixed verdict; nothing was evaluated."


def judge_fields(judge: JudgeSpec) -> list[FieldSpec]:
    """The judge's answer as fields: ``reasoning`` (when asked for) then ``verdict``.

    The verdict is a number within ``min``..``max`` (numeric), a whole number within the range,
    1..5 by default (rating), true / false (boolean) or one of ``options`` (categorical).
    Reasoning comes first so that a model writing in schema order explains before it decides.
    """
    low, high = judge_range(judge)
    verdict: FieldSpec
    if judge.output == JudgeOutput.NUMERIC:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.NUMBER, min=low, max=high)
    elif judge.output == JudgeOutput.RATING:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.RATING, min=low, max=high)
    elif judge.output == JudgeOutput.CATEGORICAL:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.SELECT, options=list(judge.options or []))
    else:
        verdict = FieldSpec(name=_VERDICT, type=FieldType.BOOLEAN)
    return [_REASONING, verdict] if judge.reasoning else [verdict]


def _offline_judge_reply(fields: Sequence[FieldSpec]) -> str:
    """The offline model's verdict: true, the rating's middle, the first option, numeric min."""
    answer = {
        f.name: _OFFLINE_JUDGE_REASONING if f.name == _REASONING.name else _offline_value(f, "")
        for f in fields
    }
    return json.dumps(answer, ensure_ascii=False)


async def _judge(
    settings: LlmSettings, request: JudgeRequest, attempt: int, usage: _Usage
) -> EvaluationRecord:
    evaluator, judge = request.evaluator, request.evaluator.judge
    who = f"node {request.node!r} judge {evaluator.name!r}"
    if judge is None:
        raise ApplicationError(
            f"{who}: an llm_judge evaluator needs judge settings (model, prompt, output)",
            type=INVALID_LLM_REQUEST,
            non_retryable=True,
        )
    if judge.output == JudgeOutput.CATEGORICAL and not judge.options:
        raise ApplicationError(
            f"{who}: a categorical judge needs options to choose from",
            type=INVALID_LLM_REQUEST,
            non_retryable=True,
        )
    fields = judge_fields(judge)
    api_base = judge.api_base or settings.api_base
    structured = supports_structured_output(judge.model, api_base)
    try:
        messages = await asyncio.to_thread(  # CPU work, off the event loop (see above)
            _chat,
            judge.system,
            judge.prompt,
            output_instructions(fields, as_object=True),
            request.context,
        )
    except ApplicationError as e:
        raise _template_error(who, e) from None
    kwargs = _completion_kwargs(
        settings,
        model=judge.model,
        api_base=api_base,
        temperature=judge.temperature,
        max_tokens=judge.max_tokens,
        messages=messages,
        # A judge always answers with an object: JSON mode even for the verdict alone.
        response_format=_response_format(
            fields, structured=structured, model=judge.model, as_object=True
        ),
        offline_reply=_offline_judge_reply(fields) if judge.model == OFFLINE_MODEL else None,
    )
    reply = await _complete(settings, kwargs, usage)
    try:
        values = parse_output(fields, reply.content, as_object=True)
        score, passed, label = judge_verdict(judge, values[_VERDICT])
    except ValueError as e:
        raise _invalid_output(
            who, usage, attempt, str(e), reply, judge.max_tokens, settings.api_key
        ) from None
    reasoning = values.get(_REASONING.name)
    if judge.model == OFFLINE_MODEL:
        reasoning = _OFFLINE_JUDGE_REASONING

    activity.logger.info(
        "LLM judge: node=%s criterion=%s model=%s score=%s passed=%s tokens=%s/%s cost=%s "
        "latency_ms=%.0f attempt=%d",
        request.node,
        evaluator.name,
        judge.model,
        score,
        passed,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost_usd,
        usage.latency_ms,
        attempt,
    )
    return EvaluationRecord(
        criterion=evaluator.name,
        version=evaluator.version,
        kind=EvaluationKind.LLM_JUDGE,
        evaluator=EvaluatorKind.LLM_JUDGE.value,
        mode=request.mode,
        node=request.node,
        fields=list(evaluator.fields),
        score=score,
        passed=passed,
        label=label,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        actor=f"llm:{judge.model}",
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        latency_ms=usage.latency_ms,
        at=datetime.now(UTC),
    )


async def run_judge(
    settings: LlmSettings,
    request: JudgeRequest,
    *,
    attempt: int = 1,
    sessions: sessionmaker[Session] | None = None,
    call_id: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> EvaluationRecord:
    """Run one LLM judge: render its prompt, ask its model, turn the answer into a verdict.

    The core of :meth:`LlmActivities.judge_llm`, for a bulk evaluation activity to call once per
    task (it needs no activity context, but logs through the activity logger when it has one).
    It does not catch failures: a bulk caller turns an ``ApplicationError`` into an
    ``EvaluationRecord`` with ``error`` set (``err.message`` names the problem and never quotes
    a key), or lets retryable ones retry its chunk.

    Args:
        settings: the worker's LLM settings (keys, default ``api_base``, timeout).
        request: the task's node, the evaluator (with its ``judge`` settings) and the task data
            its templates see.
        attempt: the attempt number; from :data:`MAX_OUTPUT_ATTEMPTS` on, invalid output is a
            non-retryable failure (pass 1 for a single try that may be retried).
        sessions: the store; when given, the attempt is written to ``llm_calls`` (purpose
            ``judge``) however it ends. Recording never raises.
        call_id: the ``llm_calls`` key of this call, unique within the task per call (e.g.
            ``<node>:judge:<criterion>:<version>:bulk-<id>``); default ``request.call_id``, else
            ``<node>:judge:<criterion>:<version>``. A repeat with the same key and attempt is not
            recorded twice.
        retry_policy: how the caller retries this call (``judge_llm`` passes its activity's
            policy). It only decides whether a retryable failure is recorded as ``retry`` or, on
            the policy's last attempt, ``failed``; without it retryable failures are ``retry``.

    Returns:
        The verdict (``kind=llm_judge``, ``actor="llm:<model>"``) with tokens, cost (None when
        unknown) and latency; ``at`` is the wall-clock time, ``seq`` 0.

    Raises:
        ApplicationError: ``InvalidPromptTemplate`` / ``InvalidLlmRequest`` (non-retryable);
            provider errors as for :meth:`LlmActivities.call_llm`; ``LlmOutputInvalid`` when
            the answer has no valid verdict (retryable before :data:`MAX_OUTPUT_ATTEMPTS`).
    """
    evaluator = request.evaluator
    key = _CallKey(
        workflow_id=request.workflow_id,
        node=request.node,
        call_id=call_id
        or request.call_id
        or f"{request.node}:judge:{evaluator.name}:{evaluator.version}",
        purpose="judge",
        fields=tuple(evaluator.fields),
        attempt=attempt,
    )
    usage = _Usage(model=evaluator.judge.model if evaluator.judge else "")
    work = _judge(settings, request, attempt, usage)
    return await _recorded(sessions, key, usage, work, retry_policy)


# --------------------------------------------------------------------------- the activities


HEARTBEAT_EVERY = 3.0
"""Seconds between heartbeats while a model call is in flight (the workflow's heartbeat
timeout is ``workflows.options.LLM_HEARTBEAT``)."""


@asynccontextmanager
async def heartbeating(every: float = HEARTBEAT_EVERY) -> AsyncIterator[None]:
    """Heartbeat every ``every`` seconds while the block runs: a worker that dies mid-call is
    noticed within the heartbeat timeout and the attempt is retried on another worker, and a
    cancelled task's call is interrupted instead of running to its end."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    beats = asyncio.create_task(beat())
    try:
        yield
    finally:
        beats.cancel()
        with suppress(asyncio.CancelledError):
            await beats


class LlmActivities:
    """The LLM activities with their configuration injected (construct once per worker).

    Register with ``Worker(..., activities=[acts.call_llm, acts.judge_llm])`` where
    ``acts = LlmActivities(settings, sessions)``. Without ``sessions`` nothing is recorded for
    LLM Analytics.
    """

    def __init__(
        self, settings: LlmSettings, sessions: sessionmaker[Session] | None = None
    ) -> None:
        self._settings = settings
        self._sessions = sessions

    @activity.defn(name="call_llm")
    async def call_llm(self, request: LlmRequest) -> LlmResponse:
        """Fill ``request.fields`` by asking ``request.spec.model``.

        Every attempt is recorded in ``llm_calls`` (purpose ``field``; call id
        ``request.call_id``, or ``<node>:<activity id>`` when empty).

        Returns:
            The validated values with model, token counts, cost (None when unknown), latency
            and attempt number, for LLM Analytics.

        Raises:
            ApplicationError: ``InvalidPromptTemplate`` (non-retryable); a litellm exception
                class name such as ``AuthenticationError`` (non-retryable) or ``RateLimitError``
                (retryable, honouring Retry-After); ``LlmOutputInvalid``, retryable before
                attempt ``MAX_OUTPUT_ATTEMPTS`` and non-retryable from it on. Failure details
                carry the attempt's usage when the model answered.
        """
        info = activity.info()
        key = _CallKey(
            workflow_id=request.workflow_id,
            node=request.node,
            call_id=request.call_id or f"{request.node}:{info.activity_id}",
            purpose="field",
            fields=tuple(f.name for f in request.fields),
            attempt=info.attempt,
        )
        usage = _Usage(model=request.spec.model)
        work = _fill_fields(self._settings, request, info.attempt, usage)
        async with heartbeating():
            return await _recorded(self._sessions, key, usage, work, info.retry_policy)

    @activity.defn(name="judge_llm")
    async def judge_llm(self, request: JudgeRequest) -> EvaluationRecord:
        """Run the LLM judge ``request.evaluator`` on a node's fields (see :func:`run_judge`).

        Every attempt is recorded in ``llm_calls`` (purpose ``judge``; call id
        ``request.call_id``, or ``<node>:<activity id>`` when empty).
        """
        info = activity.info()
        async with heartbeating():
            return await run_judge(
                self._settings,
                request,
                attempt=info.attempt,
                sessions=self._sessions,
                call_id=request.call_id or f"{request.node}:{info.activity_id}",
                retry_policy=info.retry_policy,
            )
