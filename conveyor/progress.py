"""A progress line on a terminal for long CLI operations (export, delete, import, evaluate)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``progress(done, total)`` that draws e.g. ``exported 12,000 / 50,000 rows`` on stderr.

    Draws only when the stream is a terminal, at most ten times a second (and always the
    last update); :meth:`close` ends the line. Usable as a context manager.
    """

    def __init__(self, verb: str, unit: str = "rows", stream: TextIO | None = None):
        self.verb = verb
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._drawn = False
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        percent = f" ({100 * done // total}%)" if total else ""
        line = f"\r{self.verb} {done:,} / {total:,} {self.unit}{percent}"
        self.stream.write(line + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
