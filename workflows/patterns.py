"""Regular expressions written in pipeline definitions, run on a linear-time engine (RE2).

Regex evaluators run inside workflow code, where a timeout would not replay deterministically,
so a pattern such as ``^(a+)+$`` must never backtrack exponentially on a draft. RE2 (the
``google-re2`` package, module ``re2``) matches in time linear in the text; it refuses what
needs backtracking (backreferences, lookaround, atomic groups, possessive quantifiers).

Patterns are written for Python's ``re``; :func:`compile_pattern` translates the few things
RE2 reads differently so a valid pattern means the same: ``\\d``, ``\\w``, ``\\s`` (and their
negations) match Unicode as in ``re``, ``$`` also matches before a final newline, ``\\Z`` is
the end of the text, and ``{,n}`` is ``{0,n}``. (``\\b`` stays ASCII: RE2 has no Unicode word
boundary.)
"""

from __future__ import annotations

import re
from functools import lru_cache

import re2

__all__ = ["PatternError", "compile_pattern"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error comes back as an exception; nothing on stderr

# Python's classes for str patterns: \d is Unicode decimal digits, \w what str.isalnum()
# accepts plus "_", \s what str.isspace() accepts.
_DIGIT = r"\p{Nd}"
_WORD = r"\p{L}\p{N}_"
_SPACE = r"\t-\r\x{1c}-\x{20}\x{85}\p{Z}"
_OUTSIDE = {
    "d": _DIGIT,
    "D": r"\P{Nd}",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "Z": r"\z",
}
_INSIDE = {"d": _DIGIT, "D": r"\P{Nd}", "w": _WORD, "s": _SPACE}
_MULTILINE = re.compile(r"\(\?[a-zA-Z]*m")
_UNBOUNDED_BELOW = re.compile(r"\{,(\d+)\}")
_CODE_POINT = re.compile(r"\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})")
_BACKTRACKING = re.compile(r"\(\?(?:P$|[=!<>])|escape sequence: \\\d|[*+?}]\+")


class PatternError(ValueError):
    """A pattern the regex engine cannot run; the message (``is not valid…``, ``uses…``)
    follows the word "pattern" and says why and what to change."""


def _translate(pattern: str) -> str:
    """Rewrite a Python ``re`` pattern into RE2 syntax with the same meaning."""
    multiline = bool(_MULTILINE.search(pattern))
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            code = _CODE_POINT.match(pattern, i)
            if code:  # \u00e9, \U0001f600: RE2 writes \x{e9}
                out.append(r"\x{" + (code.group(1) or code.group(2)) + "}")
                i = code.end()
                continue
            table = _INSIDE if in_class else _OUTSIDE
            out.append(table.get(escaped, char + escaped))
            i += 2
            continue
        if in_class:
            in_class = char != "]"
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
            # A "]" (after an optional "^") right after "[" is a literal, not the end.
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):
                out.append(r"\]")
                i += 1
        elif char == "$" and not multiline:
            out.append(r"(?:\n?\z)")  # Python: the end, or before a newline that ends the text
        elif char == "{":
            bound = _UNBOUNDED_BELOW.match(pattern, i)
            if bound:
                out.append("{0," + bound.group(1) + "}")
                i = bound.end()
                continue
            out.append(char)
        else:
            out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re2._Regexp:
    """Compile a pattern written for Python's ``re`` on the linear-time engine.

    Raises:
        PatternError: the pattern is not valid, or needs backtracking (backreferences,
            lookahead / lookbehind, atomic groups, possessive quantifiers); the message says
            which and how to rewrite it.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PatternError(f"is not a valid regular expression ({exc}); fix the pattern") from None
    except (RecursionError, OverflowError, MemoryError):
        raise PatternError("is too complex to compile; write a simpler pattern") from None
    try:
        return re2.compile(_translate(pattern), _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        if not _BACKTRACKING.search(detail):
            raise PatternError(
                f"cannot be compiled by the linear-time regex engine ({detail}); rewrite it "
                "(repeat counts go up to 1000; the flags are i, m, s and U)"
            ) from None
        raise PatternError(
            f"uses something the linear-time regex engine does not run ({detail}): "
            "backreferences (\\1), lookahead or lookbehind ((?=…), (?!…), (?<=…), (?<!…)), "
            "atomic groups and possessive quantifiers need backtracking, which can take "
            "exponential time on a draft; rewrite the pattern without them (or use a "
            "keyword evaluator)"
        ) from None
