"""A progress line on a terminal for long CLI operations (export, delete, import, evaluate),
drawn by ``tqdm``."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

_LINE = "{desc} {n:,} / {total:,} {unit}{percent}"


class _Line(tqdm):
    """tqdm with our line: ``exported 12,000 / 50,000 rows (24%)``."""

    monitor_interval = 0  # no monitor thread: the line is drawn by the calls only

    @property
    def format_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = super().format_dict
        total = values["total"]
        # Rounded down: 100% means done.
        values["percent"] = f" ({100 * values['n'] // total}%)" if total else ""
        return values


class ProgressBar:
    """``progress(done, total)`` that draws e.g. ``exported 12,000 / 50,000 rows (24%)`` on stderr.

    Draws only when the stream is a terminal, at most ten times a second (and always the
    last update); :meth:`close` ends the line. Usable as a context manager.
    """

    def __init__(self, verb: str, unit: str = "rows", stream: TextIO | None = None):
        self.verb = verb
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._line: _Line | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._line is None:
            self._line = _Line(
                total=total,
                initial=done,
                desc=self.verb,
                unit=self.unit,
                file=self.stream,
                bar_format=_LINE,
                mininterval=0.1,
                miniters=0,
            )
            return
        self._line.total = total
        self._line.update(done - self._line.n)
        if done >= total:
            self._line.refresh()

    def close(self) -> None:
        if self._line is not None:
            self._line.close()
            self._line = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
