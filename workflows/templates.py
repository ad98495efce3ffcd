"""Prompt templates: the one Jinja sandbox they are checked in when a pipeline loads and
rendered in by the LLM activities.

Pure (Jinja only, no I/O), so pipeline validation (``graph_checks``) and the activities share
one definition of what a template may do:

- it reads task data only: no Jinja globals (``range``, ``lipsum``, ``namespace``…), no
  attributes or items that are Python internals (``__class__``, ``mro``, ``gi_frame``…);
- no operator is folded while a template compiles (Jinja evaluates constant expressions such as
  ``9 ** 4000000`` at compile time otherwise, before any sandbox check runs), and at render time
  ``**``, ``*``, ``%`` and ``+`` have caps on the size of what they build;
- filters that pad or repeat (``center``, ``indent``, ``format``…) have the same caps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import Frame
from jinja2.meta import TrackingCodeGenerator
from jinja2.runtime import Context
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    SandboxedEnvironment,
    SecurityError,
)

__all__ = [
    "JINJA_GLOBALS",
    "MAX_EXPONENT",
    "MAX_INT_BITS",
    "MAX_TEXT_LENGTH",
    "SANDBOX",
    "PromptSandbox",
    "internal_reads",
    "refused_constants",
    "undeclared_names",
]

MAX_EXPONENT = 1_000
"""The largest exponent ``**`` takes."""

MAX_INT_BITS = 100_000
"""The largest integer (in bits, about 30,000 digits) ``**`` and ``*`` may build."""

MAX_TEXT_LENGTH = 1_000_000
"""The longest string or list ``*``, ``+``, ``%`` and padding filters may build."""

JINJA_GLOBALS = frozenset(SandboxedEnvironment().globals)
"""The names Jinja predefines (``range``, ``dict``, ``lipsum``, ``cycler``, ``joiner``,
``namespace``): prompt templates have none of them."""

_INTERNAL_NAMES = frozenset(
    {"mro"}
    | UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)

# A printf-style width or precision, as in "%0999999999d" or "%.999999999f".
_PRINTF_NUMBER = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d+))?")


def _is_internal(name: str) -> bool:
    return name.startswith("_") or name in _INTERNAL_NAMES


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def _refuse_long(length: int) -> None:
    if length > MAX_TEXT_LENGTH:
        raise SecurityError(
            f"the result would be {length:,} items long (at most {MAX_TEXT_LENGTH:,})"
        )


def _check_printf(spec: Any) -> None:
    if isinstance(spec, str):
        for match in _PRINTF_NUMBER.finditer(spec):
            for number in match.groups():
                if number and (len(number) > 7 or int(number) > MAX_TEXT_LENGTH):
                    raise SecurityError(
                        f"a format width or precision of {number[:20]} is too large "
                        f"(at most {MAX_TEXT_LENGTH:,})"
                    )


class PromptSandbox(SandboxedEnvironment):
    """Jinja's sandbox without globals, with every binary operator intercepted and capped.

    Intercepted operators are never constant-folded at compile time (see
    ``jinja2.nodes.BinExpr.as_const``), so compiling a template costs only its length; the caps
    apply when it renders.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.globals.clear()  # templates read task data, nothing else
        for name in ("center", "indent", "format", "wordwrap", "truncate", "join", "replace"):
            self.filters[name] = _capped_filter(name, self.filters[name])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and left.bit_length() * right > MAX_INT_BITS
            ):
                raise SecurityError(f"{operator} would build too large a number")
        elif operator == "*":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                raise SecurityError(f"{operator} would build too large a number")
            for seq, times in ((left, right), (right, left)):
                size = _length(seq)
                if size is not None and isinstance(times, int):
                    _refuse_long(size * times)
        elif operator == "+":
            left_size, right_size = _length(left), _length(right)
            if left_size is not None and right_size is not None:
                _refuse_long(left_size + right_size)
        elif operator == "%":
            _check_printf(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # String methods pad and repeat too: "x".ljust(10 ** 9), "{:999999999}".format(1),
        # "a".replace("a", long) chained. Refuse what would build more than the cap.
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            name = getattr(method, "__name__", "")
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and not isinstance(value, bool):
                    _refuse_long(abs(value))
            if name in ("format", "format_map") and re.search(r"\d{8,}", owner):
                raise SecurityError(
                    f"a format width of 8 or more digits is too large in {owner[:40]!r}"
                )
            if name == "replace" and len(args) >= 2 and isinstance(args[0], str):
                count = owner.count(args[0]) if args[0] else len(owner) + 1
                _refuse_long(len(owner) + count * (_length(args[1]) or 0))
            if name == "join" and args and isinstance(args[0], list | tuple):
                _refuse_long(len(owner) * len(args[0]) + sum(_length(x) or 0 for x in args[0]))
        return super().call(__context, __obj, *args, **kwargs)


def _capped_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A padding/formatting filter that refuses widths and format specs over the caps."""

    def capped(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool):
                _refuse_long(abs(value))
        if name == "format" and args:
            _check_printf(args[0])  # the format string: "%999999999d" | format(1)
        _refuse_long(_filter_result_length(name, args, kwargs))
        return function(*args, **kwargs)

    for attribute in ("jinja_pass_arg", "jinja_async_variant", "__name__", "__doc__"):
        if hasattr(function, attribute):
            setattr(capped, attribute, getattr(function, attribute))
    return capped


def _filter_result_length(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """How long a joining, replacing or indenting filter's result would be (0: no estimate)."""
    if name == "join" and len(args) >= 2:  # (eval_ctx, value, d="")
        value, separator = args[1], args[2] if len(args) > 2 else kwargs.get("d", "")
        if isinstance(value, list | tuple) and isinstance(separator, str):
            return len(separator) * len(value) + sum(_length(item) or 0 for item in value)
    if name == "replace" and len(args) >= 4:  # (eval_ctx, s, old, new, count=None)
        text, old, new = args[1], args[2], args[3]
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
            count = text.count(old) if old else len(text) + 1
            return len(text) + count * len(new)
    if name == "indent" and args:  # (s, width=4, first=False, blank=False)
        text, width = args[0], args[1] if len(args) > 1 else kwargs.get("width", 4)
        if isinstance(text, str) and isinstance(width, str):
            return len(text) + (text.count("\n") + 1) * len(width)
    return 0


SANDBOX = PromptSandbox()
"""The sandbox every prompt template is parsed, checked and rendered in."""


class _Tracking(TrackingCodeGenerator):
    """Finds the names a template reads without evaluating anything: no optimizer, and a
    volatile evaluation context so no filter or expression is folded to a constant."""

    def __init__(self, environment: PromptSandbox) -> None:
        super().__init__(environment)
        self.optimizer = None

    def enter_frame(self, frame: Frame) -> None:
        frame.eval_ctx.volatile = True
        super().enter_frame(frame)


def undeclared_names(template: nodes.Template) -> set[str]:
    """The names a parsed template reads from its context (the task data), Jinja globals
    included; without evaluating any part of it, so a template that would compute a huge
    value costs no more to check than to read."""
    tracking = _Tracking(SANDBOX)
    tracking.visit(template)
    return tracking.undeclared_identifiers


def internal_reads(template: nodes.Template) -> list[str]:
    """The expressions in a parsed template that read a Python internal (``x.__class__``,
    ``x['_private']``, ``x.mro``, ``x | attr('__init__')``), as written, in order."""
    found: list[str] = []
    for node in template.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr) and _is_internal(node.attr):
            found.append(f"{_describe(node.node)}.{node.attr}")
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and _is_internal(node.arg.value)
        ):
            found.append(f"{_describe(node.node)}[{node.arg.value!r}]")
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            for arg in node.args:
                if (
                    isinstance(arg, nodes.Const)
                    and isinstance(arg.value, str)
                    and _is_internal(arg.value)
                ):
                    found.append(f"{_describe(node.node)} | attr({arg.value!r})")
    return list(dict.fromkeys(found))


def _describe(node: nodes.Node | None) -> str:
    """A short rendering of the expression an attribute is read from."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_describe(node.node)}.{node.attr}"
    if isinstance(node, nodes.Const):
        return repr(node.value)[:20]
    return "(…)"


_NOT_CONSTANT = object()


def refused_constants(template: nodes.Template) -> list[str]:
    """Why the sandbox would refuse constant arithmetic in a parsed template (``9 ** 4000000``,
    ``'a' * 10 ** 9``): each constant operation is evaluated once, bottom-up, under the
    render-time caps, so this costs no more than the caps allow."""
    values: dict[int, Any] = {}
    refused: list[str] = []

    def value(node: nodes.Node) -> Any:
        key = id(node)
        if key not in values:
            values[key] = _NOT_CONSTANT
            if isinstance(node, nodes.Const):
                values[key] = node.value
            elif isinstance(node, nodes.BinExpr):
                left, right = value(node.left), value(node.right)
                if left is not _NOT_CONSTANT and right is not _NOT_CONSTANT:
                    try:
                        values[key] = SANDBOX.call_binop(None, node.operator, left, right)  # type: ignore[arg-type]
                    except SecurityError as exc:
                        refused.append(str(exc))
                    except Exception:
                        pass
            elif isinstance(node, nodes.UnaryExpr) and node.operator in ("-", "+"):
                operand = value(node.node)
                if isinstance(operand, int | float) and not isinstance(operand, bool):
                    values[key] = -operand if node.operator == "-" else operand
        return values[key]

    for node in template.find_all(nodes.BinExpr):
        value(node)
    return list(dict.fromkeys(refused))
