"""Fields: unique names, each field's settings, prefills, human ratings and llm field groups."""

from __future__ import annotations

from workflows.evaluators import HUMAN_RATING_TYPES
from workflows.graph import FieldSource, FieldSpec, FieldType, LlmSpec
from workflows.graph_checks.core import _suggest
from workflows.graph_checks.skeleton import _HUMAN_KINDS, _Field, _Node
from workflows.graph_checks.templates import _TemplateChecks

_OPTION_TYPES = frozenset(
    {FieldType.SELECT, FieldType.MULTI_SELECT, FieldType.RANKING, FieldType.PAIRWISE}
)
_RANGE_TYPES = frozenset(
    {FieldType.NUMBER, FieldType.INTEGER, FieldType.RATING, FieldType.MULTI_SELECT}
)
_LENGTH_TYPES = frozenset(
    {FieldType.SHORT_TEXT, FieldType.LONG_TEXT, FieldType.CODE, FieldType.URL}
)


class _FieldChecks(_TemplateChecks):
    def check_fields(self) -> None:
        first_seen: dict[str, tuple[_Node, _Field]] = {}
        for node in self.nodes:
            if node.kind not in _HUMAN_KINDS:
                continue
            for fld in node.fields:
                if fld.name is not None:
                    self.check_unique(node, fld, first_seen)
                if fld.spec is not None:
                    for message in _field_problems(fld.spec):
                        self.field_problem(node, fld, message)
                    if fld.spec.prefill is not None and fld.spec.source == FieldSource.INPUT:
                        prefill = self.prefill_problem(node, fld.spec.prefill)
                        if prefill:
                            self.field_problem(node, fld, prefill)
                    if fld.spec.llm is not None and fld.spec.source == FieldSource.LLM:
                        for what, source in (
                            ("llm system", fld.spec.llm.system),
                            ("llm prompt", fld.spec.llm.prompt),
                        ):
                            for message in self.template_problems(node, source, what, own=False):
                                self.field_problem(node, fld, message)
                    if fld.spec.evaluates and fld.spec.source == FieldSource.INPUT:
                        for message in self.rating_problems(node, fld.spec):
                            self.field_problem(node, fld, message)

    def check_unique(
        self, node: _Node, fld: _Field, first_seen: dict[str, tuple[_Node, _Field]]
    ) -> None:
        assert fld.name is not None
        earlier = first_seen.setdefault(fld.name, (node, fld))
        if earlier == (node, fld):
            return
        other_node, other = earlier
        # The same predefined column may be shown on several nodes (e.g. the text to label,
        # again for its reviewer); it is one value of the task's seed data.
        if (
            fld.spec is not None
            and other.spec is not None
            and fld.spec.source == other.spec.source == FieldSource.PREDEFINED
        ):
            if fld.spec.type != other.spec.type:
                self.field_problem(
                    node,
                    fld,
                    f"predefined field '{fld.name}' is declared as {other.spec.type.value} on "
                    f"node '{other_node.name}' and as {fld.spec.type.value} here; use one type",
                )
            return
        owner = "this node" if other_node is node else f"node '{other_node.name}'"
        self.field_problem(
            node,
            fld,
            f"field name '{fld.name}' is already used by {owner}; field names must be unique "
            "across the pipeline (conditions and templates refer to fields by name)",
        )

    def rating_problems(self, node: _Node, spec: FieldSpec) -> list[str]:
        """Problems with the fields a human rating field ``evaluates``."""
        problems: list[str] = []
        for name in spec.evaluates or []:
            if name == spec.name:
                problems.append(
                    f"evaluates names the field itself ('{name}'); name the fields this rating "
                    "is about"
                )
            elif not self.field_owners(name):
                problems.append(
                    f"evaluates '{name}', which is not a field of this pipeline"
                    f"{self.unknown_field(name)}"
                )
            else:
                reason = self.upstream_problem(node, name, own=True, when="at submission")
                if reason:
                    problems.append(
                        f"evaluates {reason}; rate fields of this node or of upstream nodes"
                    )
        return problems

    def check_groups(self, node: _Node) -> None:
        """LLM fields of one group share one model call, so their settings must be equal."""
        first_of: dict[str, tuple[_Field, LlmSpec]] = {}
        for fld in node.fields:
            spec = fld.spec
            if spec is None or spec.group is None or spec.llm is None:
                continue
            if spec.source != FieldSource.LLM:
                continue  # reported by the field's own checks
            first, llm = first_of.setdefault(spec.group, (fld, spec.llm))
            if first is fld or llm == spec.llm:
                continue
            differ = [
                key for key in LlmSpec.model_fields if getattr(llm, key) != getattr(spec.llm, key)
            ]
            self.field_problem(
                node,
                fld,
                f"field '{fld.name}' is in group '{spec.group}' with '{first.name}', but their "
                f"llm settings differ ({', '.join(differ)}); one model call fills a group, so "
                "give its fields identical llm settings (or a different group)",
            )

    def prefill_problem(self, node: _Node, source: str) -> str | None:
        owners = self.field_owners(source)
        if not owners:
            return (
                f"prefill names '{source}', which is not a field of this pipeline"
                f"{_suggest(source, self.all_fields())}; known fields: {self.known_fields()}"
            )
        if self.available_at(node, owners):
            return None
        where = ", ".join(f"'{n.name}'" for n, _ in owners)
        return (
            f"prefill names '{source}' of {where}, which does not come before this node; "
            "prefill from a field filled upstream"
        )


# --- field settings --------------------------------------------------------------------------


def _field_problems(spec: FieldSpec) -> list[str]:
    """Problems with one field's settings that pydantic cannot see on its own."""
    problems: list[str] = []
    ftype = spec.type.value
    if spec.options is not None and spec.type not in _OPTION_TYPES:
        problems.append(f"setting 'options' does not apply to {ftype} fields")
    if spec.allow_tie and spec.type != FieldType.PAIRWISE:
        problems.append(f"setting 'allow_tie' does not apply to {ftype} fields")
    for key in ("min", "max"):
        if getattr(spec, key) is not None and spec.type not in _RANGE_TYPES:
            problems.append(f"setting '{key}' does not apply to {ftype} fields")
    for key in ("min_length", "max_length"):
        if getattr(spec, key) is not None and spec.type not in _LENGTH_TYPES:
            problems.append(f"setting '{key}' does not apply to {ftype} fields")
    if spec.language is not None and spec.type != FieldType.CODE:
        problems.append(f"setting 'language' does not apply to {ftype} fields")
    problems += _option_problems(spec)
    problems += _range_problems(spec)
    if (
        spec.min_length is not None
        and spec.max_length is not None
        and spec.min_length > spec.max_length
    ):
        problems.append(
            f"min_length {spec.min_length} is greater than max_length {spec.max_length}"
        )
    problems += _source_problems(spec)
    problems += _rating_field_problems(spec)
    return problems


def _option_problems(spec: FieldSpec) -> list[str]:
    if spec.type not in _OPTION_TYPES:
        return []
    options = spec.options or []
    problems: list[str] = []
    if spec.type == FieldType.PAIRWISE:
        if len(options) != 2:
            problems.append(
                f"pairwise fields compare exactly 2 options, got {len(options)}; "
                "list the two items under options"
            )
    elif len(options) < 2:
        problems.append(
            f"{spec.type.value} fields need at least 2 options, got {len(options)}; "
            "list them under options"
        )
    repeated = [o for i, o in enumerate(options) if o in options[:i]]
    for option in dict.fromkeys(repeated):
        problems.append(f"option '{option}' is listed more than once; options must be unique")
    if any(not o.strip() for o in options):
        problems.append("options contains an empty value; remove it")
    return problems


def _range_problems(spec: FieldSpec) -> list[str]:
    problems: list[str] = []
    low, high = spec.min, spec.max
    if spec.type == FieldType.RATING:
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and not float(bound).is_integer():
                problems.append(f"rating {key} must be a whole number, got {bound}")
        # Ratings default to 1..5, so min: 7 alone is as wrong as min: 7, max: 5.
        low = 1 if low is None else low
        high = 5 if high is None else high
    if spec.type == FieldType.MULTI_SELECT:
        count = len(spec.options or [])
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and (bound < 0 or not float(bound).is_integer()):
                problems.append(f"multi_select {key} counts choices; use a whole number >= 0")
        if high is not None and count >= 2 and high > count:
            problems.append(f"max {high:g} is more than the {count} options")
        if high is not None and high < 1:
            problems.append("max must be at least 1, or nothing could be chosen")
    if low is not None and high is not None and low > high:
        problems.append(f"min {low:g} is greater than max {high:g}")
    return problems


def _source_problems(spec: FieldSpec) -> list[str]:
    problems: list[str] = []
    source = spec.source
    if source == FieldSource.LLM and spec.llm is None:
        problems.append(
            "source 'llm' needs an llm setting with a prompt, e.g. "
            "llm: {model: conveyor/offline, prompt: '...'}"
        )
    if source != FieldSource.LLM and spec.llm is not None:
        problems.append(f"setting 'llm' only applies to fields with source: llm (this is {source})")
    if spec.llm is not None and not spec.llm.prompt.strip():
        problems.append("llm prompt is empty; write the prompt template")
    if source == FieldSource.STATIC and spec.value is None:
        problems.append("source 'static' needs a value (the fixed content to show)")
    if source != FieldSource.STATIC and spec.value is not None:
        problems.append(
            f"setting 'value' only applies to static fields (this is {source}); "
            "to seed an input field use prefill"
        )
    if spec.prefill is not None and source != FieldSource.INPUT:
        problems.append(f"setting 'prefill' only applies to input fields (this is {source})")
    if spec.group is not None:
        if source != FieldSource.LLM:
            problems.append(
                f"setting 'group' only applies to fields with source: llm (this is {source})"
            )
        elif not spec.group.strip():
            problems.append("group is empty; name the group or remove the setting")
    return problems


def _rating_field_problems(spec: FieldSpec) -> list[str]:
    """Settings of a human rating field (``evaluates`` / ``criterion``) on their own."""
    problems: list[str] = []
    if spec.evaluates is None:
        if spec.criterion is not None:
            problems.append(
                "setting 'criterion' only applies with evaluates (it names the criterion a "
                "rating is recorded under); add evaluates or remove criterion"
            )
        return problems
    if spec.source != FieldSource.INPUT:
        problems.append(
            "setting 'evaluates' only applies to input fields (a person's rating of other "
            f"fields; this is {spec.source})"
        )
    elif spec.type not in HUMAN_RATING_TYPES:
        allowed = ", ".join(t.value for t in FieldType if t in HUMAN_RATING_TYPES)
        problems.append(
            f"a rating field holds a score or a label, so evaluates needs one of the types "
            f"{allowed} (this is {spec.type.value})"
        )
    if not spec.evaluates:
        problems.append("evaluates is empty; name the fields this rating is about, or remove it")
    repeated = [n for i, n in enumerate(spec.evaluates) if n in spec.evaluates[:i]]
    for name in dict.fromkeys(repeated):
        problems.append(f"evaluates lists '{name}' more than once; list it once")
    if spec.criterion is not None and not spec.criterion.strip():
        problems.append("criterion is empty; name the criterion or remove it (default: the field)")
    return problems
