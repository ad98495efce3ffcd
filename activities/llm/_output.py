"""Turning the model's reply into validated field values (``workflows.forms`` rules)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workflows.forms import coerce_llm_text, validate_value
from workflows.graph import FieldSpec, FieldType

_EXCERPT_CHARS = 300


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
