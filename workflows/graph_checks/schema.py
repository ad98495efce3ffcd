"""The schema pass: the pydantic errors of a definition as problems naming the node, the field
and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from workflows.graph import (
    Aggregation,
    AgreementRule,
    ChainSpec,
    ChainTrigger,
    ConsensusField,
    ConsensusSpec,
    Disagreement,
    EvaluatorKind,
    EvaluatorMode,
    EvaluatorSpec,
    FieldSource,
    FieldSpec,
    FieldType,
    GateBranch,
    JudgeOutput,
    JudgeSpec,
    LimitAction,
    LlmSpec,
    NodeKind,
    NodeSpec,
    PiiKind,
    Pipeline,
    RejectionRouting,
    ServeOrder,
    TieRule,
    parse_duration,
)
from workflows.graph_checks.core import _CheckerCore, _suggest
from workflows.graph_checks.skeleton import PIPELINE

# Which model a pydantic error location points into, for "unknown setting" suggestions.
_SETTINGS_OF: dict[str, type[BaseModel]] = {
    "pipeline": Pipeline,
    "node": NodeSpec,
    "field": FieldSpec,
    "llm": LlmSpec,
    "branch": GateBranch,
    "evaluator": EvaluatorSpec,
    "judge": JudgeSpec,
    "chain": ChainSpec,
    "consensus": ConsensusSpec,
    "consensus rule": ConsensusField,
}

_ENUM_NOUNS: dict[str, tuple[str, Sequence[str]]] = {
    "kind": ("node kind", [k.value for k in NodeKind]),
    "type": ("field type", [t.value for t in FieldType]),
    "source": ("field source", [s.value for s in FieldSource]),
    "rejection_routing": ("rejection routing", [r.value for r in RejectionRouting]),
    "on_limit": ("limit action", [a.value for a in LimitAction]),
}

# The same key names another enum inside an evaluator or its judge.
_SCOPED_ENUM_NOUNS: dict[tuple[str, str], tuple[str, Sequence[str]]] = {
    ("evaluator", "kind"): ("evaluator kind", [k.value for k in EvaluatorKind]),
    ("evaluator", "mode"): ("evaluator mode", [m.value for m in EvaluatorMode]),
    ("evaluator", "pii"): ("pii kind", [k.value for k in PiiKind]),
    ("judge", "output"): ("judge output", [o.value for o in JudgeOutput]),
    ("chain", "trigger"): ("chain trigger", [t.value for t in ChainTrigger]),
    ("consensus", "on_disagreement"): ("disagreement action", [d.value for d in Disagreement]),
    ("consensus", "serve"): ("serve order", [s.value for s in ServeOrder]),
    ("consensus rule", "agreement"): ("agreement rule", [r.value for r in AgreementRule]),
    ("consensus rule", "aggregate"): ("aggregation", [a.value for a in Aggregation]),
    ("consensus rule", "tie"): ("tie rule", [t.value for t in TieRule]),
}


_NAME_RULES = {
    "pipeline": "use letters, digits, '.', '_' and '-', starting with a letter or digit",
    "node": "use letters, digits, '_' and '-', starting with a letter or '_'",
    "field": (
        "use letters, digits and '_', starting with a letter or '_' "
        "(conditions and templates refer to fields by name)"
    ),
    "evaluator": (
        "use letters, digits and '_', starting with a letter or '_' "
        "(results are grouped by the evaluator's name)"
    ),
}


class _SchemaChecks(_CheckerCore):
    def prepare(self) -> dict[str, Any]:
        """A copy of the raw definition with ``claim_timeout`` resolved.

        The model converts ``claim_timeout`` itself, but a bad duration there would stop
        pydantic before it looks at any node; resolving it here keeps every error visible.
        """
        data = dict(self.raw)
        if "claim_timeout" in data:
            value = data.pop("claim_timeout")
            if "claim_timeout_seconds" in data:
                self.report.add(
                    PIPELINE,
                    "both claim_timeout and claim_timeout_seconds are set; keep one of them",
                )
            else:
                try:
                    data["claim_timeout_seconds"] = parse_duration(value)
                except ValueError as exc:
                    self.report.add(PIPELINE, str(exc))
        return data

    def translate(self, error: Mapping[str, Any]) -> None:
        """Turn one pydantic error into a Problem naming the node and field."""
        loc = list(error["loc"])
        node_i = fld_i = -1
        scope = "pipeline"
        where = PIPELINE
        if len(loc) >= 2 and loc[0] == "chains" and isinstance(loc[1], int):
            node_i, where = len(self.nodes) + loc[1], self.chain_where(loc[1])
            loc, scope = loc[2:], "chain"
        elif len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
            node_i, loc, scope = loc[1], loc[2:], "node"
            where = self.where(node_i)
            if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int):
                fld_i, loc, scope = loc[1], loc[2:], "field"
                where = self.where(node_i, fld_i)
            elif len(loc) >= 2 and loc[0] == "evaluators" and isinstance(loc[1], int):
                where, fld_i = self.evaluator_where(node_i, loc[1])
                loc, scope = loc[2:], "evaluator"
                if loc[:1] == ["judge"]:
                    scope = "judge"
        prefix = ""
        if scope == "node" and len(loc) >= 2 and loc[0] == "branches" and isinstance(loc[1], int):
            prefix, loc, scope = f"branch {loc[1] + 1}: ", loc[2:], "branch"
        if scope == "field" and loc[:1] == ["llm"]:
            scope = "llm"
        if scope == "node" and loc[:1] == ["consensus"]:
            # The path keeps its consensus prefix; the scope names the settings allowed there.
            rule = len(loc) >= 4 and loc[1] == "rules"
            scope = "consensus rule" if rule else "consensus"
        message = prefix + _describe(error, loc, scope)
        self.report.add(where, message, node_i, fld_i)


# --- structural errors -----------------------------------------------------------------------


def _path(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: Mapping[str, Any], loc: Sequence[Any], scope: str) -> str:
    """A readable message for one pydantic error at ``loc`` inside ``scope``."""
    kind = error["type"]
    value = error.get("input")
    key = loc[-1] if loc else None
    path = _path(loc)
    if kind == "missing":
        return f"missing required setting '{path}'"
    if kind == "extra_forbidden":
        allowed = list(_SETTINGS_OF[scope].model_fields)
        if scope == "pipeline":
            allowed.append("claim_timeout")
        suggestion = _suggest(str(key), allowed)
        return f"unknown setting '{path}'" + (
            suggestion or f"; allowed settings: {', '.join(allowed)}"
        )
    # A list item's key is its index; the enum is named by the list (pii: [emial]).
    enum_key = loc[-2] if isinstance(key, int) and len(loc) >= 2 else key
    nouns = _SCOPED_ENUM_NOUNS.get((scope, str(enum_key)))
    if nouns is None and scope not in ("evaluator", "judge", "consensus", "consensus rule"):
        nouns = _ENUM_NOUNS.get(str(enum_key))
    if kind == "enum" and nouns is not None:
        noun, choices = nouns
        suggestion = _suggest(str(value), choices)
        return f"unknown {noun} '{value}'{suggestion}; use one of: {', '.join(choices)}"
    if kind == "string_pattern_mismatch" and key == "match" and scope == "evaluator":
        return f"match {value!r} is not allowed; use any, all or none"
    if kind == "string_pattern_mismatch" and key == "to" and scope == "chain":
        return f"chain target {value!r} is not a pipeline name; {_NAME_RULES['pipeline']}"
    if kind == "string_pattern_mismatch" and key == "name" and scope in _NAME_RULES:
        return f"{scope} name {value!r} is not allowed; {_NAME_RULES[scope]}"
    if kind == "list_type" and key == "next" and isinstance(value, str):
        return f"setting 'next' must be a list of node names, e.g. next: [{value}]"
    if kind in ("model_type", "dict_type") and not loc:
        return {
            "node": "each node must be a mapping with at least name and kind",
            "field": "each field must be a mapping with at least name and type",
            "branch": "each branch must be a mapping with when and to",
            "evaluator": "each evaluator must be a mapping with at least name, kind and fields",
            "chain": "each chain must be a mapping with at least to (the target pipeline)",
        }.get(scope, f"expected a mapping, got {type(value).__name__}")
    message = f"setting '{path}': {error['msg']}" if path else error["msg"]
    if kind == "string_type" and isinstance(value, bool):
        # YAML 1.1 reads yes/no/on/off as booleans, a classic surprise in option lists.
        message += " (YAML reads yes/no/on/off/true/false as booleans; put it in quotes)"
    return message
