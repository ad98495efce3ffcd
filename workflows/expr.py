"""Conveyor's expression language: safe conditions over task data.

Gate conditions (``label == "spam" and score < 0.5``) and derived columns are written in a
small subset of Python expression syntax. Text is parsed with :func:`ast.parse` and every node
is checked against a whitelist; nothing is ever compiled or passed to ``eval``. Evaluation walks
the checked tree and is total over data: a missing field is ``None``, a comparison between
incompatible values is ``False`` and a function given a value of the wrong type returns
``None``, so a condition over incomplete or unexpected data routes instead of failing a task.

Allowed:

- literals: strings, numbers, ``True``, ``False``, ``None``, lists and tuples of expressions;
- field references: ``notes`` or, qualified by node, ``label.label``;
- ``and``, ``or``, ``not``, unary ``-``;
- comparisons ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in`` (chains too);
- calls of ``len``, ``lower``, ``upper``, ``contains``, ``startswith``, ``endswith``, ``abs``,
  ``min``, ``max``, ``round`` and ``is_empty``.

This module imports only the standard library and is deterministic: it runs inside the
Temporal workflow sandbox.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FUNCTIONS", "Expr", "ExprError", "evaluate", "parse", "references", "truthy"]

MAX_LENGTH = 2000
"""Longest accepted expression text; conditions are short, and this bounds parse work."""

MAX_NODES = 500
"""Most syntax nodes in one expression; bounds evaluation work and recursion depth."""


class ExprError(ValueError):
    """An expression is not valid Conveyor expression syntax; the message says what is allowed."""


_ALLOWED_SUMMARY = (
    "allowed are literals (strings, numbers, True, False, None, lists), field names "
    "(notes or node.field), and/or/not, unary -, comparisons (== != < <= > >= in, not in) and "
    "the functions {functions}"
)


@dataclass(frozen=True)
class Expr:
    """A parsed and checked expression. Create with :func:`parse`; treat as opaque."""

    source: str
    tree: ast.Expression = field(compare=False, repr=False)
    names: frozenset[str] = field(compare=False, repr=False)

    def __str__(self) -> str:
        return self.source


# --- functions -------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True is not a number a condition author means.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fn_len(value: Any) -> int | None:
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    return None


def _fn_lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _fn_upper(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) else None


def _fn_contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return item in container
    if isinstance(container, dict):
        try:
            return item in container
        except TypeError:  # an unhashable item cannot be a key
            return False
    return False


def _fn_startswith(text: Any, prefix: Any) -> bool:
    return isinstance(text, str) and isinstance(prefix, str) and text.startswith(prefix)


def _fn_endswith(text: Any, suffix: Any) -> bool:
    return isinstance(text, str) and isinstance(suffix, str) and text.endswith(suffix)


def _fn_abs(value: Any) -> int | float | None:
    return abs(value) if _is_number(value) else None


def _extremum(pick: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    # ``min(scores)`` takes a list; ``min(a, b)`` takes several values.
    items = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
    all_numbers = all(_is_number(v) for v in items)
    all_text = all(isinstance(v, str) for v in items)
    if not items or not (all_numbers or all_text):
        return None
    return pick(items)


def _fn_min(*args: Any) -> Any:
    return _extremum(min, args)


def _fn_max(*args: Any) -> Any:
    return _extremum(max, args)


def _fn_round(value: Any, ndigits: Any = None) -> int | float | None:
    if not _is_number(value) or (ndigits is not None and type(ndigits) is not int):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if ndigits is None:
        return round(value)
    return round(value, max(-20, min(20, ndigits)))


def _fn_is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return not value
    return False


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    # name: (implementation, fewest arguments, most arguments or None for any number)
    "len": (_fn_len, 1, 1),
    "lower": (_fn_lower, 1, 1),
    "upper": (_fn_upper, 1, 1),
    "contains": (_fn_contains, 2, 2),
    "startswith": (_fn_startswith, 2, 2),
    "endswith": (_fn_endswith, 2, 2),
    "abs": (_fn_abs, 1, 1),
    "min": (_fn_min, 1, None),
    "max": (_fn_max, 1, None),
    "round": (_fn_round, 1, 2),
    "is_empty": (_fn_is_empty, 1, 1),
}
"""The functions an expression may call: pure, total, and returning ``None`` on bad input."""

_ALLOWED = _ALLOWED_SUMMARY.format(functions=", ".join(FUNCTIONS))


# --- parsing ---------------------------------------------------------------------------------

_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)

# Names for rejected constructs, so the error says what was written in the user's terms.
_CONSTRUCT_NAMES: dict[type[ast.AST], str] = {
    ast.BinOp: "arithmetic (+ - * / % **)",
    ast.Subscript: "indexing (x[...])",
    ast.Lambda: "a lambda",
    ast.IfExp: "a conditional expression (a if b else c)",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.Dict: "a dict literal",
    ast.Set: "a set literal",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "a starred argument (*x)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def _fail(what: str, text: str) -> ExprError:
    return ExprError(f"{text!r} uses {what}, which is not allowed; {_ALLOWED}")


def _check_name(name: str, text: str) -> None:
    if name.startswith("_"):
        raise _fail(f"the name {name!r} (names starting with _ are reserved)", text)


def _check(node: ast.AST, text: str, names: set[str]) -> None:
    """Raise ExprError unless ``node`` and everything under it is on the whitelist."""
    if isinstance(node, ast.BoolOp):
        for operand in node.values:
            _check(operand, text, names)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub):
            raise _fail(f"the unary operator {type(node.op).__name__}", text)
        _check(node.operand, text, names)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if not isinstance(op, _COMPARE_OPS):
                raise _fail("'is' / 'is not' (write == None or != None)", text)
        _check(node.left, text, names)
        for comparator in node.comparators:
            _check(comparator, text, names)
    elif isinstance(node, ast.Constant):
        literal = node.value
        if literal is not None and not isinstance(literal, str | int | float | bool):
            raise _fail(f"the literal {literal!r}", text)
    elif isinstance(node, ast.List | ast.Tuple):
        for element in node.elts:
            _check(element, text, names)
    elif isinstance(node, ast.Name):
        _check_name(node.id, text)
        names.add(node.id)
    elif isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name):
            what = f"the attribute access .{node.attr} (only node.field references are supported)"
            raise _fail(what, text)
        _check_name(node.value.id, text)
        _check_name(node.attr, text)
        names.add(f"{node.value.id}.{node.attr}")
    elif isinstance(node, ast.Call):
        _check_call(node, text, names)
    else:
        what = _CONSTRUCT_NAMES.get(type(node), f"the construct {type(node).__name__}")
        raise _fail(what, text)


def _check_call(node: ast.Call, text: str, names: set[str]) -> None:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        raise _fail(f"a call to {called!r}", text)
    if node.keywords:
        raise _fail(f"keyword arguments to {node.func.id}()", text)
    _, fewest, most = FUNCTIONS[node.func.id]
    count = len(node.args)
    if count < fewest or (most is not None and count > most):
        expected = str(fewest) if fewest == most else f"{fewest} or more"
        if most is not None and most != fewest:
            expected = f"{fewest} to {most}"
        raise ExprError(f"{node.func.id}() takes {expected} argument(s), got {count}, in {text!r}")
    for arg in node.args:
        _check(arg, text, names)


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> Expr:
    """Parse and check an expression; results are cached by text.

    Args:
        text: The expression, e.g. ``label == "spam" and len(notes) > 10``.

    Returns:
        The checked expression, for :func:`evaluate`, :func:`truthy` and :func:`references`.

    Raises:
        ExprError: The text is not valid syntax or uses a construct outside the whitelist;
            the message names the construct and lists what is allowed.
    """
    if not isinstance(text, str):
        raise ExprError(f"an expression must be text, not {type(text).__name__}")
    if not text.strip():
        raise ExprError('the expression is empty; write a condition such as label == "spam"')
    if len(text) > MAX_LENGTH:
        raise ExprError(f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        # Leading whitespace is a syntax error in eval mode; YAML block scalars often add it.
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"{text!r} is not a valid expression: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExprError(f"{text!r} cannot be parsed: {exc}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExprError(f"{text!r} is too complex; split it or simplify it")
    names: set[str] = set()
    _check(tree.body, text, names)
    return Expr(source=text, tree=tree, names=frozenset(names))


def _as_expr(expr_or_text: Expr | str) -> Expr:
    return expr_or_text if isinstance(expr_or_text, Expr) else parse(expr_or_text)


def references(expr_or_text: Expr | str) -> set[str]:
    """The field references in an expression: ``"notes"``, or ``"node.field"`` when qualified.

    Raises:
        ExprError: ``expr_or_text`` is text that does not parse.
    """
    return set(_as_expr(expr_or_text).names)


# --- evaluation ------------------------------------------------------------------------------


def _lookup(data: Mapping[str, Any], name: str) -> Any:
    if name in data:
        return data[name]
    node, dot, attr = name.partition(".")
    if dot:
        # Also accept data nested by node: {"label": {"label": "spam"}}.
        scope = data.get(node)
        if isinstance(scope, Mapping):
            return scope.get(attr)
    return None


def _truth(value: Any) -> bool:
    try:
        return bool(value)
    except Exception:  # a value with a broken __bool__ must not fail the workflow task
        return False


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    try:
        if isinstance(op, ast.Eq):
            return bool(left == right)
        if isinstance(op, ast.NotEq):
            return bool(left != right)
        if isinstance(op, ast.Lt):
            return bool(left < right)
        if isinstance(op, ast.LtE):
            return bool(left <= right)
        if isinstance(op, ast.Gt):
            return bool(left > right)
        if isinstance(op, ast.GtE):
            return bool(left >= right)
        if isinstance(op, ast.In):
            return bool(left in right)
        if isinstance(op, ast.NotIn):
            return bool(left not in right)
    except Exception:  # incompatible types (None < 3, 1 in None): the comparison is false
        return False
    raise AssertionError(f"unchecked operator {op!r}")  # parse() admits no other operator


def _eval(node: ast.AST, data: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _lookup(data, node.id)
    if isinstance(node, ast.Attribute):
        assert isinstance(node.value, ast.Name)
        return _lookup(data, f"{node.value.id}.{node.attr}")
    if isinstance(node, ast.BoolOp):
        # Python semantics: return the deciding operand, evaluating no further than needed.
        is_and = isinstance(node.op, ast.And)
        value: Any = None
        for operand in node.values:
            value = _eval(operand, data)
            if _truth(value) != is_and:
                return value
        return value
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, data)
        if isinstance(node.op, ast.Not):
            return not _truth(operand)
        return -operand if _is_number(operand) else None
    if isinstance(node, ast.Compare):
        left = _eval(node.left, data)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, data)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(element, data) for element in node.elts]
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        function = FUNCTIONS[node.func.id][0]
        args = [_eval(arg, data) for arg in node.args]
        try:
            return function(*args)
        except Exception:  # the functions guard their inputs; this is a last line of defence
            return None
    raise AssertionError(f"unchecked node {type(node).__name__}")  # parse() rejects the rest


def evaluate(expr_or_text: Expr | str, data: Mapping[str, Any]) -> Any:
    """Evaluate an expression over task data.

    Args:
        expr_or_text: A parsed :class:`Expr` or expression text (parsed and cached).
        data: Field values by name; qualified references look up ``"node.field"`` keys (or
            ``data["node"]["field"]`` when ``data["node"]`` is a mapping).

    Returns:
        The value. A missing field is ``None``; comparisons between incompatible values are
        ``False``; functions given the wrong type return ``None``. List and tuple literals
        evaluate to lists.

    Raises:
        ExprError: ``expr_or_text`` is text that does not parse.
    """
    return _eval(_as_expr(expr_or_text).tree.body, data)


def truthy(expr_or_text: Expr | str, data: Mapping[str, Any]) -> bool:
    """Evaluate an expression as a condition: ``True`` when its value is truthy.

    Raises:
        ExprError: ``expr_or_text`` is text that does not parse.
    """
    return _truth(evaluate(expr_or_text, data))
