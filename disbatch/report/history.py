"""A finished run read back for `disbatch report`: from its status file, or from its `--json` events file.

Both give the status records in the order they were written, each marked final or not (an attempt that was run
again is not the task's result). A status file does not say so: there the last record of a task id is its final
one. The events file also knows the engines, the run's times and its exit code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from disbatch.contract.json_events import (
    EngineJoinedEntry,
    Entry,
    RunEndEntry,
    RunStartEntry,
    TaskFinishedEntry,
    TaskStartedEntry,
    read_entry,
)
from disbatch.contract.run_files import stem_of
from disbatch.results.record import Outcome, RecordKind, ResourceUsage, StatusRecord
from disbatch.results.status_line import is_header, parse_line

_KINDS = {kind.name.lower(): kind for kind in RecordKind}
_RUN_KINDS = (RecordKind.NORMAL, RecordKind.TIMED_OUT, RecordKind.INTERRUPTED)  # a task's own attempts


@dataclass(slots=True)
class EngineHistory:
    rank: int
    host: str
    slots: int
    context: str
    given: int = 0
    finished: int = 0
    failed: int = 0


@dataclass(slots=True)
class RunHistory:
    source: str
    run: str
    status_file: str
    records: list[tuple[StatusRecord, bool, int | None]] = field(default_factory=list)  # record, final, engine
    engines: dict[int, EngineHistory] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None

    @property
    def final_records(self) -> list[StatusRecord]:
        return [record for record, final, _ in self.records if final]

    @property
    def first_start(self) -> float:
        times = [record.start for record, _, _ in self.records]
        return min([*times, *([self.started] if self.started is not None else [])], default=0.0)

    @property
    def last_finish(self) -> float:
        times = [record.finish for record, _, _ in self.records]
        return max([*times, *([self.ended] if self.ended is not None else [])], default=0.0)


def load(path: str) -> RunHistory:
    """The run recorded in `path` (a status file or an events file); ValueError saying why it is neither."""
    with open(path, encoding='utf-8', errors='surrogateescape') as handle:
        lines = handle.read().splitlines()
    first = next((line for line in lines if line.strip()), '')
    if first.lstrip().startswith('{'):
        return _from_events(path, lines)
    return _from_status(path, lines)


def _from_status(path: str, lines: list[str]) -> RunHistory:
    stem = os.path.basename(stem_of(path))
    history = RunHistory(path, stem, path)
    records = []
    for number, line in enumerate(lines, 1):
        if not line or (number == 1 and is_header(line)):
            continue
        try:
            records.append(parse_line(line))
        except ValueError as error:
            raise ValueError(f'{path}:{number}: not a status line: {error}') from None
    last = {}
    for position, record in enumerate(records):
        if record.kind in _RUN_KINDS:
            last[record.task_id] = position
    for position, record in enumerate(records):
        final = record.kind not in _RUN_KINDS or last[record.task_id] == position
        history.records.append((record, final, None))
    return history


def _from_events(path: str, lines: list[str]) -> RunHistory:
    history = RunHistory(path, os.path.basename(path), '')
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = read_entry(line)
            if event is not None:
                _take(history, event)
        except ValueError as error:
            raise ValueError(f'{path}:{number}: not a disbatch event: {error}') from None
    return history


def _take(history: RunHistory, event: Entry) -> None:
    match event:
        case RunStartEntry():
            history.run, history.status_file, history.started = event.run, event.status_file, event.time
        case EngineJoinedEntry():
            history.engines[event.engine] = EngineHistory(event.engine, event.host, event.slots, event.context)
        case TaskStartedEntry() if event.engine in history.engines:
            history.engines[event.engine].given += 1
        case TaskFinishedEntry():
            record = _record(event)
            engine = history.engines.get(event.engine) if event.engine is not None else None
            if engine is not None and record.kind in _RUN_KINDS:
                engine.finished += 1
                engine.failed += record.failed
            history.records.append((record, event.final, event.engine))
        case RunEndEntry():
            history.ended, history.exit_code = event.time, event.exit_code


def _record(event: TaskFinishedEntry) -> StatusRecord:
    usage = None
    if event.user_seconds is not None:  # a peak memory of None: unknown (--fork-tasks)
        usage = ResourceUsage(event.max_rss_bytes, event.user_seconds, event.system_seconds or 0.0)
    outcome = Outcome(
        pid=event.pid,
        return_code=event.return_code,
        elapsed=event.elapsed,
        start=event.start,
        finish=event.finish,
        out_bytes=event.out_bytes,
        out_snippet=repr(event.out_snippet),
        err_bytes=event.err_bytes,
        err_snippet=repr(event.err_snippet),
        usage=usage,
    )
    kind = _KINDS.get(event.kind)
    if kind is None:
        raise ValueError(f'task {event.task_id}: no record kind {event.kind!r}')
    return StatusRecord(
        kind=kind,
        task_id=event.task_id,
        line_number=event.line_number,
        repeat_index=event.repeat_index,
        command=event.command,
        host=event.host,
        outcome=outcome,
        attempt=event.attempt,
    )
