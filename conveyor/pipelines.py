"""Reading pipeline definitions from YAML or JSON files.

File I/O lives here, outside ``workflows/``, because workflow code runs in Temporal's sandbox
and must not touch the file system. Parse errors become :class:`PipelineInvalid` with a single
``file`` problem that names the file and the line, so callers handle one exception type.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

from workflows.graph import Pipeline, PipelineInvalid, Problem
from workflows.graph_checks import validate_pipeline

__all__ = [
    "MAX_DEFINITION_CHARS",
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "MAX_NUMBER_CHARS",
    "SUFFIXES",
    "load_pipeline_file",
    "load_raw",
    "parse_text",
]

SUFFIXES = (".yaml", ".yml", ".json")
"""File name endings a pipeline definition may have."""


def _invalid(message: str) -> PipelineInvalid:
    return PipelineInvalid([Problem(where="file", message=message)])


def load_raw(path: str | Path) -> Any:
    """Parse a pipeline file into plain data, without validating it.

    Args:
        path: A ``.yaml``, ``.yml`` or ``.json`` file.

    Returns:
        The parsed content (for a valid file, a mapping).

    Raises:
        PipelineInvalid: The file is missing, unreadable, has another ending, or is not
            valid YAML / JSON; the single problem's ``where`` is ``file`` and the message
            gives the path and, for syntax errors, the line and column.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise _invalid(
            f"{file}: unsupported file type '{file.suffix or '(none)'}'; "
            f"write the pipeline as {', '.join(SUFFIXES)}"
        )
    try:
        if file.stat().st_size > 4 * MAX_DEFINITION_CHARS:  # UTF-8: at most 4 bytes a character
            raise _invalid(
                f"{file}: the file is over the limit of {MAX_DEFINITION_CHARS:,} characters; "
                "keep long texts (documents, examples) in task data, not in the pipeline"
            )
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _invalid(f"{file}: no such file; check the path") from None
    except IsADirectoryError:
        raise _invalid(f"{file}: is a directory, not a pipeline file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _invalid(f"{file}: cannot be read: {exc}") from None
    if not text.strip():
        raise _invalid(f"{file}: the file is empty; write a pipeline with name and nodes")
    return parse_text(text, json_only=suffix == ".json", where="file", source=f"{file}: ")


def parse_text(text: str, *, json_only: bool = False, where: str = "file", source: str = "") -> Any:
    """Parse a definition's text (YAML, of which JSON is a subset) into plain data.

    Limits are checked before anything recursive walks the input, so no text can exhaust the
    stack, the CPU or the memory: at most :data:`MAX_DEFINITION_CHARS` characters, lists and
    mappings nested at most :data:`MAX_DEPTH` deep (aliases included), numbers of at most
    :data:`MAX_NUMBER_CHARS` characters, and at most :data:`MAX_EXPANDED_NODES` values once
    YAML anchors and aliases are expanded (a few aliases can stand for billions of values).
    Duplicate keys are refused, and only plain data is built (a safe loader).

    Args:
        json_only: parse as JSON (for ``.json`` files and JSON request bodies).
        where: the ``where`` of the problem raised (``file``, ``body``).
        source: put before each message (a file's ``path: ``).

    Raises:
        PipelineInvalid: over a limit (the message names it and the fix), or not valid JSON /
            YAML (with the line and column).
    """
    if len(text) > MAX_DEFINITION_CHARS:
        raise _problem(
            where,
            f"{source}the definition is {len(text):,} characters long, over the limit of "
            f"{MAX_DEFINITION_CHARS:,}; keep long texts (documents, examples) in task data, "
            "not in the pipeline",
        )
    if json_only:
        return _parse_json(text, where, source)
    try:
        loader = _StrictLoader(text)  # a SafeLoader subclass: plain data only
        try:
            # Parsed once into nodes (the loader checks depth and numbers as it composes);
            # their expanded size and depth are checked before any value is built.
            root = loader.get_single_node()
            if root is None:
                return None
            size, depth = _expanded_shape(root)
            if size > MAX_EXPANDED_NODES:
                raise _problem(
                    where,
                    f"{source}the YAML expands to too many values (anchors and aliases referring "
                    "to each other); write the definition out",
                )
            if depth > MAX_DEPTH:
                raise _problem(
                    where,
                    f"{source}the YAML nests lists and mappings more than {MAX_DEPTH} levels deep "
                    "once its aliases are expanded (or an alias refers to a value containing "
                    "it); write the definition out without such aliases",
                )
            return loader.construct_document(root)
        finally:
            loader.dispose()
    except _OverLimit as exc:
        at = f"line {exc.mark.line + 1}, column {exc.mark.column + 1}: " if exc.mark else ""
        raise _problem(where, f"{source}{at}{exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or "syntax error"
        if exc.context:
            what += f" ({exc.context})"
        raise _problem(where, f"{source}invalid YAML{at}: {what}") from None
    except yaml.YAMLError as exc:
        raise _problem(where, f"{source}invalid YAML: {exc}") from None


def _problem(where: str, message: str) -> PipelineInvalid:
    return PipelineInvalid([Problem(where=where, message=message)])


MAX_EXPANDED_NODES = 200_000
"""The most values a YAML definition may expand to (a pipeline has hundreds)."""

MAX_DEPTH = 32
"""How deep lists and mappings may nest in a definition (the examples nest 6 deep)."""

MAX_NUMBER_CHARS = 100
"""The longest number a definition may write (a definition's numbers are timeouts, limits,
scores: a few digits). Python refuses to convert integers of over 4,300 digits at all."""

MAX_DEFINITION_CHARS = 2 * 1024 * 1024
"""The longest definition text: the whole pipeline travels in workflow input, and Temporal
refuses payloads over 2 MiB."""

_TOO_DEEP = (
    f"lists and mappings are nested more than {MAX_DEPTH} levels deep here, over the limit; "
    "a pipeline definition needs fewer than 10 levels, so flatten this part"
)


_TOO_MANY = (
    f"the definition has more than {MAX_EXPANDED_NODES:,} values, over the limit; a pipeline "
    "has hundreds, so split it into pipelines joined by chains"
)


def _too_long_number(text: str) -> str:
    return (
        f"the number {text[:20]}… is {len(text):,} characters long, over the limit of "
        f"{MAX_NUMBER_CHARS}; write a shorter number (or quote it to make it text)"
    )


class _OverLimit(Exception):
    """Input over one of the parse limits; the message names the limit and the fix."""

    def __init__(self, message: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(message)
        self.mark = mark


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys instead of silently keeping the last one, and
    refuses nesting deeper than :data:`MAX_DEPTH` and over-long numbers as it composes.

    A repeated ``next:`` or ``fields:`` in a node is an easy slip in a long file, and PyYAML
    would otherwise drop the first value without a word. Composing is recursive, so the depth
    is checked on the way down, long before Python's recursion limit.
    """

    _depth = 0
    _composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH and self.check_event(
            yaml.SequenceStartEvent, yaml.MappingStartEvent
        ):
            raise _OverLimit(_TOO_DEEP, self.peek_event().start_mark)
        self._composed += 1
        if self._composed > MAX_EXPANDED_NODES:
            raise _OverLimit(_TOO_MANY, self.peek_event().start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag in (_INT_TAG, _FLOAT_TAG)
            and len(node.value) > MAX_NUMBER_CHARS
        ):
            raise _OverLimit(_too_long_number(node.value), node.start_mark)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key; SafeLoader reports it below
                continue
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; each key may appear once here", mark
                )
        return super().construct_mapping(node, deep=deep)


def _expanded_shape(root: yaml.Node) -> tuple[int, int]:
    """How many values the document has once its aliases are expanded (each alias counts its
    target's whole size), and how deep its lists and mappings nest then; each capped just over
    its limit.

    Iterative (aliases can chain far deeper than the stack), computed once per node. A node
    that contains itself (a recursive alias) nests without end: its depth is over the limit.
    """
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes on the path being walked
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), MAX_EXPANDED_NODES + 1)
            if isinstance(node, yaml.CollectionNode):
                depth = 1 + max((depths[id(c)] for c in children), default=0)
                depths[key] = min(depth, MAX_DEPTH + 1)
            else:
                depths[key] = 0
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return 0, MAX_DEPTH + 1
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)], depths[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


# A JSON string (escapes included), and every character that is not a bracket.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _parse_json(text: str, where: str, source: str) -> Any:
    # The standard parser recurses once per level: count the levels first, at C speed.
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
        raise _problem(where, f"{source}{_TOO_DEEP}")
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float)
    except json.JSONDecodeError as exc:
        raise _problem(
            where, f"{source}invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except _OverLimit as exc:
        raise _problem(where, f"{source}{exc}") from None


def _json_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _OverLimit(_too_long_number(text))
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _OverLimit(_too_long_number(text))
    return float(text)


def load_pipeline_file(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file.

    Args:
        path: A ``.yaml``, ``.yml`` or ``.json`` file.

    Returns:
        The validated pipeline.

    Raises:
        PipelineInvalid: With every problem found: a single ``file`` problem when the file
            cannot be read or parsed, else each problem in the definition.
    """
    return validate_pipeline(load_raw(path))
