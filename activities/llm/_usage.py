"""What one attempt measured: tokens, cost from litellm's price map, latency."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from activities.llm._litellm import litellm
from activities.llm._offline import OFFLINE_MODEL


@dataclass
class Usage:
    """What one attempt measured; filled in as the call goes and recorded however it ends."""

    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0

    def details(self, attempt: int) -> dict[str, Any]:
        """Failure details for an attempt whose output was invalid (the usage still counts)."""
        return {
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "attempt": attempt,
        }


def _usage(response: Any) -> tuple[int | None, int | None]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def _is_priced(model: str) -> bool:
    try:
        litellm.get_model_info(model=model)
    except Exception:
        return False
    return True


def _cost_usd(response: Any, model: str) -> float | None:
    """The call's cost from litellm's price map; None when the price is unknown (never 0)."""
    if model == OFFLINE_MODEL:
        return 0.0  # known to be free: no provider is called
    try:
        cost = litellm.completion_cost(completion_response=response)
    except Exception:
        # Unmapped models raise (litellm.ModelNotMappedError in 1.110): price unknown.
        return None
    if cost is None or not math.isfinite(cost) or cost < 0:
        return None
    if cost == 0 and not _is_priced(model):
        return None  # a 0.0 for a model litellm has no price for means "unknown", not "free"
    return float(cost)
