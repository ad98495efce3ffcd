"""Reading pipeline definitions from YAML or JSON files.

File I/O lives here, outside ``workflows/``, because workflow code runs in Temporal's sandbox
and must not touch the file system. Parse errors become :class:`PipelineInvalid` with a single
``file`` problem that names the file and the line, so callers handle one exception type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from workflows.graph import Pipeline, PipelineInvalid, Problem, validate_pipeline

__all__ = ["MAX_EXPANDED_NODES", "SUFFIXES", "load_pipeline_file", "load_raw", "parse_text"]

SUFFIXES = (".yaml", ".yml", ".json")
"""File name endings a pipeline definition may have."""


def _invalid(message: str) -> PipelineInvalid:
    return PipelineInvalid([Problem(where="file", message=message)])


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys instead of silently keeping the last one.

    A repeated ``next:`` or ``fields:`` in a node is an easy slip in a long file, and PyYAML
    would otherwise drop the first value without a word.
    """

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

    Duplicate keys are refused, only plain data is built (a safe loader), and a document whose
    anchors and aliases expand to more than :data:`MAX_EXPANDED_NODES` values is refused before
    it is built (a few aliases can stand for billions of values).

    Args:
        json_only: parse as JSON (for ``.json`` files and JSON request bodies).
        where: the ``where`` of the problem raised (``file``, ``body``).
        source: put before each message (a file's ``path: ``).

    Raises:
        PipelineInvalid: not valid JSON / YAML, with the line and column.
    """
    if json_only:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _problem(
                where, f"{source}invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    try:
        loader = _StrictLoader(text)  # a SafeLoader subclass: plain data only
        try:
            # Parsed once into nodes; their expanded size is checked before any value is built.
            root = loader.get_single_node()
            if root is None:
                return None
            if _expanded_size(root) > MAX_EXPANDED_NODES:
                raise _problem(
                    where,
                    f"{source}the YAML expands to too many values (anchors and aliases referring "
                    "to each other); write the definition out",
                )
            return loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or "syntax error"
        if exc.context:
            what += f" ({exc.context})"
        raise _problem(where, f"{source}invalid YAML{at}: {what}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _problem(where, f"{source}invalid YAML: {exc}") from None


def _problem(where: str, message: str) -> PipelineInvalid:
    return PipelineInvalid([Problem(where=where, message=message)])


MAX_EXPANDED_NODES = 200_000
"""The most values a YAML definition may expand to (a pipeline has hundreds)."""


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document has once its aliases are expanded (each alias counts its
    target's whole size), computed once per node."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a node that contains itself (a recursive alias) counts once
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        sizes[id(node)] = total = min(total, MAX_EXPANDED_NODES + 1)
        return total

    return size(root)


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
