"""The prompt sandbox: nothing is computed while a template compiles or is checked, what a
template builds when it renders is capped, and it reads task data only."""

from __future__ import annotations

import time

import pytest
from temporalio.exceptions import ApplicationError

from activities.llm import INVALID_PROMPT_TEMPLATE, render_template
from workflows import templates
from workflows.templates import SANDBOX

HUGE = [
    "{{ 9 ** 4000000 }}",
    "{{ (9 ** 9) ** (9 ** 9) }}",
    "{{ (9 ** 999) ** 999 }}",
    "{{ 'a' * 9999999999 }}",
    "{{ [1] * 9999999999 }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ 'a' | center(2000000000) }}",
    "{{ '%0999999999d' | format(1) }}",
    "{{ 'x'.ljust(2000000000) }}",
    "{{ '{:999999999}'.format(1) }}",
    "{{ '{x:999999999}'.format_map({'x': 1}) }}",
    "{{ text.replace('a', text * 1000).replace('a', text * 1000) }}",
    "{{ text | replace('a', text * 1000) | replace('a', text * 1000) }}",
    "{{ ([1] * 1000000) | join(text * 1000) }}",
    "{{ (((text * 1000) ~ '\n') * 900) | indent(text * 1000) }}",
]


@pytest.mark.parametrize("source", HUGE)
def test_checking_a_template_computes_nothing(source: str) -> None:
    # Jinja folds constant expressions while compiling; 9 ** 4000000 took 3.3 s of the API's
    # event loop, (9 ** 9) ** (9 ** 9) never finished.
    started = time.perf_counter()
    parsed = SANDBOX.parse(source)
    templates.undeclared_names(parsed)
    templates.internal_reads(parsed)
    templates.refused_constants(parsed)
    # Unguarded, these take seconds to forever; the bound only tells "stopped" from "ran" and
    # leaves room for a loaded machine.
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("source", HUGE)
def test_rendering_a_huge_value_is_refused_at_once(source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ApplicationError) as info:
        render_template(source, {"text": "a" * 1000})
    assert info.value.type == INVALID_PROMPT_TEMPLATE and info.value.non_retryable
    assert "stopped by the sandbox" in str(info.value)
    assert time.perf_counter() - started < 5.0  # stopped, not run (a loaded machine is slow)


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        ("{{ 9 ** 4000000 }}", "exponent 4000000 is too large"),
        ("{{ (9 ** 9) ** (9 ** 9) }}", "exponent 387420489 is too large"),
        ("{{ 'a' * 9999999999 }}", "items long"),
        ("{{ '%0999999999d' % 1 }}", "format width or precision"),
        ("{{ 2 ** 10 * 3 - -1 }} {{ 1 / 0 }} {{ text * 2 }}", None),
    ],
)
def test_constant_arithmetic_the_renderer_would_refuse_is_found_at_check(
    source: str, refused: str | None
) -> None:
    found = templates.refused_constants(SANDBOX.parse(source))
    if refused is None:
        assert found == []
    else:
        [reason] = found
        assert refused in reason


def test_internals_and_names_are_found_without_rendering() -> None:
    parsed = SANDBOX.parse(
        "{{ text.__class__ }} {{ lipsum.__globals__ }} {{ x['_y'] }} {{ f.mro }} "
        "{{ g | attr('__init__') }} {{ ok.label }} {% for line in lines %}{{ line }}{% endfor %}"
    )
    assert templates.internal_reads(parsed) == [
        "text.__class__",
        "lipsum.__globals__",
        "x['_y']",
        "f.mro",
        "g | attr('__init__')",
    ]
    assert templates.undeclared_names(parsed) == {"text", "lipsum", "x", "f", "g", "ok", "lines"}


def test_templates_have_no_globals() -> None:
    assert SANDBOX.globals == {}
    with pytest.raises(ApplicationError, match="does not have"):
        render_template("{{ range(3) | list }}", {})


def test_ordinary_templates_render_as_before() -> None:
    source = (
        "{% for line in text.splitlines() %}{{ loop.index }}: {{ line | upper }}\n{% endfor %}"
        "{{ '%s!' % name }} {{ '{}-{}'.format(1, 2) }} {{ ', '.join(tags) }} {{ 3 * 4 }} "
        "{{ [1, 2] + [3] }} {{ name | center(9) }}|{{ 2 ** 10 }} {{ 'ab' * 2 }} {{ -n }} "
        "{{ tags | join('/') }} {{ name | replace('x', 'yy') }} {{ text | indent('> ', true) }}"
    )
    out = render_template(source, {"text": "a\nb", "name": "x", "tags": ["p", "q"], "n": 5})
    assert out == "1: A\n2: B\nx! 1-2 p, q 12 [1, 2, 3]     x    |1024 abab -5 p/q yy > a\n> b"


def test_a_loop_repeating_a_long_field_is_stopped_once_the_output_is_too_long() -> None:
    source = "{% for c in text %}{% for d in text %}{{ text }}{% endfor %}{% endfor %}"
    started = time.perf_counter()
    with pytest.raises(ApplicationError, match="rendered text is over"):
        render_template(source, {"text": "a" * 10_000})  # 10 ** 12 characters otherwise
    assert time.perf_counter() - started < 2
