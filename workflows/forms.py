"""Form validation: checking submitted values against a node's field definitions.

Pure and deterministic (standard library and pydantic only): the workflow's update validators
call it inside the sandbox to reject a bad submission before it reaches history, and the HTTP
API calls it to answer with per-field errors. Every message starts with the field name and says
what is wrong and what is accepted, e.g. ``label: 'spamm' is not one of: spam, ham``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from workflows.graph import FieldSource, FieldSpec, FieldType

__all__ = ["FormResult", "coerce_llm_text", "validate_form", "validate_value"]

DEFAULT_SHORT_TEXT_MAX_LENGTH = 1000
"""short_text fields without a max_length accept at most this many characters."""

DEFAULT_RATING_MIN = 1
DEFAULT_RATING_MAX = 5
TIE = "tie"
"""The pairwise answer for "neither is better", accepted when the field sets ``allow_tie``."""

EDITABLE_SOURCES = frozenset({FieldSource.INPUT, FieldSource.LLM})
"""Sources whose values a person submits: input, and llm (a person may edit a model's draft)."""

TEXT_TYPES = frozenset({FieldType.SHORT_TEXT, FieldType.LONG_TEXT, FieldType.CODE, FieldType.URL})
"""Types whose values are strings, and to which min_length / max_length apply."""


class FormResult(BaseModel):
    """The outcome of :func:`validate_form`."""

    values: dict[str, Any] = Field(default_factory=dict)
    """Normalised values of the fields that passed, by field name."""
    errors: dict[str, str] = Field(default_factory=dict)
    """One message per rejected field (or unexpected key), by name."""

    @property
    def ok(self) -> bool:
        """True when nothing was rejected."""
        return not self.errors


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def validate_form(
    fields: Sequence[FieldSpec], values: Mapping[str, Any], *, partial: bool = False
) -> FormResult:
    """Validate a submission (or a draft) for one node's form.

    Only ``input`` and ``llm`` fields take values; a key naming a ``predefined`` or ``static``
    field, or no field at all, is an error. For a final submission, merge any LLM draft into
    ``values`` first: a required field that is missing is an error.

    Args:
        fields: The node's field definitions.
        values: Submitted values by field name.
        partial: Validate a draft: check only the values present and skip the required check.

    Returns:
        The normalised values and one error message per problem. For a full submission every
        editable field appears in ``values`` (``None`` when an optional field was left empty);
        for a draft only the fields given do.
    """
    by_name = {f.name: f for f in fields}
    editable = [f for f in fields if f.source in EDITABLE_SOURCES]
    result = FormResult()

    for key in values:
        spec = by_name.get(key)
        if spec is None:
            known = ", ".join(f.name for f in editable) or "(none: this node takes no input)"
            result.errors[key] = f"unknown field '{key}'; this node's fields are: {known}"
        elif spec.source not in EDITABLE_SOURCES:
            result.errors[key] = f"field '{key}' is {spec.source.value} (read-only); remove it"

    for spec in editable:
        present = spec.name in values
        value = values.get(spec.name)
        if _is_empty(value):
            if spec.required and not partial:
                result.errors[spec.name] = f"{spec.name}: required; {_accepted(spec)}"
            elif present or not partial:
                result.values[spec.name] = None
            continue
        try:
            result.values[spec.name] = validate_value(spec, value)
        except ValueError as exc:
            result.errors[spec.name] = str(exc)
    return result


def _accepted(spec: FieldSpec) -> str:
    """What a field accepts, for the end of an error message."""
    options = spec.options or []
    match spec.type:
        case FieldType.SHORT_TEXT | FieldType.LONG_TEXT | FieldType.CODE:
            return "enter text"
        case FieldType.URL:
            return "enter a URL starting with http:// or https://"
        case FieldType.BOOLEAN:
            return "choose true or false"
        case FieldType.NUMBER:
            return "enter a number"
        case FieldType.INTEGER:
            return "enter a whole number"
        case FieldType.DATETIME:
            return "enter an ISO 8601 date-time such as 2024-05-01T09:30:00"
        case FieldType.SELECT:
            return f"choose one of: {', '.join(options)}"
        case FieldType.MULTI_SELECT:
            return f"choose from: {', '.join(options)}"
        case FieldType.RATING:
            low, high = _rating_bounds(spec)
            return f"give a whole number from {low} to {high}"
        case FieldType.RANKING:
            return f"order all of: {', '.join(options)}"
        case FieldType.PAIRWISE:
            return f"choose one of: {', '.join(_pairwise_choices(spec))}"
    return "see the field's help"  # pragma: no cover - every FieldType is matched above


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rating_bounds(spec: FieldSpec) -> tuple[int, int]:
    low = DEFAULT_RATING_MIN if spec.min is None else math.ceil(spec.min)
    high = DEFAULT_RATING_MAX if spec.max is None else math.floor(spec.max)
    return low, high


def _pairwise_choices(spec: FieldSpec) -> list[str]:
    choices = list(spec.options or [])
    return [*choices, TIE] if spec.allow_tie else choices


def _number_text(value: float) -> str:
    # 3.0 reads better as 3 in "must be at least 3".
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_range(spec: FieldSpec, number: float) -> None:
    if spec.min is not None and number < spec.min:
        raise ValueError(
            f"{spec.name}: {number} is below the minimum; enter at least {_number_text(spec.min)}"
        )
    if spec.max is not None and number > spec.max:
        raise ValueError(
            f"{spec.name}: {number} is above the maximum; enter at most {_number_text(spec.max)}"
        )


def _text(spec: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{spec.name}: expected text, got {type(value).__name__} {_fmt(value)}")
    max_length = spec.max_length
    if max_length is None and spec.type == FieldType.SHORT_TEXT:
        max_length = DEFAULT_SHORT_TEXT_MAX_LENGTH
    if spec.min_length is not None and len(value) < spec.min_length:
        raise ValueError(
            f"{spec.name}: {len(value)} characters is too short; enter at least {spec.min_length}"
        )
    if max_length is not None and len(value) > max_length:
        raise ValueError(
            f"{spec.name}: {len(value)} characters is too long; enter at most {max_length}"
        )
    return value


def _url(spec: FieldSpec, value: Any) -> str:
    text = _text(spec, value).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in text:
        raise ValueError(
            f"{spec.name}: {_fmt(value)} is not a web address; "
            "enter a URL starting with http:// or https://"
        )
    return text


def _number(spec: FieldSpec, value: Any) -> int | float:
    number: int | float
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{spec.name}: {_fmt(value)} is not a number; enter a number such as 3.5")
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(
                    f"{spec.name}: {_fmt(value)} is not a number; enter a number such as 3.5"
                ) from None
    else:
        number = value
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{spec.name}: {_fmt(value)} is not a finite number; enter a number")
    _check_range(spec, number)
    return number


def _whole(spec: FieldSpec, value: Any) -> int:
    """An int from an int, an integral float or a numeric string; bools are rejected."""
    problem = f"{spec.name}: {_fmt(value)} is not a whole number; enter e.g. 3"
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(problem) from None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(problem)


def _integer(spec: FieldSpec, value: Any) -> int:
    number = _whole(spec, value)
    _check_range(spec, number)
    return number


def _rating(spec: FieldSpec, value: Any) -> int:
    low, high = _rating_bounds(spec)
    try:
        number = _whole(spec, value)
    except ValueError:
        raise ValueError(
            f"{spec.name}: {_fmt(value)} is not a rating; give a whole number from {low} to {high}"
        ) from None
    if not low <= number <= high:
        raise ValueError(
            f"{spec.name}: {number} is out of range; give a whole number from {low} to {high}"
        )
    return number


def _boolean(spec: FieldSpec, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(
            f"{spec.name}: {_fmt(value)} is not a boolean; send true or false (not a string)"
        )
    return value


def _datetime(spec: FieldSpec, value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    problem = (
        f"{spec.name}: {_fmt(value)} is not a date-time; "
        "enter ISO 8601 such as 2024-05-01T09:30:00 or 2024-05-01T09:30:00+00:00"
    )
    if not isinstance(value, str):
        raise ValueError(problem)
    try:
        return datetime.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise ValueError(problem) from None


def _select(spec: FieldSpec, value: Any) -> str:
    options = spec.options or []
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{spec.name}: {_fmt(value)} is not one of: {', '.join(options)}")
    return value


def _as_list(spec: FieldSpec, value: Any, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"{spec.name}: expected a list of {what}, got {type(value).__name__} {_fmt(value)}"
        )
    return list(value)


def _multi_select(spec: FieldSpec, value: Any) -> list[str]:
    options = spec.options or []
    items = _as_list(spec, value, f"choices from: {', '.join(options)}")
    unknown = [item for item in items if not isinstance(item, str) or item not in options]
    if unknown:
        raise ValueError(
            f"{spec.name}: {', '.join(_fmt(u) for u in unknown)} not among the choices: "
            f"{', '.join(options)}"
        )
    repeated = sorted({item for item in items if items.count(item) > 1}, key=items.index)
    if repeated:
        raise ValueError(f"{spec.name}: {', '.join(map(repr, repeated))} chosen more than once")
    if spec.min is not None and len(items) < spec.min:
        raise ValueError(
            f"{spec.name}: {len(items)} chosen; choose at least {_number_text(spec.min)}"
        )
    if spec.max is not None and len(items) > spec.max:
        raise ValueError(
            f"{spec.name}: {len(items)} chosen; choose at most {_number_text(spec.max)}"
        )
    return items


def _ranking(spec: FieldSpec, value: Any) -> list[str]:
    options = spec.options or []
    items = _as_list(spec, value, f"all of: {', '.join(options)}, in order")
    all_text = all(isinstance(item, str) for item in items)
    if not all_text or len(items) != len(options) or sorted(items) != sorted(options):
        raise ValueError(
            f"{spec.name}: {_fmt(items)} is not an ordering of the items; "
            f"list each of {', '.join(options)} exactly once, best first"
        )
    return items


def _pairwise(spec: FieldSpec, value: Any) -> str:
    choices = _pairwise_choices(spec)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{spec.name}: {_fmt(value)} is not one of: {', '.join(choices)}")
    return value


def validate_value(field: FieldSpec, value: Any) -> Any:
    """Check one value against its field definition and return it normalised.

    Normalisation: numeric strings become numbers, integral floats become ints for integer and
    rating fields, date-times become ISO 8601 strings, URLs lose surrounding whitespace, tuples
    become lists.

    Args:
        field: The field definition.
        value: The submitted value. ``None`` is accepted only for optional fields.

    Returns:
        The normalised value.

    Raises:
        ValueError: The value does not fit; the message names the field, what is wrong and what
            is accepted.
    """
    if value is None:
        if field.required:
            raise ValueError(f"{field.name}: required; {_accepted(field)}")
        return None
    match field.type:
        case FieldType.SHORT_TEXT | FieldType.LONG_TEXT | FieldType.CODE:
            return _text(field, value)
        case FieldType.URL:
            return _url(field, value)
        case FieldType.BOOLEAN:
            return _boolean(field, value)
        case FieldType.NUMBER:
            return _number(field, value)
        case FieldType.INTEGER:
            return _integer(field, value)
        case FieldType.DATETIME:
            return _datetime(field, value)
        case FieldType.SELECT:
            return _select(field, value)
        case FieldType.MULTI_SELECT:
            return _multi_select(field, value)
        case FieldType.RATING:
            return _rating(field, value)
        case FieldType.RANKING:
            return _ranking(field, value)
        case FieldType.PAIRWISE:
            return _pairwise(field, value)
    raise ValueError(f"{field.name}: unsupported field type {field.type!r}")  # pragma: no cover


# --- LLM answers ---------------------------------------------------------------------------

_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0"})


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def _match_option(text: str, choices: Sequence[str]) -> str:
    answer = _unquote(text)
    if answer in choices:
        return answer
    # Models often add case changes or a full stop: "Spam." for the option spam.
    folded = {answer.casefold(), _unquote(text.strip().rstrip(".!")).casefold()}
    folded |= {f.rstrip(".!") for f in folded}
    for choice in choices:
        if choice.casefold() in folded:
            return choice
    return answer  # validate_value reports it with the list of choices


def _items(text: str) -> list[str]:
    """A list answer: a JSON array, else comma- or line-separated items."""
    stripped = text.strip()
    try:
        parsed = json.loads(stripped)
    except ValueError:
        parsed = None
    if isinstance(parsed, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in parsed]
    stripped = stripped.strip("[]")
    separator = "\n" if "\n" in stripped else ","
    parts = (re.sub(r"^\s*(?:[-*]|\d+[.)])\s+", "", part) for part in stripped.split(separator))
    return [p for p in (_unquote(part) for part in parts) if p]


def _number_from(text: str) -> str:
    answer = _unquote(text)
    if _NUMBER.fullmatch(answer):
        return answer
    # "Rating: 4" or "4 out of" ... only when exactly one number appears, so "3/5" stays ambiguous.
    found = _NUMBER.findall(answer)
    return found[0] if len(found) == 1 else answer


def coerce_llm_text(field: FieldSpec, text: str) -> Any:
    """Turn a model's raw text answer into a value of the field's type, then validate it.

    Surrounding whitespace is removed; surrounding quotes too, except for long_text and code
    whose content is kept as written. Booleans accept true/false/yes/no; numbers may appear
    alone or as the only number in a short sentence; select, pairwise, multi_select and
    ranking match options case-insensitively, the list types from a JSON array (or comma- or
    line-separated items).

    Args:
        field: The field the answer is for.
        text: The model's answer.

    Returns:
        The validated, normalised value.

    Raises:
        ValueError: The answer cannot be read as a valid value for the field.
    """
    value: Any
    match field.type:
        case FieldType.LONG_TEXT | FieldType.CODE:
            value = text.strip()
        case FieldType.SHORT_TEXT | FieldType.URL | FieldType.DATETIME:
            value = _unquote(text)
        case FieldType.BOOLEAN:
            word = _unquote(text).casefold().rstrip(".!")
            if word not in _TRUE_WORDS | _FALSE_WORDS:
                raise ValueError(
                    f"{field.name}: could not read true or false from {_fmt(text)}; "
                    "answer true or false"
                )
            value = word in _TRUE_WORDS
        case FieldType.NUMBER | FieldType.INTEGER | FieldType.RATING:
            value = _number_from(text)
        case FieldType.SELECT:
            value = _match_option(text, field.options or [])
        case FieldType.PAIRWISE:
            value = _match_option(text, _pairwise_choices(field))
        case FieldType.MULTI_SELECT | FieldType.RANKING:
            value = [_match_option(item, field.options or []) for item in _items(text)]
        case _:  # pragma: no cover - every FieldType is matched above
            value = text
    if value == "" and not field.required:
        return None
    return validate_value(field, value if value != "" else None)
