"""The `--json` events: one JSON object a line, `{"event": NAME, "time": ..., ...}`, as `docs/events.schema.json`
describes them (`SCHEMA_VERSION`; a test holds the schema and these classes together). Each line is an entry of the
run's journal, one class per event name (`...Entry`: the scheduler's events of the same names are another thing).

The driver's journal writes them and `disbatch report` reads them back, both through `write_entry` and
`read_entry`, so nothing else spells an event's name or its keys. Reading is tolerant as `json_fields` is: an
unknown key is ignored, an unknown event is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

from disbatch.contract.json_fields import OMITTED_WHEN_DEFAULT, from_json, to_json

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class RunStartEntry:
    """The run begins (the first line): what it is."""

    NAME: ClassVar[str] = 'run_start'
    time: float
    schema_version: int
    run: str  # DISBATCH_JOBID: the stem's last component
    disbatch_version: str
    tasks: str  # the task file's name
    status_file: str
    expected_total: int | None
    host: str
    pid: int
    cwd: str
    argv: tuple[str, ...]
    results_dir: str | None


@dataclass(frozen=True, slots=True)
class EngineJoinedEntry:
    NAME: ClassVar[str] = 'engine_joined'
    time: float
    engine: int
    host: str
    slots: int
    context: str


@dataclass(frozen=True, slots=True)
class EngineLeftEntry:
    NAME: ClassVar[str] = 'engine_left'
    time: float
    engine: int
    host: str
    lost: bool


@dataclass(frozen=True, slots=True)
class TaskStartedEntry:
    """An attempt of a task handed to an engine."""

    NAME: ClassVar[str] = 'task_started'
    time: float
    task_id: int
    line_number: int
    repeat_index: int
    attempt: int
    engine: int
    host: str
    command: str


@dataclass(frozen=True, slots=True)
class TaskFinishedEntry:
    """A record written: every status-file field, its attempt, state and usage (null when not measured)."""

    NAME: ClassVar[str] = 'task_finished'
    time: float
    task_id: int
    line_number: int
    repeat_index: int
    kind: str  # RecordKind's name, in lower case
    state: str  # succeeded, failed, timed_out, interrupted, lost, skipped or barrier
    flags: str
    host: str
    pid: int
    return_code: int
    elapsed: float
    start: float
    finish: float
    out_bytes: int
    out_snippet: str
    err_bytes: int
    err_snippet: str
    command: str
    attempt: int
    max_rss_bytes: int | None
    user_seconds: float | None
    system_seconds: float | None
    final: bool  # the task's result (not an attempt that is run again)
    engine: int | None  # None: recorded by the driver (a barrier, a skipped task)
    stdout_file: str | None = field(default=None, metadata=OMITTED_WHEN_DEFAULT)  # with --results
    stderr_file: str | None = field(default=None, metadata=OMITTED_WHEN_DEFAULT)


@dataclass(frozen=True, slots=True)
class RunEndEntry:
    NAME: ClassVar[str] = 'run_end'
    time: float
    exit_code: int
    finished: int
    failed: int
    skipped: int
    barriers: int
    lost: int


Entry = RunStartEntry | EngineJoinedEntry | EngineLeftEntry | TaskStartedEntry | TaskFinishedEntry | RunEndEntry
ENTRY_TYPES: tuple[type[Entry], ...] = (
    RunStartEntry,
    EngineJoinedEntry,
    EngineLeftEntry,
    TaskStartedEntry,
    TaskFinishedEntry,
    RunEndEntry,
)
_BY_NAME = {kind.NAME: kind for kind in ENTRY_TYPES}


def write_entry(entry: Entry) -> str:
    """The entry's line, without its newline."""
    return json.dumps({'event': entry.NAME, **to_json(entry)}, separators=(',', ':'))


def read_entry(line: str) -> Entry | None:
    """The event on `line`; None for an event this version does not know (a later one may add some); ValueError when
    the line is no event, or lacks a key its event must have."""
    value = json.loads(line)
    name = value.get('event') if isinstance(value, dict) else None
    if not isinstance(name, str):
        raise ValueError('no "event" key')
    kind = _BY_NAME.get(name)
    if kind is None:
        return None
    event = from_json(kind, value)
    if event is None:
        missing = [key for key in kind.__dataclass_fields__ if key not in value]
        raise ValueError(f'{name} without {", ".join(missing) or "the right types"}')
    return event
