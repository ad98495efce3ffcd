"""The CLI's progress line: what a terminal shows, and nothing when stderr is not one."""

from __future__ import annotations

import io

from conveyor.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_on_a_terminal() -> None:
    screen = Terminal()
    with ProgressBar("exported", stream=screen) as bar:
        bar(0, 50_000)
        bar(12_000, 50_000)
        bar(49_999, 50_000)  # within a tenth of a second: not drawn
        bar(50_000, 50_000)  # the last update always is
    lines = screen.getvalue().split("\r")
    assert lines[1] == "exported 0 / 50,000 rows (0%)"
    assert lines[-1] == "exported 50,000 / 50,000 rows (100%)\n"
    assert not any("49,999" in line for line in lines)

    screen = Terminal()
    with ProgressBar("deleted", "tasks", stream=screen) as bar:
        bar(0, 0)
        bar.close()  # closing twice ends the line once
    assert screen.getvalue().rstrip(" ").endswith("deleted 0 / 0 tasks\n")
    assert screen.getvalue().count("\n") == 1


def test_percent_is_rounded_down() -> None:
    screen = Terminal()
    with ProgressBar("imported", "bytes", stream=screen) as bar:
        bar(999, 1000)
    assert screen.getvalue().split("\r")[-1] == "imported 999 / 1,000 bytes (99%)\n"


def test_nothing_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressBar("exported", stream=stream) as bar:
        bar(1, 2)
        bar(2, 2)
    assert stream.getvalue() == ""
