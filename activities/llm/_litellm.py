"""litellm, imported once with the worker's settings applied before and after the import.

Every module of this package takes ``litellm`` from here (``from activities.llm._litellm import
litellm``), never with a bare ``import litellm``, so that the settings below hold whichever
module is imported first.
"""

import logging
import os

# Without this, importing litellm downloads its model price map from GitHub; workers often have
# no internet access, and start-up must not depend on (or hang on) the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

# litellm prints "Provider List: https://…" banners on every error; our errors say it better.
litellm.suppress_debug_info = True

# litellm's DEBUG records quote whole requests, rendered prompts included, and its INFO records
# repeat a line per call that our own "LLM call" line already says. A worker that logs at DEBUG
# (to trace Temporal, say) must still not write prompts to its logs, so litellm's own loggers
# stop at WARNING unless LITELLM_LOG asks for more on purpose.
if not os.environ.get("LITELLM_LOG"):
    for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(_name).setLevel(logging.WARNING)

__all__ = ["litellm"]
