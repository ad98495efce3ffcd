"""The offline demo model ``conveyor/offline``: deterministic answers, no server, no key.

A clearly labelled fake model for demos and tests; it still goes through litellm (with
``mock_response``, so no request leaves the process) so usage and parsing take the real path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from activities.llm._output import _excerpt
from workflows.forms import DEFAULT_RATING_MAX, DEFAULT_RATING_MIN
from workflows.graph import FieldSpec, FieldType

OFFLINE_MODEL = "conveyor/offline"
"""The offline demo model: deterministic answers, no server, no key, cost 0.0."""

OFFLINE_LABEL = "[offline demo model — not a real LLM]"
"""Prefix of every text the offline model writes, so nobody mistakes it for a real answer."""

_OFFLINE_LITELLM_MODEL = "openai/conveyor-offline"
"""What the offline model is called in litellm; ``mock_response`` means no request is sent."""


def offline_value(f: FieldSpec, prompt: str) -> Any:
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
    value = offline_value(field, prompt)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _offline_reply(fields: Sequence[FieldSpec], prompt: str) -> str:
    if len(fields) == 1:
        return offline_answer(fields[0], prompt)
    return json.dumps({f.name: offline_value(f, prompt) for f in fields}, ensure_ascii=False)
