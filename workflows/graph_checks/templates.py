"""Prompt templates (llm fields, judges): their syntax and the fields they read."""

from __future__ import annotations

from jinja2 import TemplateSyntaxError, meta

from workflows import templates
from workflows.graph_checks.core import _CheckerCore
from workflows.graph_checks.skeleton import _Node


class _TemplateChecks(_CheckerCore):
    def template_problems(self, node: _Node, source: str, what: str, *, own: bool) -> list[str]:
        """Problems with one prompt template: its syntax and the variables it reads.

        A template may read seed data (predefined fields) and fields of nodes upstream of
        ``node`` (and, with ``own``, ``node``'s own fields): the task data it is rendered over.
        """
        # Parsed and analysed, never rendered nor folded: see workflows/templates.py.
        try:
            parsed = templates.SANDBOX.parse(source)
            includes = list(meta.find_referenced_templates(parsed))
            internals = templates.internal_reads(parsed)
            refused = templates.refused_constants(parsed)
            names = templates.undeclared_names(parsed)
        except TemplateSyntaxError as exc:
            detail = (exc.message or "invalid syntax").rstrip(".")
            return [f"{what} template has a syntax error on line {exc.lineno}: {detail}; fix it"]
        except RecursionError:
            return [
                f"{what} template nests expressions too deeply (brackets, filters or "
                "operators inside each other) to be checked; write it more simply"
            ]
        problems: list[str] = []
        if includes:
            problems.append(
                f"{what} template uses include, import or extends; a prompt template stands "
                "alone, so write the text into it"
            )
        for read in internals:
            problems.append(
                f"{what} template reads {read}, a Python internal; a template may only read "
                "task data: write the field itself (e.g. {{ text }}) or a key of it "
                "(e.g. {{ text.label }})"
            )
        for reason in refused:
            problems.append(
                f"{what} template computes a value the sandbox refuses: {reason}; write the "
                "value you mean instead of computing it"
            )
        when = "when the judge runs" if own else "when the model runs"
        for name in sorted(names):
            if name in templates.JINJA_GLOBALS and not self.field_owners(name):
                problems.append(
                    f"{what} template uses '{name}', a Jinja global that prompt templates do "
                    "not have; a template may only use seed data and upstream fields, so put "
                    f"the value in a field (known fields: {self.known_fields()})"
                )
                continue
            if not self.field_owners(name):
                problems.append(
                    f"{what} template refers to '{name}', which is not a field of this "
                    f"pipeline{self.unknown_field(name)}"
                )
                continue
            upstream = self.upstream_problem(node, name, own=own, when=when)
            if upstream:
                problems.append(
                    f"{what} template refers to {upstream}; a template may only use seed data "
                    "(predefined fields) and fields filled upstream"
                    + (" or on this node" if own else "")
                )
        return problems
