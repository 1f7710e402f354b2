"""The journal (`--json`): scheduler steps in, one schema-valid line per event out; a full disk told once."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema

from disbatch.contract.json_events import EngineLeftEntry, RunEndEntry, TaskFinishedEntry, TaskStartedEntry, read_entry
from disbatch.driver.core import events as ev
from disbatch.driver.core.scheduler import Counts
from disbatch.driver.observers.journal import Journal
from disbatch.results.record import Outcome, RecordKind, StatusRecord
from disbatch.taskfile.items import Task

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / 'docs' / 'events.schema.json').read_text())
TASK = Task(task_id=0, line_number=1, repeat_index=-1, command='echo \udcff')
RECORD = StatusRecord(
    RecordKind.NORMAL,
    0,
    1,
    -1,
    TASK.command,
    'node0',
    Outcome(pid=7, return_code=2, start=10.0, finish=11.25, elapsed=1.25),
)
FACTS = dict(
    run='run',
    disbatch_version='3.1',
    tasks='Tasks',
    status_file='/w/run_status.txt',
    expected_total=1,
    host='here',
    pid=1,
    cwd='/w',
    argv=('disbatch', 'Tasks'),
    results_dir=None,
)


def one_run(stream: io.StringIO) -> Journal:
    journal = Journal(stream, clock=lambda: 12.0004)
    journal.start(**FACTS)
    journal.on_step(ev.EngineJoined(0, 'node0', slots=2), [ev.SendTask(0, TASK, 1)])
    journal.on_step(ev.TaskFinished(0, 0, RECORD.outcome), [ev.WriteRecord(RECORD)])
    journal.on_step(ev.EngineGone(0, lost=True, now=13.0), [])
    journal.close(1, Counts(finished=1, failed=1))
    return journal


def test_closing_the_journal_closes_its_file() -> None:
    stream = io.StringIO()
    journal = one_run(stream)
    assert journal.failure is None and stream.closed


def test_every_line_follows_the_schema_and_reads_back() -> None:
    lines: list[str] = []

    class Keep(io.StringIO):
        def write(self, text: str) -> int:
            lines.append(text)
            return len(text)

    one_run(Keep())
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in lines:
        validator.validate(json.loads(line))
    names = [json.loads(line)['event'] for line in lines]
    assert names == ['run_start', 'engine_joined', 'task_started', 'task_finished', 'engine_left', 'run_end']
    entries = [read_entry(line) for line in lines]
    assert all(json.loads(line)['time'] == 12.0 for line in lines)  # rounded to the millisecond
    started, finished, left, end = entries[2], entries[3], entries[4], entries[5]
    assert isinstance(started, TaskStartedEntry) and started.host == 'node0' and started.command == 'echo \ufffd'
    assert isinstance(finished, TaskFinishedEntry)
    assert (finished.state, finished.engine, finished.final, finished.elapsed) == ('failed', 0, True, 1.25)
    assert isinstance(left, EngineLeftEntry) and left.lost
    assert end == RunEndEntry(12.0, 1, 1, 1, 0, 0, 0)


def test_a_file_that_cannot_be_written_is_told_once_and_written_no_more() -> None:
    class Full(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            Full.writes += 1
            raise OSError(28, 'No space left on device')

    journal = Journal(Full(), clock=lambda: 1.0)
    journal.path = 'events.jsonl'
    journal.start(**FACTS)
    journal.on_step(ev.EngineJoined(0, 'node0', slots=2), [ev.SendTask(0, TASK, 1)])
    assert journal.failure == '--json: cannot write the events file events.jsonl: No space left on device'
    assert Full.writes == 1
