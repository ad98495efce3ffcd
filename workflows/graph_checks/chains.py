"""Chains: none to the pipeline itself, one per target and trigger, mappings and values that
name fields and valid JSON paths."""

from __future__ import annotations

from collections.abc import Mapping

from workflows.chains import is_field_name, parse_path
from workflows.graph import ChainTrigger
from workflows.graph_checks.core import _CheckerCore, _suggest


class _ChainChecks(_CheckerCore):
    def check_chains(self) -> None:
        """Each chain on its own and against the others; the targets are checked when the
        definition is applied (they may not exist yet)."""
        name = self.raw.get("name") if isinstance(self.raw.get("name"), str) else None
        first: dict[tuple[str, str], int] = {}
        for index, raw in enumerate(self.raw_chains()):
            if not isinstance(raw, Mapping):
                continue  # reported by the structural check
            to = raw.get("to") if isinstance(raw.get("to"), str) else None
            trigger = raw.get("trigger", ChainTrigger.ON_TASK_COMPLETION.value)
            if to is not None and to == name:
                self.chain_problem(
                    index,
                    f"a chain to its own pipeline is a cycle ({name} -> {name}): each task it "
                    "creates would create another; chain to a different pipeline",
                )
            if to is not None and isinstance(trigger, str) and trigger in set(ChainTrigger):
                earlier = first.setdefault((to, trigger), index)
                if earlier != index:
                    self.chain_problem(
                        index,
                        f"a second {trigger} chain to '{to}' (chain #{earlier + 1} is the "
                        "first); one source task creates one target task per trigger, so merge "
                        "their mapping and values into one chain",
                    )
            mapping = raw.get("mapping")
            mapping = mapping if isinstance(mapping, Mapping) else {}
            for target_field, source in mapping.items():
                if not isinstance(target_field, str) or not is_field_name(target_field):
                    self.chain_problem(
                        index,
                        f"mapping key {target_field!r} is not a field name; a mapping goes "
                        "from the target's field to a source field or JSON path, e.g. "
                        "mapping: {summary: $.label.notes}",
                    )
                if isinstance(source, str):
                    problem = self.chain_source_problem(source)
                    if problem is not None:
                        self.chain_problem(index, f"mapping for '{target_field}': {problem}")
            values = raw.get("values")
            for target_field in values if isinstance(values, Mapping) else {}:
                if not isinstance(target_field, str) or not is_field_name(target_field):
                    self.chain_problem(
                        index,
                        f"values key {target_field!r} is not a field name; values sets the "
                        "target's fields to constants, e.g. values: {origin: import}",
                    )
                elif target_field in mapping:
                    self.chain_problem(
                        index,
                        f"'{target_field}' is set by both mapping and values; keep one of them",
                    )

    def chain_source_problem(self, source: str) -> str | None:
        """Why a mapping's source cannot be read from this pipeline's task data, if so.

        Task data holds every field by name and as ``node.field``; a JSON path must start with
        one of those keys (what follows depends on the values, so it is not checked).
        """
        try:
            steps = parse_path(source)
        except ValueError as exc:
            return str(exc)
        keys = {f.name: None for n in self.graph_nodes for f in n.fields if f.name}
        keys.update(
            {f"{n.name}.{f.name}": None for n in self.graph_nodes for f in n.fields if f.name}
        )
        if not source.startswith("$"):
            if source in keys:
                return None
            return (
                f"'{source}' is not a field of this pipeline{_suggest(source, keys)}; "
                f"known fields: {self.known_fields()}"
            )
        if not steps or not isinstance(steps[0], str):
            return f"JSON path {source!r} must start with a field, e.g. $.label or $.node.field"
        if steps[0] in keys:
            return None
        if len(steps) >= 2 and isinstance(steps[1], str) and f"{steps[0]}.{steps[1]}" in keys:
            return None
        return (
            f"JSON path {source!r} starts with '{steps[0]}', which is not a field of this "
            f"pipeline{_suggest(steps[0], keys)}; known fields: {self.known_fields()}"
        )
