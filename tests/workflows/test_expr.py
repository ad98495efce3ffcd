"""The expression language: evaluation semantics, references and rejection of unsafe input."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows import expr
from workflows.expr import Expr, ExprError, evaluate, parse, references, truthy


def test_parse_returns_a_cached_hashable_expr() -> None:
    first = parse('label == "spam"')
    assert isinstance(first, Expr)
    assert parse('label == "spam"') is first
    assert first == Expr(source='label == "spam"', tree=first.tree, names=first.names)
    assert {first: 1}[parse('label == "spam"')] == 1
    assert str(first) == 'label == "spam"'


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ('label == "spam"', {"label": "spam"}, True),
        ('label != "spam"', {"label": "spam"}, False),
        ("score < 0.5", {"score": 0.2}, True),
        ("score <= 0.5", {"score": 0.5}, True),
        ("score > 3", {"score": 3}, False),
        ("score >= 3", {"score": 3}, True),
        ("1 < score < 3", {"score": 2}, True),
        ("1 < score < 3", {"score": 3}, False),
        ('label in ["spam", "ham"]', {"label": "ham"}, True),
        ('label not in ("spam", "ham")', {"label": "eggs"}, True),
        ('"urgent" in tags', {"tags": ["urgent", "bug"]}, True),
        ('"err" in message', {"message": "an error"}, True),
        ("not done", {"done": False}, True),
        ("-score", {"score": 2}, -2),
        ("-score", {"score": "x"}, None),
        ("[1, label]", {"label": "a"}, [1, "a"]),
        ("True and None", {}, None),
        ('label == "a" and score > 1 or urgent', {"urgent": True}, True),
    ],
)
def test_evaluate(text: str, data: dict[str, Any], expected: Any) -> None:
    assert evaluate(text, data) == expected


def test_missing_names_are_none() -> None:
    assert evaluate("notes", {}) is None
    assert evaluate("notes == None", {}) is True
    assert evaluate("notes != None", {"notes": "x"}) is True
    assert evaluate("label.label", {}) is None


def test_qualified_references_read_dotted_keys_or_nested_mappings() -> None:
    assert evaluate('label.label == "spam"', {"label.label": "spam"}) is True
    assert evaluate('label.label == "spam"', {"label": {"label": "spam"}}) is True
    # A plain value under the node name is not a mapping of fields.
    assert evaluate("label.label", {"label": "spam"}) is None


@pytest.mark.parametrize(
    "text",
    ["score < 3", "score >= 3", '"a" < 1', "1 in missing", "missing not in 3", "[1] < ['a']"],
)
def test_incompatible_comparisons_are_false(text: str) -> None:
    assert evaluate(text, {"score": None}) is False


def test_and_or_short_circuit_with_python_truthiness() -> None:
    # The right operand would be False if evaluated; the left decides.
    assert evaluate('label or "fallback"', {"label": "x"}) == "x"
    assert evaluate('label or "fallback"', {"label": ""}) == "fallback"
    assert evaluate("label and len(label)", {"label": ""}) == ""
    assert evaluate("label and len(label)", {"label": "abc"}) == 3
    assert evaluate("a and b and c", {"a": 1, "b": 0, "c": 2}) == 0
    assert evaluate("a or b or c", {"a": 0, "b": None, "c": 0}) == 0


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("len(notes)", {"notes": "abcd"}, 4),
        ("len(tags)", {"tags": ["a", "b"]}, 2),
        ("len(notes)", {}, None),
        ("len(score)", {"score": 3}, None),
        ("lower(label)", {"label": "SPAM"}, "spam"),
        ("upper(label)", {"label": "spam"}, "SPAM"),
        ("lower(label)", {"label": 3}, None),
        ('contains(notes, "err")', {"notes": "an error"}, True),
        ('contains(tags, "b")', {"tags": ["a", "b"]}, True),
        ('contains(meta, "k")', {"meta": {"k": 1}}, True),
        ("contains(meta, tags)", {"meta": {"k": 1}, "tags": ["k"]}, False),
        ('contains(notes, "x")', {}, False),
        ('startswith(url, "https://")', {"url": "https://x"}, True),
        ('endswith(file, ".py")', {"file": "a.py"}, True),
        ('startswith(url, "h")', {"url": 5}, False),
        ("abs(delta)", {"delta": -2.5}, 2.5),
        ("abs(delta)", {"delta": True}, None),
        ("min(a, b)", {"a": 3, "b": 1}, 1),
        ("max(scores)", {"scores": [3, 9, 4]}, 9),
        ("min(scores)", {"scores": []}, None),
        ("max(a, b)", {"a": 3, "b": "x"}, None),
        ("max(a, b)", {"a": "a", "b": "b"}, "b"),
        ("round(x)", {"x": 2.6}, 3),
        ("round(x, 1)", {"x": 2.66}, 2.7),
        ("round(x)", {"x": float("nan")}, None),
        ("round(x, 1.5)", {"x": 2.0}, None),
        ("is_empty(notes)", {}, True),
        ("is_empty(notes)", {"notes": "  "}, True),
        ("is_empty(tags)", {"tags": []}, True),
        ("is_empty(notes)", {"notes": "x"}, False),
        ("is_empty(score)", {"score": 0}, False),
    ],
)
def test_functions(text: str, data: dict[str, Any], expected: Any) -> None:
    assert evaluate(text, data) == expected


def test_references() -> None:
    assert references('label == "spam" and len(notes) > 3 or review.passed') == {
        "label",
        "notes",
        "review.passed",
    }
    assert references(parse("1 < 2")) == set()
    # Function names are not field references.
    assert references("len(x)") == {"x"}


def test_truthy() -> None:
    assert truthy("score > 2", {"score": 3}) is True
    assert truthy("notes", {"notes": ""}) is False
    assert truthy("tags", {"tags": ["a"]}) is True


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("__import__('os')", "a call to '__import__'"),
        ("().__class__", "attribute access .__class__"),
        ("x.__class__", "names starting with _"),
        ("__builtins__", "names starting with _"),
        ("a.b.c", "attribute access .c"),
        ("lambda: 1", "a lambda"),
        ("[x for x in tags]", "a comprehension"),
        ("{x for x in tags}", "a comprehension"),
        ("any(x for x in tags)", "a call to 'any'"),
        ('f"{label}"', "an f-string"),
        ("tags[0]", "indexing"),
        ("tags.__getitem__(0)", "a call to 'tags.__getitem__'"),
        ("label.upper()", "a call to 'label.upper'"),
        ("open('/etc/passwd')", "a call to 'open'"),
        ("eval('1')", "a call to 'eval'"),
        ("score + 1", "arithmetic"),
        ("2 ** 1000000", "arithmetic"),
        ("a if b else c", "a conditional expression"),
        ("{'a': 1}", "a dict literal"),
        ("(x := 1)", "assignment"),
        ("label is None", "'is' / 'is not'"),
        ("~score", "unary operator"),
        ("b'bytes'", "the literal b'bytes'"),
        ("...", "the literal Ellipsis"),
        ("len(*tags)", "a starred argument"),
        ("round(x, ndigits=2)", "keyword arguments"),
    ],
)
def test_unsafe_or_unsupported_constructs_are_rejected(text: str, phrase: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    message = str(info.value)
    assert phrase in message
    assert "allowed are" in message


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("label ==", "not a valid expression"),
        ("x = 1", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("", "empty"),
        ("   ", "empty"),
        ("len()", "len() takes 1 argument(s), got 0"),
        ("contains(a)", "contains() takes 2 argument(s), got 1"),
        ("round(a, 1, 2)", "round() takes 1 to 2 argument(s), got 3"),
        ("min()", "min() takes 1 or more argument(s), got 0"),
        ("x == 1" + " or x == 1" * 400, "characters long"),
        (" or ".join(["a"] * 300), "too complex"),
    ],
)
def test_invalid_expressions_name_the_problem(text: str, phrase: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert phrase in str(info.value)


def test_leading_whitespace_from_yaml_blocks_is_accepted() -> None:
    assert truthy('\n  label == "spam"\n', {"label": "spam"})


def test_expr_error_is_a_value_error() -> None:
    assert issubclass(ExprError, ValueError)


def test_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(expr.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


# --- property: evaluation is total over any JSON-like data ---------------------------------

EXPRESSIONS = [
    'label == "spam" and score < 0.5',
    "score >= 3 or not done",
    "1 <= rating <= 5",
    '"urgent" in tags or label not in ["a", "b"]',
    "len(notes) > 10 and lower(label) == upper(label)",
    'contains(tags, "x") or startswith(notes, "a") or endswith(notes, "z")',
    "abs(score) > min(score, rating) and max(tags) == round(score, 2)",
    "is_empty(notes) or -score < rating",
    "review.passed == True and review.score != None",
    "min(tags) < max(tags) or round(rating) in tags",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(
    ["label", "score", "done", "rating", "tags", "notes", "review", "review.passed", "x"]
)


@settings(max_examples=300, deadline=None)
@given(text=st.sampled_from(EXPRESSIONS), data=st.dictionaries(names, json_values, max_size=8))
def test_evaluate_never_raises_on_any_data(text: str, data: dict[str, Any]) -> None:
    evaluate(text, data)
    assert truthy(text, data) in (True, False)


@settings(max_examples=100, deadline=None)
@given(data=st.dictionaries(names, json_values, max_size=8))
def test_evaluation_is_deterministic(data: dict[str, Any]) -> None:
    for text in EXPRESSIONS:
        assert repr(evaluate(text, data)) == repr(evaluate(text, data))
