"""Evaluators: programmatic checks, human ratings and LLM-judge verdicts on a node's fields.

Every function here is pure and deterministic (standard library and project modules only): the
engine runs programmatic evaluators and records human ratings inside the workflow sandbox, the
LLM judge activity turns a model's answer into a verdict with :func:`judge_verdict`, and
pipeline validation asks :func:`evaluator_problems` what is wrong with an evaluator's settings.

None of the ``evaluate_*`` functions raises on odd data: a value of an unexpected type fails the
criterion with a reason, and an evaluator that cannot run at all (an invalid pattern) returns a
record with ``error`` set. A raise inside the workflow would retry its task forever.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from workflows.forms import DEFAULT_RATING_MAX, DEFAULT_RATING_MIN
from workflows.graph import (
    EvaluatorKind,
    EvaluatorMode,
    EvaluatorSpec,
    FieldSpec,
    FieldType,
    JudgeOutput,
    JudgeSpec,
    PiiKind,
)
from workflows.messages import EvaluationKind, EvaluationRecord
from workflows.patterns import PatternError, compile_pattern

__all__ = [
    "HUMAN_RATING_TYPES",
    "RATING_DEFAULT_MAX",
    "RATING_DEFAULT_MIN",
    "evaluate_human",
    "evaluate_programmatic",
    "evaluator_problems",
    "find_pii",
    "judge_problems",
    "judge_range",
    "judge_verdict",
]

RATING_DEFAULT_MIN = DEFAULT_RATING_MIN
"""Lowest score of a ``rating`` judge without ``min`` (as for rating fields)."""
RATING_DEFAULT_MAX = DEFAULT_RATING_MAX
"""Highest score of a ``rating`` judge without ``max`` (as for rating fields)."""

HUMAN_RATING_TYPES = frozenset(
    {FieldType.NUMBER, FieldType.INTEGER, FieldType.RATING, FieldType.BOOLEAN, FieldType.SELECT}
)
"""Field types that may carry ``evaluates`` (a person's rating of other fields)."""

_PATTERN_SHOWN = 60
"""Longer patterns are shortened in reasoning texts."""

_Check = Callable[[str, Any, Mapping[str, Any]], tuple[bool, str]]
"""One target's check: ``(field name, value, task data) -> (passed, reason)``."""


# --------------------------------------------------------------------------- programmatic


def evaluate_programmatic(
    spec: EvaluatorSpec, node: str, data: Mapping[str, Any], *, mode: str | None = None
) -> EvaluationRecord:
    """Run one programmatic evaluator over the task data.

    Every target field is checked on its own; the criterion passes when all targets pass. A
    target with no value (missing from ``data`` or None) fails with "<field> has no value".

    Args:
        spec: The evaluator (any kind but ``llm_judge``).
        node: The node whose submission is evaluated.
        data: The task data: seed data and every field value so far, by field name.
        mode: Recorded instead of ``spec.mode`` when given (e.g. for a draft check).

    Returns:
        A ``programmatic`` record with score 1.0 / 0.0 and a short reasoning that never quotes
        the checked text; ``at`` and ``seq`` are left for the caller. An evaluator that cannot
        run (an invalid pattern, an ``llm_judge``) gives a record with ``error`` and no score.
    """
    record = EvaluationRecord(
        criterion=spec.name,
        version=spec.version,
        kind=EvaluationKind.PROGRAMMATIC,
        evaluator=spec.kind.value,
        mode=mode if mode is not None else spec.mode.value,
        node=node,
        fields=list(spec.fields),
    )
    try:
        check = _checker(spec)
    except _CannotRun as exc:
        return record.model_copy(update={"error": str(exc)})
    results: list[tuple[bool, str]] = []
    for name in spec.fields:
        value = data.get(name)
        if value is None:
            results.append((False, f"{name} has no value"))
            continue
        try:
            results.append(check(name, value, data))
        except Exception as exc:  # a raise in the workflow would retry its task forever
            return record.model_copy(
                update={"error": f"{spec.kind.value} check of {name} failed: {type(exc).__name__}"}
            )
    passed = all(ok for ok, _ in results)
    # On failure, say what failed; on success, one line per target is short enough.
    reasons = [reason for ok, reason in results if ok == passed]
    return record.model_copy(
        update={
            "score": 1.0 if passed else 0.0,
            "passed": passed,
            "reasoning": "; ".join(reasons),
        }
    )


class _CannotRun(Exception):
    pass


def _checker(spec: EvaluatorSpec) -> _Check:
    """The per-target check of ``spec``: ``(field, value, data) -> (passed, reason)``."""
    match spec.kind:
        case EvaluatorKind.REGEX:
            return _regex_check(spec)
        case EvaluatorKind.KEYWORD:
            return _keyword_check(spec)
        case EvaluatorKind.VALID_JSON:
            return _json_check
        case EvaluatorKind.EXACT_MATCH:
            return _exact_check(spec)
        case EvaluatorKind.RANGE:
            return _range_check(spec)
        case EvaluatorKind.LENGTH:
            return _length_check(spec)
        case EvaluatorKind.PII:
            return _pii_check(spec)
    raise _CannotRun(f"{spec.kind.value} evaluators are not programmatic; an LLM judge runs them")


def _text(value: Any) -> str:
    """The text a regex, keyword or PII check reads: lists and dicts as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except ValueError:  # a circular structure; cannot come from JSON task data
            return str(value)
    return str(value)


def _shown(pattern: str) -> str:
    if len(pattern) > _PATTERN_SHOWN:
        pattern = pattern[: _PATTERN_SHOWN - 1] + "…"
    return f"/{pattern}/"


def _regex_check(spec: EvaluatorSpec) -> _Check:
    pattern = spec.pattern or ""
    try:
        compiled = compile_pattern(pattern)  # linear time: no draft can stall the workflow
    except PatternError as exc:
        raise _CannotRun(f"pattern {_shown(pattern)} {exc}") from exc

    def check(name: str, value: Any, data: Mapping[str, Any]) -> tuple[bool, str]:
        if compiled.search(_text(value)):
            return True, f"{name} matches {_shown(pattern)}"
        return False, f"{name} does not match {_shown(pattern)}"

    return check


def _quoted(words: Iterable[str]) -> str:
    return ", ".join(json.dumps(w, ensure_ascii=False) for w in words)


def _keyword_check(spec: EvaluatorSpec) -> _Check:
    keywords = list(spec.keywords or [])

    def fold(text: str) -> str:
        return text if spec.case_sensitive else text.casefold()

    def check(name: str, value: Any, data: Mapping[str, Any]) -> tuple[bool, str]:
        text = fold(_text(value))
        found = [k for k in keywords if fold(k) in text]
        missing = [k for k in keywords if k not in found]
        if spec.match == "all":
            if missing:
                return False, f"{name} lacks {_quoted(missing)}"
            return True, f"{name} contains all of {_quoted(keywords)}"
        if spec.match == "none":
            if found:
                return False, f"{name} contains {_quoted(found)}"
            return True, f"{name} contains none of {_quoted(keywords)}"
        if found:
            return True, f"{name} contains {_quoted(found)}"
        return False, f"{name} contains none of {_quoted(keywords)}"

    return check


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def _json_check(name: str, value: Any, data: Mapping[str, Any]) -> tuple[bool, str]:
    if not isinstance(value, str):
        # Structured values (an object, a list, a number) are JSON already.
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return False, f"{name} is not a JSON value ({type(value).__name__})"
        return True, f"{name} is valid JSON"
    try:
        json.loads(value, parse_constant=_reject_constant)
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return False, f"{name} is not valid JSON ({detail})"
    return True, f"{name} is valid JSON"


def _number(value: Any) -> float | None:
    """A finite number from a number or numeric text (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _equal(left: Any, right: Any) -> bool:
    if _is_number(left) or _is_number(right):
        a, b = _number(left), _number(right)
        return a is not None and b is not None and a == b
    if isinstance(left, str) and isinstance(right, str):
        return left.strip() == right.strip()
    return bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _exact_check(spec: EvaluatorSpec) -> _Check:
    reference = spec.reference or ""

    def check(name: str, value: Any, data: Mapping[str, Any]) -> tuple[bool, str]:
        expected = data.get(reference)
        if expected is None:
            return False, f"{reference} has no value"
        if _equal(value, expected):
            return True, f"{name} equals {reference}"
        return False, f"{name} differs from {reference}"

    return check


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{_fmt(low)}..{_fmt(high)}"
    if low is not None:
        return f">= {_fmt(low)}"
    if high is not None:
        return f"<= {_fmt(high)}"
    return "any"


def _within(number: float, low: float | None, high: float | None) -> bool:
    return (low is None or number >= low) and (high is None or number <= high)


def _range_check(spec: EvaluatorSpec) -> _Check:
    def check(name: str, value: Any, data: Mapping[str, Any]) -> tuple[bool, str]:
        number = _number(value)
        if number is None:
            return False, f"{name} is not a number"
        where = "within" if _within(number, spec.min, spec.max) else "outside"
        return where == "within", f"{name} is {_fmt(number)}, {where} {_bounds(spec.min, spec.max)}"

    return check


def _length_check(spec: EvaluatorSpec) -> _Check:
    def check(name: str, value: Any, data: Mapping[str, Any]) -> tuple[bool, str]:
        if isinstance(value, list | tuple | dict):
            size, unit = len(value), "items"
        else:
            size, unit = len(value if isinstance(value, str) else str(value)), "characters"
        low = float(spec.min_length) if spec.min_length is not None else None
        high = float(spec.max_length) if spec.max_length is not None else None
        where = "within" if _within(size, low, high) else "outside"
        return where == "within", f"{name} has {size} {unit}, {where} {_bounds(low, high)}"

    return check


# --------------------------------------------------------------------------- PII

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w-])"
)
_CARD = re.compile(r"(?<!\w)(?:\d[ -]?){12,18}\d(?!\w)")
_DATE = re.compile(r"(?<!\w)(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})(?!\w)")
_TIME = re.compile(r"(?<!\w)\d{1,2}:\d{2}(?::\d{2})?(?!\w)")
# International (+country code, then groups of 1-4 digits) or national (an optional area code
# in parentheses, then groups of 2-4 digits) numbers; digit counts are checked afterwards.
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[.-])"  # not part of a longer number (an ISBN, a version)
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}|(?:\(\d{1,4}\)[ .-]?)?\d{2,4})"
    r"(?:[ .-]?\d{2,4}){1,5}"
    r"(?!\w)(?![.-]\d)"
)
_PHONE_DIGITS = (7, 15)
"""E.164 numbers have at most 15 digits; fewer than 7 is a plain number."""

_PII_NOUNS = {
    PiiKind.EMAIL: ("email address", "email addresses"),
    PiiKind.PHONE: ("phone number", "phone numbers"),
    PiiKind.CARD: ("card number", "card numbers"),
}


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not _PHONE_DIGITS[0] <= len(digits) <= _PHONE_DIGITS[1]:
        return False
    if candidate.startswith("+") or re.search(r"[ .()-]", candidate):
        return True
    # An unbroken run of digits is usually an id or an amount; national numbers written
    # without separators start with the trunk prefix 0 (e.g. 07700900123).
    return candidate.startswith("0") and 10 <= len(digits) <= 11


def find_pii(text: str, kinds: Iterable[PiiKind] = tuple(PiiKind)) -> dict[PiiKind, int]:
    """Count email addresses, phone numbers and card numbers in ``text``.

    Card numbers are 13-19 digits (spaces or dashes allowed between them) that pass the Luhn
    check. Phone numbers have 7-15 digits and either a leading ``+``, separators between digit
    groups (``555-123-4567``, ``(020) 7946 0958``) or a leading ``0``; short numbers, ISO and
    common national dates, times and unbroken runs of digits (order numbers) are not phones.

    Returns:
        How many of each asked-for kind were found (kinds not found are left out).
    """
    wanted = set(kinds)
    found: dict[PiiKind, int] = {}
    # Each kind found is blanked out so its digits are not counted again as another kind.
    for match in list(_EMAIL.finditer(text)):
        text = _blank(text, *match.span())
        if PiiKind.EMAIL in wanted:
            found[PiiKind.EMAIL] = found.get(PiiKind.EMAIL, 0) + 1
    for match in list(_CARD.finditer(text)):
        if _luhn(re.sub(r"\D", "", match.group())):
            text = _blank(text, *match.span())
            if PiiKind.CARD in wanted:
                found[PiiKind.CARD] = found.get(PiiKind.CARD, 0) + 1
    if PiiKind.PHONE in wanted:
        for pattern in (_DATE, _TIME):
            for match in list(pattern.finditer(text)):
                text = _blank(text, *match.span())
        phones = sum(1 for m in _PHONE.finditer(text) if _is_phone(m.group()))
        if phones:
            found[PiiKind.PHONE] = phones
    return found


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _pii_check(spec: EvaluatorSpec) -> _Check:
    kinds = [k for k in PiiKind if k in spec.pii]

    def check(name: str, value: Any, data: Mapping[str, Any]) -> tuple[bool, str]:
        found = find_pii(_text(value), kinds)
        if not found:
            nouns = [_PII_NOUNS[k][1] for k in kinds]
            if not nouns:
                return True, f"nothing to look for in {name}"
            listed = f"{', '.join(nouns[:-1])} or {nouns[-1]}" if len(nouns) > 1 else nouns[0]
            return True, f"no {listed} in {name}"
        counts = [f"{n} {_PII_NOUNS[k][0 if n == 1 else 1]}" for k, n in found.items()]
        return False, f"found {_and(counts)} in {name}"

    return check


# --------------------------------------------------------------------------- human ratings


def evaluate_human(field: FieldSpec, node: str, value: Any, actor: str) -> EvaluationRecord | None:
    """The evaluation record of a person's rating: an input field with ``evaluates``.

    Numbers, integers and ratings become the score; a boolean scores 1 / 0 with the label
    ``true`` / ``false`` and is also the verdict; a select answer is the label. Other ratings
    give no verdict (``passed`` None): thresholds belong to judges.

    Args:
        field: The rating field.
        node: The node it was submitted on.
        value: The submitted value (already validated by the form).
        actor: The contributor who rated.

    Returns:
        The record (``at`` and ``seq`` left for the caller), or None when the field rates
        nothing or was left empty. A value that cannot be read gives a record with ``error``.
    """
    if not field.evaluates or value is None:
        return None
    record = EvaluationRecord(
        criterion=field.criterion or field.name,
        version=f"human:{field.name}",
        kind=EvaluationKind.HUMAN,
        evaluator=field.type.value,
        node=node,
        fields=list(field.evaluates),
        actor=actor,
    )
    match field.type:
        case FieldType.NUMBER | FieldType.INTEGER | FieldType.RATING:
            score = _number(value)
            if score is not None:
                return record.model_copy(update={"score": score})
        case FieldType.BOOLEAN:
            if isinstance(value, bool):
                return record.model_copy(
                    update={"score": float(value), "passed": value, "label": str(value).lower()}
                )
        case FieldType.SELECT:
            if isinstance(value, str):
                return record.model_copy(update={"label": value})
    return record.model_copy(
        update={"error": f"cannot read a {field.type.value} rating from {type(value).__name__}"}
    )


# --------------------------------------------------------------------------- judges

_TRUE = frozenset({"true", "yes", "pass"})
_FALSE = frozenset({"false", "no", "fail"})


def judge_range(judge: JudgeSpec) -> tuple[float | None, float | None]:
    """The score range of a numeric or rating judge (ratings default to 1..5)."""
    if judge.output == JudgeOutput.RATING:
        low = RATING_DEFAULT_MIN if judge.min is None else judge.min
        high = RATING_DEFAULT_MAX if judge.max is None else judge.max
        return float(low), float(high)
    return judge.min, judge.max


def judge_verdict(judge: JudgeSpec, raw: Any) -> tuple[float | None, bool | None, str | None]:
    """Turn a judge's parsed answer into ``(score, passed, label)``.

    * numeric / rating: ``raw`` is the score (a rating a whole number, by default 1..5);
      passed is ``score >= pass_threshold`` when a threshold is set, else None.
    * boolean: ``raw`` is true or false (also the words true/false, yes/no, pass/fail);
      score 1.0 / 0.0, passed the value, label ``"true"`` / ``"false"``.
    * categorical: ``raw`` is one of ``options`` (matched ignoring case and surrounding space);
      passed is whether it is in ``pass_values`` when given, else None; no score.

    Raises:
        ValueError: ``raw`` does not fit the judge's output (not a number, out of range, not
            one of the options…); the message says what was expected.
    """
    match judge.output:
        case JudgeOutput.NUMERIC | JudgeOutput.RATING:
            score = _number(raw)
            low, high = judge_range(judge)
            expected = f"a number{'' if low is None and high is None else ' ' + _bounds(low, high)}"
            if judge.output == JudgeOutput.RATING:
                expected = f"a whole number {_bounds(low, high)}"
            if score is None:
                raise ValueError(f"the judge answered {_answer(raw)}; expected {expected}")
            if judge.output == JudgeOutput.RATING and not score.is_integer():
                raise ValueError(f"the judge answered {_fmt(score)}; expected {expected}")
            if not _within(score, low, high):
                raise ValueError(
                    f"the judge's score {_fmt(score)} is outside {_bounds(low, high)}; "
                    f"expected {expected}"
                )
            passed = None if judge.pass_threshold is None else score >= judge.pass_threshold
            return score, passed, None
        case JudgeOutput.BOOLEAN:
            value: bool | None = raw if isinstance(raw, bool) else None
            if isinstance(raw, str):
                word = raw.strip().casefold()
                value = True if word in _TRUE else False if word in _FALSE else None
            if value is None:
                raise ValueError(f"the judge answered {_answer(raw)}; expected true or false")
            return float(value), value, str(value).lower()
        case JudgeOutput.CATEGORICAL:
            label = _label(judge, raw)
            passed = None if judge.pass_values is None else label in judge.pass_values
            return None, passed, label
    raise ValueError(f"unknown judge output {judge.output!r}")  # pragma: no cover


def _answer(raw: Any) -> str:
    text = json.dumps(raw, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


def _label(judge: JudgeSpec, raw: Any) -> str:
    options = judge.options or []
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"the judge answered {_answer(raw)}; expected one of: {_quoted(options)}")
    if raw in options:
        return raw
    if not options:  # an invalid judge without options; validation reports it
        return raw.strip()
    folded = raw.strip().casefold()
    matches = [o for o in options if o.strip().casefold() == folded]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(f"the judge answered {_answer(raw)}; expected one of: {_quoted(options)}")


# --------------------------------------------------------------------------- settings

# Settings of an evaluator and the kinds they belong to.
_KIND_SETTINGS: dict[str, EvaluatorKind] = {
    "pattern": EvaluatorKind.REGEX,
    "keywords": EvaluatorKind.KEYWORD,
    "match": EvaluatorKind.KEYWORD,
    "case_sensitive": EvaluatorKind.KEYWORD,
    "reference": EvaluatorKind.EXACT_MATCH,
    "min": EvaluatorKind.RANGE,
    "max": EvaluatorKind.RANGE,
    "min_length": EvaluatorKind.LENGTH,
    "max_length": EvaluatorKind.LENGTH,
    "pii": EvaluatorKind.PII,
    "judge": EvaluatorKind.LLM_JUDGE,
}

# Judge settings and the outputs they belong to.
_OUTPUT_SETTINGS: dict[str, frozenset[JudgeOutput]] = {
    "min": frozenset({JudgeOutput.NUMERIC, JudgeOutput.RATING}),
    "max": frozenset({JudgeOutput.NUMERIC, JudgeOutput.RATING}),
    "pass_threshold": frozenset({JudgeOutput.NUMERIC, JudgeOutput.RATING}),
    "options": frozenset({JudgeOutput.CATEGORICAL}),
    "pass_values": frozenset({JudgeOutput.CATEGORICAL}),
}


def evaluator_problems(spec: EvaluatorSpec, fields: Mapping[str, FieldSpec | None]) -> list[str]:
    """Every problem with one evaluator's settings, each a sentence that names the fix.

    Checks the settings of its kind (given, coherent, none of another kind's), the judge's
    output settings, that the targets and ``reference`` are fields, and that an ``inline``
    evaluator is instant (no ``llm_judge``). Whether the targets are filled before the node
    runs is a graph question, left to pipeline validation.

    Args:
        spec: The evaluator.
        fields: Every field of the pipeline by name. A name mapped to None is a field whose
            own definition is invalid: it exists, and its problems are reported elsewhere.
    """
    problems: list[str] = []
    kind = spec.kind
    defaults = EvaluatorSpec.model_fields
    for key, owner in _KIND_SETTINGS.items():
        if kind == owner:
            continue
        value = getattr(spec, key)
        if value != defaults[key].get_default(call_default_factory=True):
            problems.append(
                f"setting '{key}' only applies to {owner.value} evaluators (this is {kind.value}); "
                "remove it"
            )
    match kind:
        case EvaluatorKind.REGEX:
            problems += _regex_problems(spec)
        case EvaluatorKind.KEYWORD:
            problems += _keyword_problems(spec)
        case EvaluatorKind.EXACT_MATCH:
            problems += _reference_problems(spec, fields)
        case EvaluatorKind.RANGE:
            if spec.min is None and spec.max is None:
                problems.append("range evaluators need min, max or both (the accepted numbers)")
            elif spec.min is not None and spec.max is not None and spec.min > spec.max:
                problems.append(
                    f"min {_fmt(spec.min)} is greater than max {_fmt(spec.max)}; swap them"
                )
        case EvaluatorKind.LENGTH:
            if spec.min_length is None and spec.max_length is None:
                problems.append(
                    "length evaluators need min_length, max_length or both "
                    "(characters of text, items of a list)"
                )
            elif (
                spec.min_length is not None
                and spec.max_length is not None
                and spec.min_length > spec.max_length
            ):
                problems.append(
                    f"min_length {spec.min_length} is greater than max_length "
                    f"{spec.max_length}; swap them"
                )
        case EvaluatorKind.PII:
            if not spec.pii:
                problems.append(
                    "pii is empty; list what to look for (email, phone, card) or leave it out "
                    "for all three"
                )
        case EvaluatorKind.LLM_JUDGE:
            if spec.judge is None:
                problems.append(
                    "llm_judge evaluators need a judge setting with a prompt, e.g. "
                    "judge: {model: conveyor/offline, prompt: '...', output: boolean}"
                )
            else:
                problems += judge_problems(spec.judge)
            if spec.mode == EvaluatorMode.INLINE:
                problems.append(
                    "an llm_judge cannot be inline: inline evaluators run on every draft and "
                    "must be instant; use mode: hidden (the judge runs after submission)"
                )
    for name in spec.fields:
        if name not in fields:
            problems.append(
                f"fields lists '{name}', which is not a field of this pipeline"
                f"{_suggest(name, fields)}; list the fields to evaluate under fields"
            )
    repeated = [n for i, n in enumerate(spec.fields) if n in spec.fields[:i]]
    for name in dict.fromkeys(repeated):
        problems.append(f"field '{name}' is listed more than once under fields; list it once")
    return problems


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _regex_problems(spec: EvaluatorSpec) -> list[str]:
    if not spec.pattern:
        return ["regex evaluators need a pattern (a Python regular expression to search for)"]
    try:
        compile_pattern(spec.pattern)
    except PatternError as exc:
        return [f"pattern {exc}"]
    return []


def _keyword_problems(spec: EvaluatorSpec) -> list[str]:
    keywords = spec.keywords or []
    if not keywords:
        return ["keyword evaluators need keywords (a list of words or phrases to look for)"]
    problems: list[str] = []
    if any(not k.strip() for k in keywords):
        problems.append("keywords contains an empty value; remove it")
    if not spec.case_sensitive:
        folded = [k.casefold() for k in keywords]
        repeated = [k for i, k in enumerate(keywords) if folded[i] in folded[:i]]
    else:
        repeated = [k for i, k in enumerate(keywords) if k in keywords[:i]]
    for word in dict.fromkeys(repeated):
        problems.append(f"keyword {json.dumps(word)} is listed more than once; list it once")
    return problems


def _reference_problems(spec: EvaluatorSpec, fields: Mapping[str, FieldSpec | None]) -> list[str]:
    reference = spec.reference
    if not reference:
        return ["exact_match evaluators need reference (the field holding the expected value)"]
    if reference not in fields:
        return [
            f"reference '{reference}' is not a field of this pipeline"
            f"{_suggest(reference, fields)}; name the field holding the expected value"
        ]
    if reference in spec.fields:
        return [
            f"reference '{reference}' is also a target, so it would always match itself; "
            "remove it from fields"
        ]
    return []


def judge_problems(judge: JudgeSpec) -> list[str]:
    """Every problem with a judge's output settings (prompt, range, options, threshold)."""
    problems: list[str] = []
    output = judge.output
    if not judge.prompt.strip():
        problems.append("judge prompt is empty; write the prompt template")
    for key, outputs in _OUTPUT_SETTINGS.items():
        if output not in outputs and getattr(judge, key) is not None:
            listed = " and ".join(o.value for o in JudgeOutput if o in outputs)
            problems.append(
                f"judge setting '{key}' only applies to {listed} output (this is "
                f"{output.value}); remove it"
            )
    if output == JudgeOutput.CATEGORICAL:
        options = judge.options or []
        if len(set(options)) < 2:
            problems.append(
                f"categorical judges need at least 2 distinct options, got {len(set(options))}; "
                "list the labels under judge options"
            )
        if any(not o.strip() for o in options):
            problems.append("judge options contains an empty value; remove it")
        repeated = [o for i, o in enumerate(options) if o in options[:i]]
        for option in dict.fromkeys(repeated):
            problems.append(f"judge option '{option}' is listed more than once; list it once")
        if judge.pass_values is not None:
            if not judge.pass_values:
                problems.append(
                    "judge pass_values is empty; list the labels that pass, or remove it for "
                    "no verdict"
                )
            for value in judge.pass_values:
                if value not in options:
                    problems.append(
                        f"judge pass_values has '{value}', which is not one of the options"
                        f"{_suggest(value, options)}; use one of: "
                        f"{', '.join(dict.fromkeys(options)) or 'none'}"
                    )
    if output in (JudgeOutput.NUMERIC, JudgeOutput.RATING):
        if output == JudgeOutput.RATING:
            for key in ("min", "max"):
                bound = getattr(judge, key)
                if bound is not None and not float(bound).is_integer():
                    problems.append(f"rating judge {key} must be a whole number, got {bound:g}")
        low, high = judge_range(judge)
        if low is not None and high is not None and low >= high:
            problems.append(
                f"judge min {_fmt(low)} must be less than max {_fmt(high)}"
                + (" (ratings default to 1..5)" if output == JudgeOutput.RATING else "")
            )
        elif judge.pass_threshold is not None and not _within(judge.pass_threshold, low, high):
            problems.append(
                f"judge pass_threshold {_fmt(judge.pass_threshold)} is outside the score range "
                f"{_bounds(low, high)}; no score could "
                + ("pass" if high is not None and judge.pass_threshold > high else "fail")
            )
    return problems
