"""Text for the Temporal UI's markdown summaries (``workflow.set_current_details``).

Anything a user or a payload can choose — task keys, names, tags, reasons, error messages — goes
through :func:`md`, so that it shows as typed and never as markup or HTML.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>=:])")


def md(text: object, limit: int = 300) -> str:
    """``text`` as literal markdown: one line, HTML and markdown syntax escaped, at most
    ``limit`` characters before escaping."""
    value = " ".join(str(text).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return _SPECIAL.sub(r"\\\1", value)
