"""The worker's LLM settings: endpoint, key and timeout from ``CONVEYOR_LLM_*`` variables."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LlmSettings:
    """Worker-wide LLM configuration (``CONVEYOR_LLM_*`` environment variables).

    Attributes:
        api_base: default endpoint for OpenAI-compatible servers (vLLM, Ollama, a proxy); a
            node's own ``llm.api_base`` wins. When set it applies to every model, so leave it
            unset when nodes use hosted providers.
        api_key: key sent with every call. Secret: excluded from ``repr``, never logged or
            returned. When unset, litellm reads the provider's own variable (``OPENAI_API_KEY``,
            ``ANTHROPIC_API_KEY``…).
        timeout_seconds: per-call HTTP timeout; keep the activity's start-to-close timeout above
            it so the provider's timeout, not Temporal's, reports a slow call.
    """

    api_base: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LlmSettings:
        """Read the settings from ``CONVEYOR_LLM_*`` environment variables.

        ``CONVEYOR_LLM_API_BASE``, ``CONVEYOR_LLM_API_KEY`` and ``CONVEYOR_LLM_TIMEOUT_SECONDS``;
        empty values count as unset.

        Args:
            environ: the variables to read; ``os.environ`` by default.

        Raises:
            ValueError: if the timeout is not a positive number.
        """
        env = os.environ if environ is None else environ
        timeout_text = (env.get("CONVEYOR_LLM_TIMEOUT_SECONDS") or "").strip()
        timeout = cls.timeout_seconds
        if timeout_text:
            try:
                timeout = float(timeout_text)
            except ValueError:
                timeout = -1.0
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(
                    f"CONVEYOR_LLM_TIMEOUT_SECONDS={timeout_text!r} is not a positive number of "
                    "seconds; write e.g. 60"
                )
        return cls(
            api_base=(env.get("CONVEYOR_LLM_API_BASE") or "").strip() or None,
            api_key=(env.get("CONVEYOR_LLM_API_KEY") or "").strip() or None,
            timeout_seconds=timeout,
        )
