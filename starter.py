"""Conveyor's command line: ``python starter.py --help``.

A thin CLI over the typed client library (``conveyor/client.py``). Every command that changes a
task goes through its workflow as an update, so the answer (accepted, or why not) is printed at
once; ``--signal`` sends it fire-and-forget instead.

The commands live in ``conveyor/cli/`` (the parser and the exit codes in ``conveyor/cli/main.py``).
This entry adds the two pieces that sit above that layer, which it may not import: ``dev``'s
handler (``conveyor/dev.py``) and the ``user`` and ``api`` commands (``conveyor/server.py``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from conveyor.cli.common import EXIT_FAILED, EXIT_INVALID, EXIT_REJECTED, EXIT_UNAVAILABLE
from conveyor.cli.main import build_parser as build_cli_parser
from conveyor.cli.main import run
from conveyor.cli.tasks import CLI_COMMANDS, cmd_send

__all__ = [
    "CLI_COMMANDS",
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_REJECTED",
    "EXIT_UNAVAILABLE",
    "build_parser",
    "cmd_send",
    "main",
]


async def cmd_dev(args: argparse.Namespace) -> int:
    from conveyor.dev import run_dev

    def port_or_off(value: int | None) -> int | None:
        return -1 if value is None else (value or None)

    return await run_dev(
        port=args.port,
        ui_port=args.ui_port,
        data_dir=Path(args.data_dir),
        demo=not args.no_demo,
        ephemeral=args.ephemeral,
        web_port=args.web_port,
        metrics_port=port_or_off(args.metrics_port),
        app_metrics_port=port_or_off(args.app_metrics_port),
        temporal_address=args.temporal_address,
    )


def build_parser() -> argparse.ArgumentParser:
    from conveyor.server import register as register_api

    return build_cli_parser(dev_handler=cmd_dev, register_api=register_api)


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors become one line on stderr and an exit code (see the README)."""
    return run(build_parser(), argv)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    code = main()
    # Exit without interpreter finalisation: the Temporal client's native runtime can abort
    # the process (SIGABRT) if it is torn down while Python finalises, after the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
