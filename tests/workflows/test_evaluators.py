"""Evaluators: every programmatic kind, PII detection, human ratings, judge verdicts, settings."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.evaluators import (
    RATING_DEFAULT_MAX,
    RATING_DEFAULT_MIN,
    evaluate_human,
    evaluate_programmatic,
    evaluator_problems,
    find_pii,
    judge_verdict,
)
from workflows.graph import EvaluatorSpec, FieldSpec, JudgeSpec, PiiKind
from workflows.messages import EvaluationKind, EvaluationRecord


def evaluator(kind: str, fields: list[str] | None = None, **settings: Any) -> EvaluatorSpec:
    return EvaluatorSpec.model_validate(
        {"name": "crit", "kind": kind, "fields": fields or ["answer"], **settings}
    )


def run(kind: str, data: dict[str, Any], **settings: Any) -> EvaluationRecord:
    return evaluate_programmatic(evaluator(kind, **settings), "write", data)


def passes(kind: str, value: Any, **settings: Any) -> bool | None:
    return run(kind, {"answer": value}, **settings).passed


def judge(**settings: Any) -> JudgeSpec:
    return JudgeSpec.model_validate({"prompt": "Rate {{ answer }}", **settings})


def field(type_: str, name: str = "rating", **settings: Any) -> FieldSpec:
    return FieldSpec.model_validate({"name": name, "type": type_, **settings})


# --- the record -----------------------------------------------------------------------------


def test_record_carries_the_evaluator_and_leaves_time_to_the_caller() -> None:
    spec = evaluator("regex", ["summary"], pattern=r"\d+")
    record = evaluate_programmatic(spec, "write", {"summary": "3 items"})
    assert record.kind == EvaluationKind.PROGRAMMATIC
    assert record.criterion == "crit"
    assert record.evaluator == "regex"
    assert record.version == spec.version
    assert record.mode == "hidden"
    assert record.node == "write"
    assert record.fields == ["summary"]
    assert (record.score, record.passed) == (1.0, True)
    assert record.reasoning == r"summary matches /\d+/"
    assert record.at is None and record.seq == 0 and record.error is None


def test_mode_comes_from_the_spec_unless_given() -> None:
    spec = evaluator("valid_json", mode="inline")
    assert evaluate_programmatic(spec, "n", {"answer": "{}"}).mode == "inline"
    assert evaluate_programmatic(spec, "n", {"answer": "{}"}, mode="draft").mode == "draft"


def test_changing_the_criterion_changes_its_version() -> None:
    assert evaluator("regex", pattern="a").version != evaluator("regex", pattern="b").version
    assert evaluator("regex", pattern="a").version == evaluator("regex", pattern="a").version


@pytest.mark.parametrize("data", [{}, {"answer": None}])
def test_a_target_without_a_value_fails_without_error(data: dict[str, Any]) -> None:
    record = run("valid_json", data)
    assert (record.score, record.passed, record.error) == (0.0, False, None)
    assert record.reasoning == "answer has no value"


def test_every_target_must_pass_and_failures_are_explained() -> None:
    record = run("length", {"a": "abc", "b": "abcdef"}, fields=["a", "b"], max_length=4)
    assert record.passed is False
    assert record.reasoning == "b has 6 characters, outside <= 4"
    record = run("length", {"a": "abc", "b": "ab"}, fields=["a", "b"], max_length=4)
    assert record.passed is True
    assert record.reasoning == "a has 3 characters, within <= 4; b has 2 characters, within <= 4"


def test_llm_judge_is_not_programmatic() -> None:
    spec = evaluator("llm_judge", judge={"prompt": "x"})
    record = evaluate_programmatic(spec, "n", {"answer": "x"})
    assert record.error and "LLM judge" in record.error
    assert record.score is None and record.passed is None


# --- regex ----------------------------------------------------------------------------------


def test_regex_searches_anywhere() -> None:
    assert passes("regex", "order 123 shipped", pattern=r"\d+") is True
    assert passes("regex", "no digits", pattern=r"\d+") is False
    assert passes("regex", "Hello", pattern=r"^hello") is False  # case-sensitive


def test_regex_reads_lists_as_compact_json_and_numbers_as_text() -> None:
    assert passes("regex", ["a", "b"], pattern=r'^\["a","b"\]$') is True
    assert passes("regex", {"k": 1}, pattern=r'^\{"k":1\}$') is True
    assert passes("regex", 42, pattern=r"^42$") is True


def test_invalid_regex_is_an_error_not_a_failure() -> None:
    record = run("regex", {"answer": "x"}, pattern="(")
    assert record.score is None and record.passed is None
    assert record.error and "not a valid regular expression" in record.error


def test_failed_regex_says_what_did_not_match() -> None:
    record = run("regex", {"answer": "none"}, pattern=r"\d")
    assert record.reasoning == r"answer does not match /\d/"


# --- keyword --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "text", "expected"),
    [
        ("any", "please send a Refund", True),
        ("any", "thanks", False),
        ("all", "refund and return", True),
        ("all", "refund only", False),
        ("none", "all good", True),
        ("none", "I want a REFUND", False),
    ],
)
def test_keyword_modes(match: str, text: str, expected: bool) -> None:
    assert passes("keyword", text, keywords=["refund", "return"], match=match) is expected


def test_keyword_case_sensitive() -> None:
    assert passes("keyword", "REFUND", keywords=["refund"], case_sensitive=True) is False
    assert passes("keyword", "refund", keywords=["refund"], case_sensitive=True) is True


def test_keyword_is_a_plain_substring_check() -> None:
    assert passes("keyword", "refunds", keywords=["refund"]) is True
    assert passes("keyword", "a multi word phrase", keywords=["word phr"]) is True


def test_keyword_reasoning() -> None:
    record = run("keyword", {"answer": "refund"}, keywords=["refund", "return"], match="all")
    assert record.reasoning == 'answer lacks "return"'
    record = run("keyword", {"answer": "refund"}, keywords=["refund"], match="none")
    assert record.reasoning == 'answer contains "refund"'


# --- valid_json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"a": [1, 2]}', True),
        ("[]", True),
        ("3", True),
        (' "text" ', True),
        ("{'a': 1}", False),
        ("{", False),
        ("", False),
        ("NaN", False),
        ({"a": 1}, True),
        ([1, "x"], True),
        (5, True),
        (float("nan"), False),
    ],
)
def test_valid_json(value: Any, expected: bool) -> None:
    assert passes("valid_json", value) is expected


def test_invalid_json_reason_does_not_quote_the_text() -> None:
    record = run("valid_json", {"answer": "{secret"})
    assert record.reasoning is not None
    assert record.reasoning.startswith("answer is not valid JSON (")
    assert "secret" not in record.reasoning


# --- exact_match ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_value", "expected"),
    [
        (" Paris ", "Paris", True),
        ("paris", "Paris", False),
        (3, 3.0, True),
        (3, "3", True),
        ("3.0", 3, True),
        (3, 4, False),
        (True, "True", False),
        (["a"], ["a"], True),
        ("", " ", True),
    ],
)
def test_exact_match(value: Any, expected_value: Any, expected: bool) -> None:
    data = {"answer": value, "gold": expected_value}
    assert run("exact_match", data, reference="gold").passed is expected


def test_exact_match_without_a_reference_value_fails() -> None:
    record = run("exact_match", {"answer": "x"}, reference="gold")
    assert record.passed is False and record.reasoning == "gold has no value"


def test_exact_match_reasoning() -> None:
    assert run("exact_match", {"answer": 1, "gold": 2}, reference="gold").reasoning == (
        "answer differs from gold"
    )


# --- range ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), (5, True), (3.5, True), ("4", True), (0, False), (5.01, False), ("x", False)],
)
def test_range_is_inclusive(value: Any, expected: bool) -> None:
    assert passes("range", value, min=1, max=5) is expected


def test_range_with_one_bound() -> None:
    assert passes("range", 1000, min=0) is True
    assert passes("range", -1, min=0) is False
    assert passes("range", -1000, max=0) is True


@pytest.mark.parametrize("value", [True, "abc", ["1"], float("inf")])
def test_range_rejects_non_numbers_with_a_reason(value: Any) -> None:
    record = run("range", {"answer": value}, min=0, max=10)
    assert record.passed is False and record.reasoning == "answer is not a number"


def test_range_reasoning() -> None:
    assert run("range", {"answer": 7}, min=1, max=5).reasoning == "answer is 7, outside 1..5"


# --- length ---------------------------------------------------------------------------------


def test_length_counts_characters_of_text_and_items_of_lists() -> None:
    assert passes("length", "abcd", min_length=2, max_length=4) is True
    assert passes("length", "abcde", min_length=2, max_length=4) is False
    assert passes("length", "a", min_length=2) is False
    assert passes("length", ["a", "b", "c"], max_length=3) is True
    assert passes("length", ["a", "b", "c", "d"], max_length=3) is False
    assert passes("length", 12345, max_length=5) is True  # the number's text


def test_length_reasoning_names_the_unit() -> None:
    assert run("length", {"answer": ["a"]}, min_length=2).reasoning == (
        "answer has 1 items, outside >= 2"
    )


# --- pii ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "write to jane.doe+support@example.co.uk please",
        "call +1 (555) 123-4567",
        "call 555-123-4567 today",
        "tel. (020) 7946 0958",
        "+44 20 7946 0958",
        "+33 6 12 34 56 78",
        "06 12 34 56 78",
        "07700900123",
        "+15551234567",
        "555.123.4567",
        "card 4111 1111 1111 1111",
        "card 4111-1111-1111-1111",
        "4111111111111111",
        "amex 3782 822463 10005",
    ],
)
def test_pii_found(text: str) -> None:
    assert passes("pii", text) is False


@pytest.mark.parametrize(
    "text",
    [
        "due 2024-01-05",
        "on 2024-01-05 12 items",
        "at 10:30 on 05/01/2024",
        "order 12345",
        "order 1234567890",
        "1234 5678 9012 3456",  # 16 digits that fail the Luhn check
        "4111 1111 1111 1112",
        "price 1,234,567.89",
        "pi is 3.14159265",
        "version 1.2.3",
        "ISBN 978-3-16-148410-0",
        "user@localhost is not an address",
        "plain text without numbers",
    ],
)
def test_pii_not_found(text: str) -> None:
    assert passes("pii", text) is True


def test_pii_reasoning_counts_without_quoting() -> None:
    text = "mail a@example.com or b@example.org, card 4111 1111 1111 1111, call 555-123-4567"
    record = run("pii", {"answer": text})
    assert record.reasoning == (
        "found 2 email addresses, 1 card number and 1 phone number in answer"
    )
    assert "example" not in (record.reasoning or "")


def test_pii_looks_only_for_the_kinds_asked() -> None:
    text = "card 4111 1111 1111 1111"
    assert passes("pii", text, pii=["email", "phone"]) is True
    # The card's digits are not taken for a phone number either.
    assert find_pii(text) == {PiiKind.CARD: 1}
    record = run("pii", {"answer": "clean"}, pii=["email"])
    assert record.reasoning == "no email addresses in answer"
    record = run("pii", {"answer": "clean"})
    assert record.reasoning == "no email addresses, phone numbers or card numbers in answer"


def test_pii_reads_structured_values() -> None:
    assert passes("pii", {"contact": "x@example.com"}) is False
    assert passes("pii", ["555-123-4567"]) is False


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_pii_never_raises(text: str) -> None:
    found = find_pii(text)
    assert all(count > 0 for count in found.values())


ONE_OF_EACH_KIND: list[tuple[str, dict[str, Any]]] = [
    ("regex", {"pattern": "a"}),
    ("keyword", {"keywords": ["a"]}),
    ("valid_json", {}),
    ("exact_match", {"reference": "gold"}),
    ("range", {"min": 0}),
    ("length", {"max_length": 3}),
    ("pii", {}),
]


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.lists(st.text()),
        st.dictionaries(st.text(), st.integers()),
    )
)
def test_programmatic_evaluators_never_raise(value: Any) -> None:
    for kind, settings in ONE_OF_EACH_KIND:
        record = run(kind, {"answer": value, "gold": value}, **settings)
        assert record.passed in (True, False)
        assert record.score in (0.0, 1.0)


# --- human ratings --------------------------------------------------------------------------


def test_human_rating_of_a_number() -> None:
    spec = field("rating", evaluates=["answer"], criterion="helpful")
    record = evaluate_human(spec, "check", 4, "rita")
    assert record is not None
    assert record.kind == EvaluationKind.HUMAN
    assert record.criterion == "helpful"
    assert record.version == "human:rating"
    assert record.evaluator == "rating"
    assert record.fields == ["answer"]
    assert record.actor == "rita"
    assert record.node == "check"
    assert (record.score, record.passed, record.label) == (4.0, None, None)


@pytest.mark.parametrize("type_", ["number", "integer"])
def test_human_numbers_score_without_verdict(type_: str) -> None:
    record = evaluate_human(field(type_, evaluates=["answer"]), "n", 0.5, "p")
    assert record is not None
    assert (record.score, record.passed) == (0.5, None)
    assert record.criterion == "rating"  # the field's name by default


@pytest.mark.parametrize(("value", "score", "label"), [(True, 1.0, "true"), (False, 0.0, "false")])
def test_human_boolean_is_a_verdict(value: bool, score: float, label: str) -> None:
    record = evaluate_human(field("boolean", evaluates=["answer"]), "n", value, "p")
    assert record is not None
    assert (record.score, record.passed, record.label) == (score, value, label)


def test_human_select_is_a_label() -> None:
    spec = field("select", options=["good", "bad"], evaluates=["answer"])
    record = evaluate_human(spec, "n", "good", "p")
    assert record is not None
    assert (record.score, record.passed, record.label) == (None, None, "good")


def test_no_record_without_a_value_or_without_evaluates() -> None:
    assert evaluate_human(field("rating", evaluates=["answer"]), "n", None, "p") is None
    assert evaluate_human(field("rating"), "n", 3, "p") is None


def test_an_unreadable_human_value_is_an_error_record() -> None:
    record = evaluate_human(field("number", evaluates=["answer"]), "n", "lots", "p")
    assert record is not None and record.error and record.score is None


# --- judge verdicts -------------------------------------------------------------------------


def test_rating_defaults() -> None:
    assert (RATING_DEFAULT_MIN, RATING_DEFAULT_MAX) == (1, 5)


@pytest.mark.parametrize(
    ("settings", "raw", "verdict"),
    [
        ({"output": "boolean"}, True, (1.0, True, "true")),
        ({"output": "boolean"}, False, (0.0, False, "false")),
        ({"output": "boolean"}, " Yes ", (1.0, True, "true")),
        ({"output": "boolean"}, "false", (0.0, False, "false")),
        ({"output": "numeric"}, 0.7, (0.7, None, None)),
        ({"output": "numeric", "min": 0, "max": 1, "pass_threshold": 0.5}, 0.5, (0.5, True, None)),
        ({"output": "numeric", "pass_threshold": 0.5}, "0.4", (0.4, False, None)),
        ({"output": "rating"}, 3, (3.0, None, None)),
        ({"output": "rating", "pass_threshold": 4}, 4.0, (4.0, True, None)),
        ({"output": "rating", "min": 0, "max": 10, "pass_threshold": 7}, 6, (6.0, False, None)),
        ({"output": "categorical", "options": ["good", "bad"]}, "bad", (None, None, "bad")),
        (
            {"output": "categorical", "options": ["good", "ok", "bad"], "pass_values": ["good"]},
            "good",
            (None, True, "good"),
        ),
        (
            {"output": "categorical", "options": ["good", "bad"], "pass_values": ["good"]},
            " BAD ",
            (None, False, "bad"),
        ),
    ],
)
def test_judge_verdict(settings: dict[str, Any], raw: Any, verdict: tuple[Any, ...]) -> None:
    assert judge_verdict(judge(**settings), raw) == verdict


@pytest.mark.parametrize(
    ("settings", "raw", "phrase"),
    [
        ({"output": "boolean"}, "maybe", "expected true or false"),
        ({"output": "boolean"}, 1, "expected true or false"),
        ({"output": "numeric"}, "high", "expected a number"),
        ({"output": "numeric"}, True, "expected a number"),
        ({"output": "numeric", "min": 0, "max": 1}, 1.5, "outside 0..1"),
        ({"output": "rating"}, 6, "outside 1..5"),
        ({"output": "rating"}, 0, "outside 1..5"),
        ({"output": "rating"}, 3.5, "expected a whole number 1..5"),
        ({"output": "categorical", "options": ["good", "bad"]}, "meh", 'one of: "good", "bad"'),
        ({"output": "categorical", "options": ["good", "bad"]}, 3, "one of"),
    ],
)
def test_judge_verdict_rejects_answers_that_do_not_fit(
    settings: dict[str, Any], raw: Any, phrase: str
) -> None:
    with pytest.raises(ValueError, match="the judge") as info:
        judge_verdict(judge(**settings), raw)
    assert phrase in str(info.value)


# --- evaluator settings ---------------------------------------------------------------------

FIELDS = {
    "answer": field("long_text", "answer"),
    "gold": field("short_text", "gold", source="predefined"),
}


def settings_problems(kind: str, **settings: Any) -> list[str]:
    return evaluator_problems(evaluator(kind, **settings), FIELDS)


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("regex", {"pattern": r"^\w+$"}),
        ("keyword", {"keywords": ["a", "b"], "match": "all", "case_sensitive": True}),
        ("valid_json", {"mode": "inline"}),
        ("exact_match", {"reference": "gold"}),
        ("range", {"min": 1}),
        ("range", {"min": 1, "max": 1}),
        ("length", {"max_length": 10}),
        ("pii", {}),
        ("pii", {"pii": ["email"]}),
        ("llm_judge", {"judge": {"prompt": "x"}}),
        (
            "llm_judge",
            {
                "judge": {
                    "prompt": "x",
                    "output": "categorical",
                    "options": ["a", "b"],
                    "pass_values": ["a"],
                }
            },
        ),
        ("llm_judge", {"judge": {"prompt": "x", "output": "rating", "pass_threshold": 4}}),
        ("llm_judge", {"judge": {"prompt": "x", "output": "numeric", "min": 0, "max": 1}}),
    ],
)
def test_valid_evaluators_have_no_problems(kind: str, settings: dict[str, Any]) -> None:
    assert settings_problems(kind, **settings) == []


def test_a_dumped_evaluator_has_no_problems() -> None:
    spec = evaluator("range", min=1, max=2)
    dumped = EvaluatorSpec.model_validate(spec.model_dump(mode="json"))
    assert evaluator_problems(dumped, FIELDS) == []


@pytest.mark.parametrize(
    ("kind", "settings", "phrase"),
    [
        ("regex", {}, "regex evaluators need a pattern"),
        ("regex", {"pattern": "("}, "pattern is not a valid regular expression"),
        ("keyword", {}, "keyword evaluators need keywords"),
        ("keyword", {"keywords": []}, "keyword evaluators need keywords"),
        ("keyword", {"keywords": ["a", " "]}, "keywords contains an empty value"),
        ("keyword", {"keywords": ["a", "A"]}, 'keyword "A" is listed more than once'),
        ("exact_match", {}, "exact_match evaluators need reference"),
        ("exact_match", {"reference": "gld"}, "reference 'gld' is not a field"),
        ("exact_match", {"reference": "answer"}, "would always match itself"),
        ("range", {}, "range evaluators need min, max or both"),
        ("range", {"min": 5, "max": 1}, "min 5 is greater than max 1; swap them"),
        ("length", {}, "length evaluators need min_length, max_length or both"),
        ("length", {"min_length": 5, "max_length": 1}, "min_length 5 is greater than max_length"),
        ("pii", {"pii": []}, "pii is empty"),
        ("llm_judge", {}, "llm_judge evaluators need a judge setting"),
        ("regex", {"pattern": "a", "min": 1}, "'min' only applies to range evaluators"),
        ("regex", {"pattern": "a", "keywords": ["x"]}, "'keywords' only applies to keyword"),
        ("regex", {"pattern": "a", "match": "all"}, "'match' only applies to keyword"),
        ("regex", {"pattern": "a", "case_sensitive": True}, "'case_sensitive' only applies to"),
        ("range", {"min": 1, "pattern": "a"}, "'pattern' only applies to regex evaluators"),
        ("range", {"min": 1, "reference": "gold"}, "'reference' only applies to exact_match"),
        ("range", {"min": 1, "max_length": 3}, "'max_length' only applies to length"),
        ("range", {"min": 1, "pii": ["email"]}, "'pii' only applies to pii evaluators"),
        ("pii", {"judge": {"prompt": "x"}}, "'judge' only applies to llm_judge evaluators"),
        ("pii", {"fields": ["answr"]}, "fields lists 'answr', which is not a field"),
        ("pii", {"fields": ["answer", "answer"]}, "'answer' is listed more than once"),
        (
            "llm_judge",
            {"judge": {"prompt": "x"}, "mode": "inline"},
            "an llm_judge cannot be inline",
        ),
        ("llm_judge", {"judge": {"prompt": " "}}, "judge prompt is empty"),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "categorical"}},
            "need at least 2 distinct options, got 0",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "categorical", "options": ["a", "a"]}},
            "at least 2 distinct options, got 1",
        ),
        (
            "llm_judge",
            {
                "judge": {
                    "prompt": "x",
                    "output": "categorical",
                    "options": ["good", "bad"],
                    "pass_values": ["god"],
                }
            },
            "pass_values has 'god', which is not one of the options (did you mean 'good'?)",
        ),
        (
            "llm_judge",
            {
                "judge": {
                    "prompt": "x",
                    "output": "categorical",
                    "options": ["a", "b"],
                    "pass_values": [],
                }
            },
            "judge pass_values is empty",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "numeric", "min": 1, "max": 1}},
            "judge min 1 must be less than max 1",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "rating", "min": 5}},
            "judge min 5 must be less than max 5 (ratings default to 1..5)",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "rating", "max": 4.5}},
            "rating judge max must be a whole number",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "rating", "pass_threshold": 6}},
            "pass_threshold 6 is outside the score range 1..5; no score could pass",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "numeric", "min": 0, "pass_threshold": -1}},
            "outside the score range >= 0; no score could fail",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "boolean", "pass_threshold": 1}},
            "judge setting 'pass_threshold' only applies to numeric and rating output",
        ),
        (
            "llm_judge",
            {"judge": {"prompt": "x", "output": "rating", "options": ["a", "b"]}},
            "judge setting 'options' only applies to categorical output",
        ),
    ],
)
def test_evaluator_problems(kind: str, settings: dict[str, Any], phrase: str) -> None:
    found = settings_problems(kind, **settings)
    assert any(phrase in p for p in found), found


def test_a_field_known_but_invalid_is_not_unknown() -> None:
    # Pipeline validation passes None for a field whose own definition is invalid.
    assert evaluator_problems(evaluator("pii", ["broken"]), {"broken": None}) == []
