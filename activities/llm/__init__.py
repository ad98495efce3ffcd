"""The LLM activities: render a prompt, call the model through litellm, validate the output.

``LlmActivities.call_llm`` fills an ``llm`` node's fields:

1. Render ``spec.system`` and ``spec.prompt`` as Jinja2 templates over the task data in a sandbox
   (no access to Python internals, no eval). A broken template can never succeed, so it fails
   at once with a non-retryable ``InvalidPromptTemplate``.
2. Ask for the bare value (one field) or a JSON object with exactly the field names (several
   fields, with the provider's JSON mode when it has one), describing each field's type and
   limits so the model can comply. With ``structured_output`` and a model that supports it, the
   JSON object is constrained by a JSON schema built from the fields (:func:`json_schema_for`).
3. Call ``litellm.acompletion(..., num_retries=0)``: Temporal owns retries, so every attempt is
   visible in the workflow's history. Provider errors become ``ApplicationError`` s whose type is
   the litellm exception's class name; errors that cannot succeed on retry (bad key, unknown
   model, bad request, prompt too long) are non-retryable and name the fix.
4. Validate the output against the field specs (``workflows.forms``). Invalid output retries
   (the model may do better) until attempt ``MAX_OUTPUT_ATTEMPTS``, then fails for good.

``LlmActivities.judge_llm`` runs one LLM judge the same way (see :func:`run_judge`, which a bulk
evaluation calls directly) and returns an :class:`~workflows.messages.EvaluationRecord`.

Every attempt of either activity, successful or not, writes one ``llm_calls`` row for LLM
Analytics (model, tokens, cost, latency, outcome, error class; never prompts, completions or
keys). Recording is best effort: a store failure is logged and never fails the call.

API keys come from :class:`LlmSettings` (the worker's environment) or litellm's own provider
variables (``OPENAI_API_KEY``…); never from workflow input, and never into messages or logs.

``model: conveyor/offline`` (:data:`OFFLINE_MODEL`) is a clearly labelled fake model for demos and

The package is this public face over private modules, each one concern: ``_settings``,
``_prompt`` (sandboxed templates, output instructions, chat messages), ``_schema`` (structured
output), ``_output`` (parsing and validation), ``_offline`` (the demo model), ``_provider``
(provider error rules), ``_usage`` (tokens and cost), ``_completion`` (one litellm call),
``_errors`` (our error types), ``_records`` (``llm_calls`` rows, written by ``store.llm_calls``),
``_fields`` and ``_judge`` (one attempt of each activity) and ``_activities``. litellm is
imported through ``_litellm`` only. ``complete``, ``completion_kwargs``, ``field_line``,
``offline_value``, ``supports_json_mode`` and ``Usage`` are the building blocks the seeder's LLM
source (``activities.seeding``) shares with the activities.
"""

from activities.llm._activities import LlmActivities
from activities.llm._completion import complete, completion_kwargs
from activities.llm._errors import (
    INVALID_LLM_REQUEST,
    INVALID_PROMPT_TEMPLATE,
    LLM_OUTPUT_INVALID,
    MAX_OUTPUT_ATTEMPTS,
)
from activities.llm._judge import judge_fields, run_judge
from activities.llm._offline import OFFLINE_LABEL, OFFLINE_MODEL, offline_answer, offline_value
from activities.llm._output import parse_output
from activities.llm._prompt import build_messages, field_line, output_instructions, render_template
from activities.llm._records import RECORD_TIMEOUT_SECONDS
from activities.llm._schema import json_schema_for, supports_json_mode, supports_structured_output
from activities.llm._settings import LlmSettings
from activities.llm._usage import Usage

__all__ = [
    "INVALID_LLM_REQUEST",
    "INVALID_PROMPT_TEMPLATE",
    "LLM_OUTPUT_INVALID",
    "MAX_OUTPUT_ATTEMPTS",
    "OFFLINE_LABEL",
    "OFFLINE_MODEL",
    "RECORD_TIMEOUT_SECONDS",
    "LlmActivities",
    "LlmSettings",
    "Usage",
    "build_messages",
    "complete",
    "completion_kwargs",
    "field_line",
    "json_schema_for",
    "judge_fields",
    "offline_answer",
    "offline_value",
    "output_instructions",
    "parse_output",
    "render_template",
    "run_judge",
    "supports_json_mode",
    "supports_structured_output",
]
