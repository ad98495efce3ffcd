"""Form validation: every field type's accepted and rejected values, forms and LLM answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from workflows.forms import FormResult, coerce_llm_text, validate_form, validate_value
from workflows.graph import FieldSpec


def spec(type_: str, name: str = "f", **settings: Any) -> FieldSpec:
    return FieldSpec.model_validate({"name": name, "type": type_, **settings})


# --- validate_value: accepted values and their normal form ----------------------------------

ACCEPTED: list[tuple[dict[str, Any], Any, Any]] = [
    ({"type": "short_text"}, "hello", "hello"),
    ({"type": "short_text"}, "two\nlines", "two\nlines"),
    ({"type": "short_text", "min_length": 2, "max_length": 3}, "abc", "abc"),
    ({"type": "long_text"}, "x" * 5000, "x" * 5000),
    ({"type": "code", "language": "python"}, "print(1)", "print(1)"),
    ({"type": "url"}, "https://example.com/a?b=1", "https://example.com/a?b=1"),
    ({"type": "url"}, " HTTP://example.com ", "HTTP://example.com"),
    ({"type": "boolean"}, True, True),
    ({"type": "boolean"}, False, False),
    ({"type": "number"}, 3.5, 3.5),
    ({"type": "number"}, 3, 3),
    ({"type": "number"}, "3.5", 3.5),
    ({"type": "number"}, " -2 ", -2),
    ({"type": "number", "min": 0, "max": 1}, 1, 1),
    ({"type": "integer"}, 4, 4),
    ({"type": "integer"}, 4.0, 4),
    ({"type": "integer"}, "7", 7),
    ({"type": "integer"}, "7.0", 7),
    ({"type": "integer", "min": -1, "max": 1}, -1, -1),
    ({"type": "datetime"}, "2024-05-01T09:30:00", "2024-05-01T09:30:00"),
    ({"type": "datetime"}, "2024-05-01T09:30:00Z", "2024-05-01T09:30:00+00:00"),
    ({"type": "datetime"}, "2024-05-01", "2024-05-01T00:00:00"),
    ({"type": "datetime"}, datetime(2024, 5, 1, 9, 30), "2024-05-01T09:30:00"),
    ({"type": "select", "options": ["spam", "ham"]}, "ham", "ham"),
    ({"type": "multi_select", "options": ["a", "b", "c"]}, ["c", "a"], ["c", "a"]),
    ({"type": "multi_select", "options": ["a", "b", "c"]}, ("b",), ["b"]),
    (
        {"type": "multi_select", "options": ["a", "b", "c"], "min": 2, "max": 2},
        ["a", "b"],
        ["a", "b"],
    ),
    ({"type": "rating"}, 1, 1),
    ({"type": "rating"}, 5.0, 5),
    ({"type": "rating"}, "4", 4),
    ({"type": "rating", "min": 0, "max": 10}, 10, 10),
    ({"type": "ranking", "options": ["a", "b", "c"]}, ["c", "a", "b"], ["c", "a", "b"]),
    ({"type": "pairwise", "options": ["left", "right"]}, "right", "right"),
    ({"type": "pairwise", "options": ["left", "right"], "allow_tie": True}, "tie", "tie"),
]


@pytest.mark.parametrize(("settings", "value", "expected"), ACCEPTED)
def test_accepted_values_are_normalised(
    settings: dict[str, Any], value: Any, expected: Any
) -> None:
    result = validate_value(spec(settings.pop("type"), **settings), value)
    assert result == expected
    assert type(result) is type(expected)


REJECTED: list[tuple[dict[str, Any], Any, str]] = [
    ({"type": "short_text"}, 5, "expected text, got int"),
    ({"type": "short_text"}, "x" * 1001, "1001 characters is too long; enter at most 1000"),
    ({"type": "short_text", "max_length": 3}, "abcd", "enter at most 3"),
    ({"type": "long_text", "min_length": 10}, "short", "too short; enter at least 10"),
    ({"type": "code"}, ["print"], "expected text"),
    ({"type": "url"}, "example.com", "not a web address; enter a URL starting with http://"),
    ({"type": "url"}, "ftp://example.com", "not a web address"),
    ({"type": "url"}, "https://", "not a web address"),
    ({"type": "url"}, "https://exa mple.com", "not a web address"),
    ({"type": "boolean"}, "true", "is not a boolean; send true or false"),
    ({"type": "boolean"}, 1, "is not a boolean"),
    ({"type": "number"}, True, "is not a number"),
    ({"type": "number"}, "three", "is not a number"),
    ({"type": "number"}, [1], "is not a number"),
    ({"type": "number"}, float("nan"), "not a finite number"),
    ({"type": "number"}, "inf", "not a finite number"),
    ({"type": "number", "min": 0}, -1, "below the minimum; enter at least 0"),
    ({"type": "number", "max": 1}, 1.5, "above the maximum; enter at most 1"),
    ({"type": "integer"}, 2.5, "is not a whole number"),
    ({"type": "integer"}, "2.5", "is not a whole number"),
    ({"type": "integer"}, False, "is not a whole number"),
    ({"type": "integer", "max": 3}, 4, "above the maximum; enter at most 3"),
    ({"type": "datetime"}, "yesterday", "is not a date-time; enter ISO 8601"),
    ({"type": "datetime"}, 1714555800, "is not a date-time"),
    ({"type": "select", "options": ["spam", "ham"]}, "spamm", "'spamm' is not one of: spam, ham"),
    ({"type": "select", "options": ["spam", "ham"]}, 1, "1 is not one of: spam, ham"),
    ({"type": "multi_select", "options": ["a", "b"]}, "a", "expected a list of choices from: a, b"),
    (
        {"type": "multi_select", "options": ["a", "b"]},
        ["a", "z"],
        "'z' not among the choices: a, b",
    ),
    ({"type": "multi_select", "options": ["a", "b"]}, ["a", "a"], "'a' chosen more than once"),
    ({"type": "multi_select", "options": ["a", "b", "c"], "min": 2}, ["a"], "choose at least 2"),
    (
        {"type": "multi_select", "options": ["a", "b", "c"], "max": 1},
        ["a", "b"],
        "choose at most 1",
    ),
    ({"type": "rating"}, 6, "6 is out of range; give a whole number from 1 to 5"),
    ({"type": "rating"}, 0, "give a whole number from 1 to 5"),
    ({"type": "rating"}, 3.5, "is not a rating; give a whole number from 1 to 5"),
    ({"type": "rating"}, True, "is not a rating"),
    ({"type": "rating", "min": 0, "max": 10}, 11, "from 0 to 10"),
    (
        {"type": "ranking", "options": ["a", "b", "c"]},
        ["a", "b"],
        "list each of a, b, c exactly once",
    ),
    ({"type": "ranking", "options": ["a", "b", "c"]}, ["a", "b", "b"], "exactly once"),
    ({"type": "ranking", "options": ["a", "b", "c"]}, ["a", "b", "d"], "exactly once"),
    ({"type": "ranking", "options": ["a", "b"]}, "a,b", "expected a list"),
    ({"type": "pairwise", "options": ["left", "right"]}, "tie", "'tie' is not one of: left, right"),
    ({"type": "pairwise", "options": ["l", "r"], "allow_tie": True}, "x", "not one of: l, r, tie"),
]


@pytest.mark.parametrize(("settings", "value", "phrase"), REJECTED)
def test_rejected_values_name_the_field_and_the_fix(
    settings: dict[str, Any], value: Any, phrase: str
) -> None:
    field = spec(settings.pop("type"), name="answer", **settings)
    with pytest.raises(ValueError) as info:
        validate_value(field, value)
    assert str(info.value).startswith("answer: ")
    assert phrase in str(info.value)


def test_none_is_accepted_only_for_optional_fields() -> None:
    assert validate_value(spec("short_text", required=False), None) is None
    with pytest.raises(ValueError, match="f: required; enter text"):
        validate_value(spec("short_text"), None)


# --- validate_form ------------------------------------------------------------------------

FIELDS = [
    spec("long_text", "text", source="predefined"),
    spec("short_text", "heading", source="static", value="Read carefully"),
    spec("select", "label", options=["spam", "ham"]),
    spec("long_text", "notes", required=False),
    spec("long_text", "summary", source="llm", llm={"prompt": "Summarise {{ text }}"}),
]


def test_valid_submission() -> None:
    result = validate_form(FIELDS, {"label": "spam", "summary": "short"})
    assert isinstance(result, FormResult)
    assert result.ok
    assert result.values == {"label": "spam", "notes": None, "summary": "short"}
    assert result.errors == {}


def test_example_message_format() -> None:
    result = validate_form(FIELDS, {"label": "spamm", "summary": "s"})
    assert not result.ok
    assert result.errors == {"label": "label: 'spamm' is not one of: spam, ham"}
    assert "label" not in result.values


def test_required_fields_missing_none_or_empty() -> None:
    result = validate_form(FIELDS, {"label": "", "summary": None})
    assert set(result.errors) == {"label", "summary"}
    assert "required" in result.errors["label"]
    assert "choose one of: spam, ham" in result.errors["label"]
    assert "required" in validate_form(FIELDS, {"summary": "s"}).errors["label"]


def test_optional_empty_values_become_none() -> None:
    result = validate_form(FIELDS, {"label": "ham", "notes": "", "summary": "s"})
    assert result.ok
    assert result.values["notes"] is None


def test_read_only_and_unknown_keys_are_errors() -> None:
    result = validate_form(
        FIELDS, {"label": "ham", "summary": "s", "text": "x", "heading": "y", "lable": "z"}
    )
    assert result.errors == {
        "text": "field 'text' is predefined (read-only); remove it",
        "heading": "field 'heading' is static (read-only); remove it",
        "lable": "unknown field 'lable'; this node's fields are: label, notes, summary",
    }


def test_partial_checks_only_present_values() -> None:
    draft = validate_form(FIELDS, {"notes": "half done"}, partial=True)
    assert draft.ok
    assert draft.values == {"notes": "half done"}
    bad = validate_form(FIELDS, {"label": "eggs"}, partial=True)
    assert bad.errors == {"label": "label: 'eggs' is not one of: spam, ham"}
    cleared = validate_form(FIELDS, {"label": None}, partial=True)
    assert cleared.ok and cleared.values == {"label": None}


def test_every_error_is_reported_at_once() -> None:
    fields = [spec("integer", "count"), spec("boolean", "ok"), spec("url", "link")]
    result = validate_form(fields, {"count": "x", "ok": "yes", "link": "nope"})
    assert list(result.errors) == ["count", "ok", "link"]


def test_form_without_inputs_lists_no_fields() -> None:
    result = validate_form([FIELDS[0]], {"x": 1})
    assert "this node takes no input" in result.errors["x"]


def test_required_multi_select_needs_a_choice() -> None:
    field = spec("multi_select", "tags", options=["a", "b"])
    assert "required" in validate_form([field], {"tags": []}).errors["tags"]


# --- coerce_llm_text ----------------------------------------------------------------------

COERCED: list[tuple[dict[str, Any], str, Any]] = [
    ({"type": "short_text"}, '  "Paris"  ', "Paris"),
    ({"type": "short_text"}, "\u201cParis\u201d", "Paris"),
    ({"type": "long_text"}, '\n"Quoted" speech stays.\n', '"Quoted" speech stays.'),
    ({"type": "code"}, "  x = 'a'\n", "x = 'a'"),
    ({"type": "boolean"}, "Yes.", True),
    ({"type": "boolean"}, " FALSE ", False),
    ({"type": "number"}, "0.75", 0.75),
    ({"type": "number"}, "Score: 0.75", 0.75),
    ({"type": "integer"}, "'12'", 12),
    ({"type": "rating"}, "4", 4),
    ({"type": "rating"}, "I would rate it 4.", 4),
    ({"type": "datetime"}, '"2024-05-01T09:30:00"', "2024-05-01T09:30:00"),
    ({"type": "url"}, "<https://a.b>".strip("<>"), "https://a.b"),
    ({"type": "select", "options": ["Spam", "Ham"]}, "spam", "Spam"),
    ({"type": "select", "options": ["spam", "ham"]}, "'HAM'.", "ham"),
    ({"type": "pairwise", "options": ["A", "B"], "allow_tie": True}, "Tie", "tie"),
    ({"type": "multi_select", "options": ["a", "b", "c"]}, '["A", "c"]', ["a", "c"]),
    ({"type": "multi_select", "options": ["a", "b", "c"]}, "a, b", ["a", "b"]),
    ({"type": "multi_select", "options": ["a", "b", "c"]}, "- a\n- c", ["a", "c"]),
    ({"type": "ranking", "options": ["x", "y", "z"]}, '["z", "x", "y"]', ["z", "x", "y"]),
    ({"type": "ranking", "options": ["x", "y", "z"]}, "1. y\n2. z\n3. x", ["y", "z", "x"]),
    ({"type": "short_text", "required": False}, "  ", None),
]


@pytest.mark.parametrize(("settings", "text", "expected"), COERCED)
def test_coerce_llm_text(settings: dict[str, Any], text: str, expected: Any) -> None:
    assert coerce_llm_text(spec(settings.pop("type"), **settings), text) == expected


@pytest.mark.parametrize(
    ("settings", "text", "phrase"),
    [
        ({"type": "boolean"}, "maybe", "could not read true or false"),
        ({"type": "number"}, "between 3 and 4", "is not a number"),
        ({"type": "rating"}, "7", "out of range"),
        ({"type": "select", "options": ["spam", "ham"]}, "eggs", "'eggs' is not one of: spam, ham"),
        ({"type": "ranking", "options": ["x", "y"]}, '["x"]', "exactly once"),
        ({"type": "short_text"}, "   ", "required"),
        ({"type": "url"}, "see example.com", "not a web address"),
    ],
)
def test_coerce_llm_text_rejects_unusable_answers(
    settings: dict[str, Any], text: str, phrase: str
) -> None:
    with pytest.raises(ValueError) as info:
        coerce_llm_text(spec(settings.pop("type"), **settings), text)
    assert phrase in str(info.value)
