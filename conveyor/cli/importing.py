"""Creating tasks from files on the command line: ``task import`` and ``task template``.

``starter.py`` adds both to its ``task`` group with :func:`register`::

    python starter.py task template --pipeline label-review --key-column id > labels.csv
    python starter.py task import --pipeline label-review --file labels.csv --key-column id

``--pipeline`` is an applied pipeline's name (tasks get its current version) or a pipeline file
(YAML or JSON). While the pipeline is Paused its new tasks start Paused; a Draft, Completed or
Archived pipeline takes none (a template or a ``--dry-run`` works in any status).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conveyor.bulk import ProgressBar
from conveyor.cli.common import CliError, connect_conveyor
from conveyor.cli.pipeline import creation_target
from conveyor.client import ConveyorClient, UnknownPipeline
from conveyor.creation import DEFAULT_CONCURRENCY, MAX_ROWS_PER_CALL
from conveyor.importing import (
    DEFAULT_BATCH_SIZE,
    IMPORT_FORMATS,
    CreationFailed,
    ImportReport,
    csv_template,
    detect_format,
    import_file,
)
from conveyor.pipelines import load_pipeline_file
from workflows.graph import Pipeline

EXIT_REJECTED = 1


def register(tsub: argparse._SubParsersAction) -> None:
    """Add ``import`` and ``template`` to the CLI's ``task`` subcommands."""
    imp = tsub.add_parser(
        "import", help="create one task per row of a CSV, JSON or JSON Lines file"
    )
    _add_pipeline(imp)
    imp.add_argument("--file", required=True, type=Path, help="a .csv, .json or .jsonl file")
    imp.add_argument("--format", choices=IMPORT_FORMATS, help="default: from the file's ending")
    imp.add_argument("--key-column", help="the column holding each task's key")
    imp.add_argument(
        "--rejects",
        type=Path,
        help="where bad rows go (default: next to the file, e.g. data.rejects.csv)",
    )
    imp.add_argument(
        "--state-file",
        type=Path,
        help="save progress here; rerun with the same file to continue after an interruption",
    )
    imp.add_argument("--paused", action="store_true", help="start the tasks Paused")
    imp.add_argument(
        "--concurrency", type=_positive, default=DEFAULT_CONCURRENCY, help="starts in flight"
    )
    imp.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per batch (at most {MAX_ROWS_PER_CALL:,})",
    )
    imp.add_argument("--dry-run", action="store_true", help="only check the rows; create nothing")
    imp.set_defaults(handler=cmd_task_import)

    tpl = tsub.add_parser("template", help="print a CSV template: the header and an example row")
    _add_pipeline(tpl)
    tpl.add_argument("--key-column", help="add a key column of this name")
    tpl.set_defaults(handler=cmd_task_template)


def _add_pipeline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline",
        required=True,
        metavar="NAME_OR_FILE",
        help="an applied pipeline's name, or a pipeline file (YAML or JSON)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _batch_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_ROWS_PER_CALL:
        raise argparse.ArgumentTypeError(f"at most {MAX_ROWS_PER_CALL:,}, not {value:,}")
    return value


async def _definition(reference: str) -> Pipeline:
    """The pipeline in a file, or an applied pipeline's current version (in any status: a
    template or a dry run creates nothing, so a Draft pipeline's data can be prepared)."""
    if Path(reference).is_file():
        return load_pipeline_file(reference)
    conveyor = await connect_conveyor()
    try:
        view = await conveyor.describe_pipeline(reference)
    except UnknownPipeline as err:
        raise CliError(f"{err} (--pipeline takes a pipeline name or a definition file)") from None
    if view.current is None:
        raise CliError(f"pipeline {reference!r} has no version yet; apply its definition first")
    return view.current


async def cmd_task_template(args: argparse.Namespace) -> int:
    pipeline = await _definition(args.pipeline)
    sys.stdout.write(csv_template(pipeline, args.key_column))
    return 0


async def cmd_task_import(args: argparse.Namespace) -> int:
    source: Path = args.file
    if not source.is_file():
        raise CliError(f"{source}: no such file; check the path")
    fmt = detect_format(source, args.format)
    conveyor: ConveyorClient | None = None
    if args.dry_run:
        pipeline, paused = await _definition(args.pipeline), False
    else:
        # A name gives the current version; a file is used as given. Either way an applied
        # pipeline's status rules: none are created unless it is Active or Paused.
        conveyor = await connect_conveyor()
        target = await creation_target(conveyor, args.pipeline)
        pipeline, paused = target.pipeline, target.start_paused
    rejects = args.rejects or source.with_name(
        f"{source.stem}.rejects.{'csv' if fmt == 'csv' else 'jsonl'}"
    )

    def resumed(rows: int, line: int) -> None:
        print(
            f"resuming import after line {line:,} ({rows:,} rows done by an earlier run)",
            file=sys.stderr,
        )

    with ProgressBar("checked" if args.dry_run else "imported", unit="bytes") as bar:
        try:
            report = await import_file(
                conveyor,
                pipeline,
                source,
                fmt=fmt,
                key_column=args.key_column,
                start_paused=args.paused or paused,
                rejects=rejects,
                state_file=args.state_file,
                progress=bar,
                batch_size=args.batch_size,
                concurrency=args.concurrency,
                dry_run=args.dry_run,
                on_resume=resumed,
            )
        except CreationFailed as err:
            raise CliError(str(err)) from None
    print(summary(report, pipeline.name))
    return 0 if report.ok else EXIT_REJECTED


def summary(report: ImportReport, pipeline: str) -> str:
    """``imported data.csv into label-review: created 10, already there 2, rejected 1 ...``."""
    if report.dry_run:
        line = (
            f"checked {report.path} against {pipeline}: {report.rows:,} row(s), "
            f"{report.valid:,} valid, rejected {report.rejected:,}"
        )
    else:
        line = (
            f"imported {report.path} into {pipeline}: created {report.created:,}, "
            f"already there {report.existed:,}, rejected {report.rejected:,}"
        )
        if report.errors:
            line += f", failed to start {report.errors:,} (run the import again to retry them)"
    if report.resumed_rows:
        line += f" ({report.resumed_rows:,} rows by an earlier run)"
    if report.rejects_path is not None:
        line += f"\nrejected rows, with line, column and reason: {report.rejects_path}"
    return line
