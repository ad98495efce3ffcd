"""Pipeline chains: where a chained task's seed data and key come from.

A chain (:class:`~workflows.graph.ChainSpec`) creates tasks in its target pipeline from a
source task's data: the seed data and every field value, by field name and as
``node.field`` (as :func:`workflows.engine.task_data` gives them). This module holds the pure
parts, shared by validation, the client and the chain activities:

* :func:`parse_path` / :func:`extract`: a source field name (``label``, ``label.notes``) or a
  JSON path (``$.label.topics[0]``, ``$.meta['first name']``);
* :func:`map_seed_data`: the target task's seed data;
* :func:`chain_task_key`: the target task's key, derived from the source task so that a chain
  firing twice creates one task.

Deterministic, no I/O: imported inside the workflow sandbox.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from workflows.graph import ChainSpec, ChainTrigger, Pipeline

__all__ = [
    "MAX_CHAIN_KEY_LENGTH",
    "ChainMappingError",
    "PathNotFound",
    "chain_task_key",
    "extract",
    "is_field_name",
    "map_seed_data",
    "parse_path",
    "unknown_target_fields",
]

MAX_CHAIN_KEY_LENGTH = 200
"""The longest key :func:`chain_task_key` gives (task keys may have up to 300 characters)."""

Segment = str | int
"""One step of a path: a mapping key or a list index."""

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A plain source name: ``field`` or ``node.field`` (node names may contain '-').
_SOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[(-?\d+)\]")
_QUOTED = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")

_TRIGGER_MARK = {ChainTrigger.ON_TASK_COMPLETION: "~", ChainTrigger.ON_PIPELINE_COMPLETION: "+"}
"""What separates the source pipeline from the source key, per trigger. Pipeline names never
contain either character, so the first one in a key says where the name ends and which
trigger made it: keys of different sources or triggers never collide."""


class _Quoted(str):
    """A ``['key']`` step: always this exact key, never joined with its neighbours."""

    __slots__ = ()


class PathNotFound(LookupError):
    """The path leads nowhere in the data (a missing key, an index past the end)."""


class ChainMappingError(ValueError):
    """A chain's mapping does not fit its target pipeline; ``errors`` has one entry per field."""

    def __init__(self, target: str, errors: Mapping[str, str]):
        self.target = target
        self.errors = dict(errors)
        lines = "".join(f"\n  {k}: {v}" for k, v in self.errors.items())
        super().__init__(f"chain to pipeline '{target}' does not fit it:{lines}")


def is_field_name(name: str) -> bool:
    """Whether ``name`` is usable as a field name (letters, digits, '_'; not a digit first)."""
    return bool(_FIELD.match(name))


def parse_path(path: str) -> tuple[Segment, ...]:
    """Split a source reference into its steps.

    ``label`` and ``label.notes`` (a plain field name, or ``node.field``) are one step: the
    key of that name in the task data. A JSON path starts with ``$`` and continues with
    ``.name``, ``[0]`` (negative counts from the end) or ``['any key']`` steps.

    Raises:
        ValueError: The text is neither; the message says where it went wrong.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError("empty source; write a field name (label) or a JSON path ($.label)")
    if not path.startswith("$"):
        if _SOURCE_NAME.match(path):
            return (path,)
        raise ValueError(
            f"{path!r} is neither a field name (label, node.field) nor a JSON path; "
            "JSON paths start with '$', e.g. $.label.topics[0]"
        )
    steps: list[Segment] = []
    pos = 1
    while pos < len(path):
        char = path[pos]
        if char == ".":
            name = _NAME.match(path, pos + 1)
            if name is None:
                raise ValueError(
                    f"JSON path {path!r}: expected a name after '.' at position {pos + 1}; "
                    "quote other keys like $['my key']"
                )
            steps.append(name.group())
            pos = name.end()
            continue
        if char == "[":
            index = _INDEX.match(path, pos)
            if index is not None:
                steps.append(int(index.group(1)))
                pos = index.end()
                continue
            quoted = _QUOTED.match(path, pos)
            if quoted is not None:
                raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
                steps.append(_Quoted(re.sub(r"\\(.)", r"\1", raw)))
                pos = quoted.end()
                continue
            raise ValueError(
                f"JSON path {path!r}: bad brackets at position {pos + 1}; "
                "use [0] for a list item or ['key'] for a key"
            )
        raise ValueError(
            f"JSON path {path!r}: unexpected {char!r} at position {pos + 1}; "
            "steps are .name, [0] or ['key']"
        )
    return tuple(steps)


def extract(data: Any, path: str) -> Any:
    """The value ``path`` (see :func:`parse_path`) leads to in ``data``.

    In a mapping, consecutive name steps are first tried joined with ``.``, longest first, so
    ``$.label.notes`` finds the task data's ``label.notes`` key (node ``label``'s field
    ``notes``) even when a field is also named ``label``.

    Raises:
        ValueError: The path's syntax is wrong.
        PathNotFound: The path leads nowhere in ``data``.
    """
    steps = parse_path(path)
    if not path.startswith("$"):
        if isinstance(data, Mapping) and path in data:
            return data[path]
        raise PathNotFound(f"no field {path!r} in the source task's data")
    value = data
    i = 0
    while i < len(steps):
        step = steps[i]
        if isinstance(step, int):
            if isinstance(value, Sequence) and not isinstance(value, str | bytes):
                try:
                    value = value[step]
                except IndexError:
                    raise PathNotFound(
                        f"{path}: index {step} is past the end of a list of {len(value)}"
                    ) from None
                i += 1
                continue
            raise PathNotFound(f"{path}: [{step}] needs a list, found {_kind(value)}")
        if not isinstance(value, Mapping):
            raise PathNotFound(f"{path}: .{step} needs an object, found {_kind(value)}")
        run = _name_run(steps, i)
        for length in range(len(run), 0, -1):
            key = ".".join(run[:length])
            if key in value:
                value = value[key]
                i += length
                break
        else:
            raise PathNotFound(f"{path}: no key {step!r}")
    return value


def map_seed_data(
    chain: ChainSpec, source_data: Mapping[str, Any], target: Pipeline
) -> dict[str, Any]:
    """The seed data of the task ``chain`` creates in ``target`` from a source task's data.

    Each of the target's dataset (predefined) fields is filled, in this order of preference,
    from ``chain.values`` (a constant), ``chain.mapping`` (a source field name or JSON path)
    or the source field of the same name. A field with nothing to fill it (or ``None``) is left
    out, i.e. empty: the target's own validation decides whether that is acceptable.

    Raises:
        ChainMappingError: ``mapping`` or ``values`` name a field the target does not have,
            or a mapping's source is not a valid field name or path.
    """
    fields = [f.name for f in target.dataset_fields()]
    errors = unknown_target_fields(chain, target)
    for name, source in chain.mapping.items():
        try:
            parse_path(source)
        except ValueError as exc:
            errors.setdefault(name, str(exc))
    if errors:
        raise ChainMappingError(target.name, errors)
    seed: dict[str, Any] = {}
    for name in fields:
        value: Any = None
        if name in chain.values:
            value = chain.values[name]
        elif name in chain.mapping:
            try:
                value = extract(source_data, chain.mapping[name])
            except PathNotFound:
                value = None
        else:
            value = source_data.get(name)
        if value is not None:
            seed[name] = value
    return seed


def unknown_target_fields(chain: ChainSpec, target: Pipeline) -> dict[str, str]:
    """The fields ``chain``'s mapping and values name that ``target`` has no predefined field
    for, each with a message listing the ones it has."""
    fields = [f.name for f in target.dataset_fields()]
    listed = ", ".join(fields) or "(none)"
    errors: dict[str, str] = {}
    for setting, keys in (("mapping", chain.mapping), ("values", chain.values)):
        for name in keys:
            if name not in fields:
                errors[name] = (
                    f"{setting} names '{name}', which is not a predefined field of pipeline "
                    f"'{target.name}'; its predefined fields are: {listed}"
                )
    return errors


def chain_task_key(source_pipeline: str, source_key: str, trigger: ChainTrigger) -> str:
    """The key of the task a chain creates from one source task: always the same for the same
    source task and trigger, so a chain firing twice creates one task.

    ``<source pipeline>~<source key>`` for ``on_task_completion`` and
    ``<source pipeline>+<source key>`` for ``on_pipeline_completion``; longer than
    :data:`MAX_CHAIN_KEY_LENGTH`, the key's tail is replaced by a hash of the whole.
    """
    key = f"{source_pipeline}{_TRIGGER_MARK[ChainTrigger(trigger)]}{source_key}"
    if len(key) <= MAX_CHAIN_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{key[: MAX_CHAIN_KEY_LENGTH - len(digest) - 1]}#{digest}"


def _name_run(steps: Sequence[Segment], start: int) -> list[str]:
    run: list[str] = []
    for step in steps[start:]:
        if not isinstance(step, str) or (run and isinstance(step, _Quoted)):
            break
        run.append(step)
        if isinstance(step, _Quoted):
            break
    return run


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__
