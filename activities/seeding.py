"""The seeder's activities: draw rows from a source and create their tasks; count tasks in flight.

``SeedingActivities.seed_batch`` reads the next rows from the source at the cursor, validates
each against the pipeline's dataset fields (as :mod:`conveyor.creation` does for imports: CSV
cells are read as the field's type), and creates a task per valid row under the key its position
gives (:mod:`workflows.seeder`), through :meth:`conveyor.starting.Starter.creation_target` and
:meth:`~conveyor.starting.Starter.create_task`. It returns the new cursor and one outcome per
row; being positional, a batch repeated from the same cursor creates nothing twice.

Sources:

* **file** — read whole and kept in memory per worker while its size and modification time stay
  the same (large datasets cost memory once per worker). CSV: a header row of dataset fields;
  JSON Lines: one object per line (blank lines are not rows); JSON: one array of objects. Rows
  are numbered from 0 in file order. A missing or unreadable file, or a whole pass over the file
  without a valid row, fails the seeder (``SeedSourceFailed``).
* **generator** — imported and called on the worker; the live iterator is kept between batches
  of the same seeder, so normally nothing is skipped twice. Exceptions it raises are retried.
* **llm** — one ``litellm.acompletion`` per call through the helpers of :mod:`activities.llm`
  (``num_retries=0``; the offline model ``conveyor/offline`` answers with deterministic, valid
  rows). Rows a call gave beyond what the batch needs travel in the cursor to the next batch.
  Three calls in a row without a valid row fail the seeder. Calls are not recorded in
  ``llm_calls`` (they belong to no task); the seeder's progress counts calls, tokens and cost.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import inspect
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm import (
    OFFLINE_MODEL,
    LlmSettings,
    Usage,
    complete,
    completion_kwargs,
    field_line,
    json_schema_for,
    offline_value,
    render_template,
    supports_json_mode,
    supports_structured_output,
)
from activities.rows import (
    CsvRows,
    JsonArrayError,
    JsonArrayRows,
    JsonLinesRows,
    RawRow,
    UnreadableFile,
)
from conveyor.creation import SeedRows
from conveyor.errors import InvalidSeedData, PipelineNotAccepting, UnknownPipeline
from conveyor.starting import CreationTarget, Starter
from store.db import transaction
from store.tasks import count_unfinished, existing_keys
from workflows.graph import FieldSpec
from workflows.seeder_messages import (
    IN_FLIGHT_ACTIVITY,
    REASON_CHARS,
    SEED_BATCH_ACTIVITY,
    SOURCE_FAILED,
    FileSource,
    GeneratorSource,
    InFlightCount,
    InFlightQuery,
    LlmSource,
    LlmUsage,
    PendingRow,
    SeedBatch,
    SeedBatchResult,
    SeedCursor,
    SeededRow,
    SeedOutcome,
    file_key,
    generator_key,
    llm_key,
)

__all__ = ["FILE_FORMATS", "SeedingActivities", "parse_llm_rows", "read_rows"]

FILE_FORMATS = (".csv", ".jsonl", ".ndjson", ".json")
CREATE_CONCURRENCY = 20
MAX_SCAN = 1000
"""A generator batch gives up after this many items in a row without a valid one."""
MAX_EMPTY_CALLS = 3
"""A model batch gives up after this many calls in a row without a valid row."""
KEYS_PER_QUERY = 500


def source_failed(message: str) -> ApplicationError:
    """The non-retryable error of a source that cannot give rows."""
    return ApplicationError(message, type=SOURCE_FAILED, non_retryable=True)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _reason(errors: Mapping[str, str]) -> str:
    return _short("; ".join(errors.values()))


# --------------------------------------------------------------------------- files

Row = dict[str, Any] | str
"""A row read from a file, or why it cannot be read."""


def read_rows(path: Path) -> list[Row]:
    """Every row of a CSV, JSON Lines or JSON file, in order (read by :mod:`activities.rows`).

    Raises:
        ApplicationError: ``SeedSourceFailed`` when the file is missing, unreadable or not in a
            known format.
    """
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise source_failed(
            f"{path}: cannot tell the format from {suffix or 'no extension'!r}; "
            "use a .csv, .jsonl or .json file"
        )
    try:
        with path.open("rb") as fb:
            if suffix == ".csv":
                return _csv_rows(fb)
            if suffix == ".json":
                return _json_rows(path, fb)
            return [_object_row(raw) for raw in JsonLinesRows(fb)]
    except (OSError, UnreadableFile) as err:
        raise source_failed(
            f"cannot read {path} ({type(err).__name__}: {err}); the file must be readable by "
            "every worker"
        ) from None


def _csv_rows(fb: IO[bytes]) -> list[Row]:
    """Rows as :class:`csv.DictReader` gives them: the first record is the header, blank lines
    are skipped, missing cells are left out."""
    header: list[str] | None = None
    rows: list[Row] = []
    for raw in CsvRows(fb):
        if raw.error is not None:
            raise raw.error
        cells: list[str] = raw.value
        if header is None:
            header = cells
            continue
        if not cells:
            continue
        if len(cells) > len(header):
            rows.append("the row has more cells than the header has columns")
            continue
        record = dict(zip(header, cells, strict=False))
        for name in header[len(cells) :]:
            record.pop(name, None)
        rows.append(record)
    return rows


def _object_row(raw: RawRow) -> Row:
    if isinstance(raw.error, json.JSONDecodeError):
        return f"not JSON ({raw.error.msg} at column {raw.error.colno})"
    value = raw.value
    return value if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"


def _json_rows(path: Path, fb: IO[bytes]) -> list[Row]:
    try:
        values = [raw.value for raw in JsonArrayRows(fb)]
    except JsonArrayError as err:
        if err.detail is None:
            raise source_failed(f"{path} must hold one JSON array of objects") from None
        raise source_failed(f"{path} is not JSON ({err.detail} at line {err.line})") from None
    return [
        v if isinstance(v, dict) else f"a JSON {type(v).__name__}, not an object" for v in values
    ]


@dataclass
class _CachedFile:
    stamp: tuple[int, int]
    rows: list[Row]


# --------------------------------------------------------------------------- generators


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise source_failed(
            f"cannot import {module_name!r} for generator {target} on this worker "
            f"({type(err).__name__}: {err}); install it where the workers run"
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise source_failed(f"{module_name!r} has no function {name!r} (generator {target})")
    return function


def _open_at(function: Callable[..., Any], index: int) -> Iterator[Any]:
    """The generator's items from item ``index`` on."""
    try:
        takes_start = "start" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        takes_start = False
    if takes_start:
        return iter(function(start=index))
    items = iter(function())
    collections.deque(islice(items, index), maxlen=0)  # skip what earlier batches used
    return items


# --------------------------------------------------------------------------- LLM rows


def _instructions(fields: Sequence[FieldSpec], n: int) -> str:
    lines = "\n".join(field_line(f) for f in fields)
    return (
        "Reply with a single JSON object and nothing else (no markdown, no explanation): "
        f'{{"rows": [...]}}, where "rows" is an array of {n} new, varied objects, each with '
        f"exactly these keys:\n{lines}\n"
        "Use JSON types: strings for text and options, numbers for numbers, true/false for "
        "yes/no, arrays for lists."
    )


def _rows_format(fields: Sequence[FieldSpec], n: int) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"rows": {"type": "array", "items": json_schema_for(fields), "maxItems": n}},
        "required": ["rows"],
        "additionalProperties": False,
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": "seed_rows", "strict": True, "schema": schema},
    }


def _offline_rows(fields: Sequence[FieldSpec], call: int, n: int, prompt: str) -> str:
    """The offline model's reply: ``n`` valid rows, each text naming its call and row."""
    rows = [
        {f.name: offline_value(f, f"seed row {call}.{i}: {prompt}") for f in fields}
        for i in range(n)
    ]
    return json.dumps({"rows": rows}, ensure_ascii=False)


def parse_llm_rows(content: str | None, n: int) -> list[Any] | str:
    """The rows of a model's reply (at most ``n``), or why there are none.

    The reply is a JSON object ``{"rows": [...]}``, or a bare JSON array.
    """
    if content is None or not content.strip():
        return "the model returned no text"
    try:
        value = json.loads(content)
    except json.JSONDecodeError as err:
        return _short(f"the reply is not JSON ({err.msg} at character {err.pos}): {content}")
    if isinstance(value, dict) and isinstance(value.get("rows"), list):
        value = value["rows"]
    if not isinstance(value, list):
        return _short(f'the reply is not {{"rows": [...]}}: {content}')
    return value[:n]


# --------------------------------------------------------------------------- a batch


@dataclass
class _Draw:
    """Rows read from the source: ``(key, data, None)`` to create, ``(key, None, reason)``
    to skip."""

    rows: list[tuple[str, dict[str, Any] | None, str | None]] = field(default_factory=list)
    cursor: SeedCursor = field(default_factory=SeedCursor)
    exhausted: bool = False
    usage: LlmUsage = field(default_factory=LlmUsage)

    @property
    def valid(self) -> int:
        return sum(1 for _, data, _ in self.rows if data is not None)

    def add(self, key: str, checker: SeedRows, raw: Any) -> bool:
        """Validate one raw row; whether it is valid."""
        if isinstance(raw, str):
            self.rows.append((key, None, _short(raw)))
            return False
        if not isinstance(raw, dict):
            self.rows.append((key, None, f"a {type(raw).__name__}, not a dict of field values"))
            return False
        prepared = checker.prepare(raw)
        if not prepared.ok:
            self.rows.append((key, None, _reason(prepared.errors)))
            return False
        self.rows.append((key, prepared.data, None))
        return True


class SeedingActivities:
    """Register with ``Worker(..., activities=[acts.seed_batch, acts.in_flight_count])``."""

    def __init__(self, sessions: sessionmaker[Session], llm: LlmSettings | None = None) -> None:
        self._sessions = sessions
        self._llm = llm or LlmSettings.from_env()
        self._files: dict[str, _CachedFile] = {}
        self._generators: dict[tuple[str, str], tuple[int, Iterator[Any]]] = {}

    @activity.defn(name=SEED_BATCH_ACTIVITY)
    async def seed_batch(self, request: SeedBatch) -> SeedBatchResult:
        """Create up to ``request.count`` tasks from the source at the cursor.

        Returns:
            The cursor after the rows read, one outcome per row read (invalid rows do not count
            towards ``count``), or ``waiting`` (and nothing done) while the pipeline takes no
            tasks.

        Raises:
            ApplicationError: ``SeedSourceFailed`` (non-retryable) when the source cannot give
                a valid row; ``InvalidPromptTemplate`` and provider errors as for
                :meth:`activities.llm.LlmActivities.call_llm`.
        """
        conveyor = Starter(activity.client(), activity.info().task_queue)
        try:
            target = await conveyor.creation_target(request.pipeline)
        except (UnknownPipeline, PipelineNotAccepting) as err:
            return SeedBatchResult(cursor=request.cursor, waiting=str(err))
        checker = SeedRows(target.pipeline)
        source = request.source
        if isinstance(source, FileSource):
            draw = await self._draw_file(request, source, checker)
        elif isinstance(source, GeneratorSource):
            draw = await asyncio.to_thread(self._draw_generator, request, source, checker)
        else:
            draw = await self._draw_llm(request, source, target, checker)
        activity.heartbeat()
        rows = await self._create(conveyor, target, draw)
        activity.logger.info(
            "seeded %s: %d row(s) read, %d created, cursor %s",
            request.pipeline,
            len(rows),
            sum(1 for r in rows if r.outcome == SeedOutcome.CREATED),
            draw.cursor.describe(source.kind),
        )
        return SeedBatchResult(
            cursor=draw.cursor, rows=rows, exhausted=draw.exhausted, llm=draw.usage
        )

    @activity.defn(name=IN_FLIGHT_ACTIVITY)
    async def in_flight_count(self, query: InFlightQuery) -> InFlightCount:
        """The pipeline's tasks in the store that are not Finished, and which of ``keys`` the
        store does not have yet."""
        return await asyncio.to_thread(self._count, query)

    # ------------------------------------------------------------------ store

    def _count(self, query: InFlightQuery) -> InFlightCount:
        with transaction(self._sessions) as session:
            unfinished = count_unfinished(session, query.pipeline)
            present = existing_keys(session, query.pipeline, query.keys, per_query=KEYS_PER_QUERY)
        return InFlightCount(
            unfinished=unfinished, missing=[k for k in query.keys if k not in present]
        )

    # ------------------------------------------------------------------ creating

    async def _create(
        self, conveyor: Starter, target: CreationTarget, draw: _Draw
    ) -> list[SeededRow]:
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def one(key: str, data: dict[str, Any] | None, reason: str | None) -> SeededRow:
            if data is None:
                return SeededRow(key=key, outcome=SeedOutcome.INVALID, reason=reason)
            async with gate:
                try:
                    created = await conveyor.create_task(
                        target.pipeline, key, data, start_paused=target.start_paused
                    )
                except InvalidSeedData as err:
                    return SeededRow(
                        key=key, outcome=SeedOutcome.INVALID, reason=_reason(err.errors)
                    )
            activity.heartbeat()
            outcome = SeedOutcome.CREATED if created.created else SeedOutcome.EXISTED
            return SeededRow(key=key, outcome=outcome)

        # Any other failure fails the activity: its retry starts from the same cursor, so
        # what this try created is found again, never created twice.
        return list(await asyncio.gather(*(one(*row) for row in draw.rows)))

    # ------------------------------------------------------------------ files

    async def _draw_file(self, request: SeedBatch, source: FileSource, checker: SeedRows) -> _Draw:
        rows = await asyncio.to_thread(self._file_rows, Path(source.path))
        if not rows:
            raise source_failed(f"{source.path} has no rows")
        cursor = request.cursor
        cycle, row = cursor.cycle, cursor.row
        if row >= len(rows):  # the file got shorter: on to the next pass
            cycle, row = cycle + 1, 0
        draw = _Draw()
        without_valid = 0
        while draw.valid < request.count:
            if draw.add(file_key(request.key_prefix, cycle, row), checker, rows[row]):
                without_valid = 0
            else:
                without_valid += 1
                if without_valid >= len(rows):
                    raise source_failed(
                        f"no row of {source.path} fits pipeline {request.pipeline!r}; "
                        f"the last one: {draw.rows[-1][2]}"
                    )
            row += 1
            if row == len(rows):
                cycle, row = cycle + 1, 0
        draw.cursor = cursor.model_copy(update={"cycle": cycle, "row": row})
        return draw

    def _file_rows(self, path: Path) -> list[Row]:
        try:
            stat = os.stat(path)
        except OSError as err:
            raise source_failed(
                f"cannot read {path} ({type(err).__name__}: {err.strerror}); the file must be "
                "readable by every worker"
            ) from None
        key = str(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(key)
        if cached is None or cached.stamp != stamp:
            cached = _CachedFile(stamp, read_rows(path))
            self._files[key] = cached
        return cached.rows

    # ------------------------------------------------------------------ generators

    def _draw_generator(
        self, request: SeedBatch, source: GeneratorSource, checker: SeedRows
    ) -> _Draw:
        index = request.cursor.index
        slot = (request.pipeline, source.target)
        kept = self._generators.pop(slot, None)
        items = kept[1] if kept is not None and kept[0] == index else None
        if items is None:
            items = _open_at(_resolve(source.target), index)
        draw = _Draw()
        without_valid = 0
        end = object()
        while draw.valid < request.count:
            item = next(items, end)
            if item is end:
                draw.exhausted = True
                break
            if draw.add(generator_key(request.key_prefix, index), checker, item):
                without_valid = 0
            else:
                without_valid += 1
                if without_valid >= MAX_SCAN:
                    raise source_failed(
                        f"generator {source.target} gave {MAX_SCAN} items in a row that do not "
                        f"fit pipeline {request.pipeline!r}; the last one: {draw.rows[-1][2]}"
                    )
            index += 1
        if not draw.exhausted:
            self._generators[slot] = (index, items)
        draw.cursor = request.cursor.model_copy(update={"index": index})
        return draw

    # ------------------------------------------------------------------ LLM

    async def _draw_llm(
        self, request: SeedBatch, source: LlmSource, target: CreationTarget, checker: SeedRows
    ) -> _Draw:
        fields = target.pipeline.dataset_fields()
        if not fields:
            raise source_failed(
                f"pipeline {request.pipeline!r} has no dataset (predefined) fields for a model "
                "to fill; its tasks need no seed rows"
            )
        draw = _Draw()
        pending = list(request.cursor.pending)
        used, pending = pending[: request.count], pending[request.count :]
        for row in used:
            draw.add(row.key, checker, row.data)
        calls = request.cursor.calls
        empty = 0
        usage = LlmUsage()
        while draw.valid < request.count:
            before = draw.valid
            fresh, spent = await self._call(request, source, target, fields, calls, checker)
            usage = _add_usage(usage, spent)
            needed = request.count - before
            for key, data, reason in fresh:
                if data is not None and needed > 0:
                    draw.rows.append((key, data, None))
                    needed -= 1
                elif data is not None:
                    pending.append(PendingRow(key=key, data=data))
                else:
                    draw.rows.append((key, None, reason))
            calls += 1
            activity.heartbeat()
            if draw.valid > before:
                empty = 0
                continue
            empty += 1
            if empty >= MAX_EMPTY_CALLS:
                raise source_failed(
                    f"model {source.model} gave no valid row in {MAX_EMPTY_CALLS} calls; the "
                    f"last problem: {draw.rows[-1][2] if draw.rows else 'no rows'}"
                )
        draw.cursor = request.cursor.model_copy(update={"calls": calls, "pending": pending})
        draw.usage = usage
        return draw

    async def _call(
        self,
        request: SeedBatch,
        source: LlmSource,
        target: CreationTarget,
        fields: list[FieldSpec],
        call: int,
        checker: SeedRows,
    ) -> tuple[list[tuple[str, dict[str, Any] | None, str | None]], LlmUsage]:
        """One model call: its rows (validated, keyed by position) and what it cost."""
        n = source.rows_per_call
        context = {
            "n": n,
            "call": call,
            "pipeline": target.pipeline.name,
            "fields": [f.name for f in fields],
        }
        system = render_template(source.system, context, what="system") if source.system else ""
        prompt = render_template(source.prompt, context, what="prompt")
        instructions = _instructions(fields, n)
        messages = [
            {
                "role": "system",
                "content": "\n\n".join(p for p in (system.strip(), instructions) if p),
            },
            {"role": "user", "content": prompt},
        ]
        api_base = source.api_base or self._llm.api_base
        response_format: dict[str, Any] | None = None
        if supports_structured_output(source.model, api_base):
            response_format = _rows_format(fields, n)
        elif supports_json_mode(source.model):
            response_format = {"type": "json_object"}
        kwargs = completion_kwargs(
            self._llm,
            model=source.model,
            api_base=api_base,
            temperature=source.temperature,
            max_tokens=source.max_tokens,
            messages=messages,
            response_format=response_format,
            offline_reply=_offline_rows(fields, call, n, prompt)
            if source.model == OFFLINE_MODEL
            else None,
        )
        usage = Usage(model=source.model)
        reply = await complete(self._llm, kwargs, usage)
        spent = LlmUsage(
            calls=1,
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            cost_usd=usage.cost_usd,
        )
        items = parse_llm_rows(reply.content, n)
        if isinstance(items, str):
            return [(f"{request.key_prefix}-l{call}", None, items)], spent
        scratch = _Draw()
        for i, item in enumerate(items):
            scratch.add(llm_key(request.key_prefix, call, i), checker, item)
        if not items:
            scratch.rows.append((f"{request.key_prefix}-l{call}", None, "the reply had no rows"))
        return scratch.rows, spent


def _add_usage(a: LlmUsage, b: LlmUsage) -> LlmUsage:
    cost = None if a.cost_usd is None or b.cost_usd is None else a.cost_usd + b.cost_usd
    return LlmUsage(
        calls=a.calls + b.calls,
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        cost_usd=cost,
    )
