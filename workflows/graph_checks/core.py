"""The checker's state (the skeleton, the edges between named nodes, the report) and the
helpers every check shares: where a problem is, which fields exist and when they have values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from workflows.graph import CONSENSUS_KEYS, FieldSource, FieldSpec, NodeKind
from workflows.graph_checks.paths import _walk
from workflows.graph_checks.skeleton import _Evaluator, _Field, _Node, _Report, _skeleton


class _CheckerCore:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.report = _Report()
        raw_nodes = raw.get("nodes")
        self.raw_nodes: list[Any] = list(raw_nodes) if isinstance(raw_nodes, list) else []
        self.nodes = [_skeleton(i, n) for i, n in enumerate(self.raw_nodes)]
        # The first node of each name is the one in the graph; later ones are reported.
        self.by_name: dict[str, _Node] = {}
        for node in self.nodes:
            if node.name is not None:
                self.by_name.setdefault(node.name, node)
        self.graph_nodes = list(self.by_name.values())
        self.succ: dict[str, list[str]] = {
            n.name: [s for s in n.successors() if s in self.by_name]
            for n in self.graph_nodes
            if n.name is not None
        }
        self.pred: dict[str, list[str]] = {name: [] for name in self.succ}
        for name, targets in self.succ.items():
            for target in targets:
                self.pred[target].append(name)
        self._ancestors: dict[str, set[str]] = {}
        self._field_specs: dict[str, FieldSpec | None] | None = None

    # --- helpers -------------------------------------------------------------------------

    def where(self, node: int, fld: int = -1) -> str:
        skeleton = self.nodes[node] if 0 <= node < len(self.nodes) else None
        label = f"node '{skeleton.name}'" if skeleton and skeleton.name else f"node #{node + 1}"
        if fld < 0:
            return label
        name = None
        if skeleton is not None and 0 <= fld < len(skeleton.fields):
            name = skeleton.fields[fld].name
        return f"{label} field '{name}'" if name else f"{label} field #{fld + 1}"

    def evaluator_where(self, node: int, ev: int) -> tuple[str, int]:
        """``node 'x' evaluator 'y'``, and its place in the report (after the node's fields)."""
        skeleton = self.nodes[node] if 0 <= node < len(self.nodes) else None
        name = None
        if skeleton is not None and 0 <= ev < len(skeleton.evaluators):
            name = skeleton.evaluators[ev].name
        label = f"evaluator '{name}'" if name else f"evaluator #{ev + 1}"
        order = (len(skeleton.fields) if skeleton else 0) + ev
        return f"{self.where(node)} {label}", order

    def evaluator_problem(self, node: _Node, ev: _Evaluator, message: str) -> None:
        where, order = self.evaluator_where(node.index, ev.index)
        self.report.add(where, message, node.index, order)

    def raw_chains(self) -> list[Any]:
        chains = self.raw.get("chains")
        return list(chains) if isinstance(chains, list) else []

    def chain_where(self, index: int) -> str:
        """``chain #1 (to 'b')``: chains have no names, so their place and target say which."""
        chains = self.raw_chains()
        raw = chains[index] if 0 <= index < len(chains) else None
        to = raw.get("to") if isinstance(raw, Mapping) else None
        return f"chain #{index + 1}" + (f" (to '{to}')" if isinstance(to, str) and to else "")

    def chain_problem(self, index: int, message: str) -> None:
        # Chains come after the nodes in a file, and so in the report.
        self.report.add(self.chain_where(index), message, len(self.nodes) + index)

    def node_problem(self, node: _Node, message: str) -> None:
        self.report.add(self.where(node.index), message, node.index)

    def field_problem(self, node: _Node, fld: _Field, message: str) -> None:
        self.report.add(self.where(node.index, fld.index), message, node.index, fld.index)

    def ancestors(self, name: str) -> set[str]:
        """Every node with a path to ``name`` (``name`` itself only if on a cycle)."""
        if name not in self._ancestors:
            self._ancestors[name] = _walk(name, self.pred)
        return self._ancestors[name]

    def consensus_reference(self, name: str) -> str | None:
        """For a gate reference ``<node>.<key>`` to a consensus node, the node's name."""
        node_name, dot, key = name.partition(".")
        owner = self.by_name.get(node_name)
        if dot and key in CONSENSUS_KEYS and owner is not None and owner.spec is not None:
            return node_name if owner.spec.consensus is not None else None
        return None

    def consensus_nodes(self) -> list[_Node]:
        return [
            n
            for n in self.graph_nodes
            if n.spec is not None and n.spec.consensus is not None and n.kind == NodeKind.SUBTASK
        ]

    def field_owners(self, field_name: str) -> list[tuple[_Node, _Field]]:
        return [(n, f) for n in self.graph_nodes for f in n.fields if f.name == field_name]

    def known_fields(self) -> str:
        names = dict.fromkeys(f.name for n in self.graph_nodes for f in n.fields if f.name)
        return ", ".join(names) or "(none: no node defines fields)"

    def all_fields(self) -> list[str]:
        return [f.name for n in self.graph_nodes for f in n.fields if f.name]

    def available_at(self, node: _Node, owners: Iterable[tuple[_Node, _Field]]) -> bool:
        """Whether one of ``owners`` has a value by the time ``node`` runs."""
        upstream = self.ancestors(node.name or "")
        for owner, fld in owners:
            if fld.spec is not None and fld.spec.source in (
                FieldSource.PREDEFINED,
                FieldSource.STATIC,
            ):
                return True  # seed data and fixed content exist from the start
            if owner.name in upstream:
                return True
        return False

    def field_specs(self) -> dict[str, FieldSpec | None]:
        """Every field name of the pipeline with its spec (None where the field is invalid)."""
        if self._field_specs is None:
            self._field_specs = {}
            for n in self.graph_nodes:
                for f in n.fields:
                    if f.name is not None:
                        self._field_specs.setdefault(f.name, f.spec)
        return self._field_specs

    def unknown_field(self, name: str) -> str:
        """The end of a message about ``name``, which is not a field: a suggestion and the list."""
        if name in self.by_name:
            return (
                f"; '{name}' is a node, not a field: name one of its fields (known fields: "
                f"{self.known_fields()})"
            )
        return f"{_suggest(name, self.all_fields())}; known fields: {self.known_fields()}"

    def upstream_problem(self, node: _Node, name: str, *, own: bool, when: str) -> str | None:
        """Why field ``name`` has no value ``when`` something of ``node`` runs, or None.

        The reason is a phrase naming the field (``'x', filled by 'y', which does not come
        before this node``). ``own``: the node's own fields have values too (they do after its
        submission).
        """
        owners = self.field_owners(name)
        if not owners or self.available_at(node, owners):
            return None
        if own and any(owner is node for owner, _ in owners):
            return None
        if any(owner is node for owner, _ in owners):
            return f"'{name}', a field of this same node, which has no value yet {when}"
        where = ", ".join(f"'{n.name}'" for n, _ in owners)
        return f"'{name}', filled by {where}, which does not come before this node"


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
