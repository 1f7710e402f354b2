"""A finished run read back for `disbatch report`: from its status file, or from its `--json` events file.

Both give the status records in the order they were written, each marked final or not (an attempt that was run
again is not the task's result). A status file does not say so: there the last record of a task id is its final
one. The events file also knows the engines, the run's times and its exit code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from disbatch.contract import stem_of
from disbatch.results.record import Outcome, RecordKind, ResourceUsage, StatusRecord
from disbatch.results.report import is_header, parse_line

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
            _take(history, json.loads(line))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{path}:{number}: not a disbatch event: {error!r}') from None
    return history


def _take(history: RunHistory, event: dict[str, Any]) -> None:
    kind = event['event']
    if kind == 'run_start':
        history.run, history.status_file, history.started = event['run'], event['status_file'], event['time']
    elif kind == 'engine_joined':
        rank = int(event['engine'])
        history.engines[rank] = EngineHistory(rank, event['host'], int(event['slots']), event['context'])
    elif kind == 'task_started' and event['engine'] in history.engines:
        history.engines[event['engine']].given += 1
    elif kind == 'task_finished':
        record = _record(event)
        engine = history.engines.get(event['engine']) if event['engine'] is not None else None
        if engine is not None and record.kind in _RUN_KINDS:
            engine.finished += 1
            engine.failed += record.failed
        history.records.append((record, bool(event['final']), event['engine']))
    elif kind == 'run_end':
        history.ended, history.exit_code = event['time'], int(event['exit_code'])


def _record(event: dict[str, Any]) -> StatusRecord:
    usage = None
    if event.get('max_rss_bytes') is not None:
        usage = ResourceUsage(int(event['max_rss_bytes']), float(event['user_seconds']), float(event['system_seconds']))
    outcome = Outcome(
        pid=int(event['pid']),
        return_code=int(event['return_code']),
        elapsed=float(event['elapsed']),
        start=float(event['start']),
        finish=float(event['finish']),
        out_bytes=int(event['out_bytes']),
        out_snippet=repr(str(event['out_snippet'])),
        err_bytes=int(event['err_bytes']),
        err_snippet=repr(str(event['err_snippet'])),
        usage=usage,
    )
    return StatusRecord(
        kind=_KINDS[event['kind']],
        task_id=int(event['task_id']),
        line_number=int(event['line_number']),
        repeat_index=int(event['repeat_index']),
        command=str(event['command']),
        host=str(event['host']),
        outcome=outcome,
        attempt=int(event['attempt']),
    )
