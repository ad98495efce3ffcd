"""Structured output: the JSON schema of a reply, and which models accept one (or JSON mode)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from activities.llm._litellm import litellm
from activities.llm._offline import OFFLINE_MODEL, _int_if_whole
from activities.llm._prompt import _describe
from workflows.forms import DEFAULT_RATING_MAX, DEFAULT_RATING_MIN
from workflows.graph import FieldSpec, FieldType


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


def supports_json_mode(model: str) -> bool:
    try:
        params = litellm.get_supported_openai_params(model=model)
    except Exception:
        return False
    return bool(params) and "response_format" in (params or [])


def _response_format(
    fields: Sequence[FieldSpec], *, structured: bool, model: str, as_object: bool = False
) -> dict[str, Any] | None:
    """A JSON schema (structured output), else JSON mode for an object reply, else nothing."""
    if structured:
        return _json_schema_format(fields)
    if (as_object or len(fields) > 1) and supports_json_mode(model):
        return {"type": "json_object"}
    return None
