"""Small pipelines built in code, so each test states exactly the graph it exercises."""

from __future__ import annotations

from typing import Any

from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline


def label_review(name: str = "label-review", **review: Any) -> Pipeline:
    """start -> label (labeler) -> check (reviewer review) -> end, with review overrides."""
    check: dict[str, Any] = {
        "name": "check",
        "kind": "review",
        "roles": ["reviewer"],
        "max_rereviews": 2,
        "next": ["end"],
    }
    check.update(review)
    return validate_pipeline(
        {
            "name": name,
            "claim_timeout": "30m",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["label"]},
                {
                    "name": "label",
                    "kind": "subtask",
                    "roles": ["labeler"],
                    "fields": [
                        {"name": "text", "type": "long_text", "source": "predefined"},
                        {
                            "name": "label",
                            "type": "select",
                            "options": ["positive", "negative", "neutral"],
                        },
                        {"name": "notes", "type": "long_text", "required": False},
                    ],
                    "next": ["check"],
                },
                check,
                {"name": "end", "kind": "end"},
            ],
        }
    )


def gate_and_join() -> Pipeline:
    """A gate (urgent -> escalate_note, else N/A) and a fan-out + join."""
    return validate_pipeline(
        {
            "name": "gate-join",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["triage"]},
                {
                    "name": "triage",
                    "kind": "subtask",
                    "fields": [
                        {"name": "ticket", "type": "long_text", "source": "predefined"},
                        {
                            "name": "priority",
                            "type": "select",
                            "options": ["urgent", "normal"],
                        },
                    ],
                    "next": ["route"],
                },
                {
                    "name": "route",
                    "kind": "gate",
                    "branches": [{"when": "priority == 'urgent'", "to": "urgent_note"}],
                    "default": "fanout",
                },
                {
                    "name": "urgent_note",
                    "kind": "subtask",
                    "fields": [{"name": "note", "type": "short_text"}],
                    "next": ["fanout"],
                },
                {
                    "name": "fanout",
                    "kind": "subtask",
                    "fields": [{"name": "summary", "type": "short_text"}],
                    "next": ["left", "right"],
                },
                {
                    "name": "left",
                    "kind": "subtask",
                    "fields": [{"name": "left_score", "type": "rating"}],
                    "next": ["join"],
                },
                {
                    "name": "right",
                    "kind": "subtask",
                    "fields": [{"name": "right_score", "type": "rating"}],
                    "next": ["join"],
                },
                {
                    "name": "join",
                    "kind": "subtask",
                    "fields": [{"name": "verdict", "type": "boolean"}],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


def llm_then_edit(model: str, api_base: str | None = None) -> Pipeline:
    """An LLM node drafting an answer, a person editing it, a review."""
    llm: dict[str, Any] = {
        "model": model,
        "system": "You answer support questions briefly.",
        "prompt": "Question: {{ question }}",
    }
    if api_base:
        llm["api_base"] = api_base
    return validate_pipeline(
        {
            "name": "llm-edit",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["draft"]},
                {
                    "name": "draft",
                    "kind": "subtask",
                    "fields": [
                        {"name": "question", "type": "long_text", "source": "predefined"},
                        {"name": "draft_answer", "type": "long_text", "source": "llm", "llm": llm},
                    ],
                    "next": ["edit"],
                },
                {
                    "name": "edit",
                    "kind": "subtask",
                    "fields": [{"name": "answer", "type": "long_text", "prefill": "draft_answer"}],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )
