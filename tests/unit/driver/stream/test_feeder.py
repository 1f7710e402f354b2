"""The feeder: a task file's lines in, the scheduler's events out (items to run, records of tasks done before)."""

from __future__ import annotations

import io

import pytest

from disbatch.driver.core.events import ItemRead, RecordRead
from disbatch.driver.stream.feeder import Feeder
from disbatch.driver.stream.source import FileSource
from disbatch.errors import TaskFileError
from disbatch.results.record import Outcome, RecordKind, StatusRecord
from disbatch.results.resume import ResumeIndex
from disbatch.taskfile.items import Barrier, Phase, Task


def feeder(text: str, resume: ResumeIndex | None = None) -> tuple[Feeder, list[str]]:
    warnings: list[str] = []
    return Feeder(FileSource(io.BytesIO(text.encode())), 'Tasks', resume, False, False, warnings.append), warnings


def events(source: Feeder, now: float = 5.0) -> list[object]:
    found = []
    while (event := source.next_event(now)) is not None:
        found.append(event)
    return found


def test_per_engine_tasks_are_taken_off_the_top_and_the_rest_comes_as_items() -> None:
    source, warnings = feeder(
        '#DISBATCH PERENGINE START echo up\n#DISBATCH PERENGINE STOP echo down\na\n#DISBATCH BARRIER\nb\n'
    )
    source.take_per_engine_tasks()
    assert [task.command for task in source.start_tasks] == ['echo up']
    assert [task.command for task in source.stop_tasks] == ['echo down']
    assert all(task.phase is Phase.START for task in source.start_tasks) and not source.empty
    read = events(source)
    assert all(isinstance(event, ItemRead) and event.now == 5.0 for event in read)
    items = [event.item for event in read if isinstance(event, ItemRead)]
    assert [(type(item), item.line_number) for item in items] == [(Task, 3), (Barrier, 4), (Task, 5)]
    assert [item.command for item in items if isinstance(item, Task)] == ['a', 'b']
    assert warnings == []


def test_a_stream_of_per_engine_tasks_alone_is_empty() -> None:
    source, _ = feeder('#DISBATCH PERENGINE START echo up\n')
    source.take_per_engine_tasks()
    assert source.empty and events(source) == []


def test_a_per_engine_task_after_the_first_task_is_an_error_naming_its_line() -> None:
    source, _ = feeder('a\n#DISBATCH PERENGINE START echo late\nb\n')
    source.take_per_engine_tasks()
    with pytest.raises(TaskFileError, match=r'^Tasks:2: PERENGINE tasks must come before all other tasks'):
        events(source)


def test_a_task_an_earlier_run_finished_comes_back_as_its_record() -> None:
    outcome = Outcome(pid=100, return_code=0, start=1.0, finish=2.0, elapsed=1.0)
    done = StatusRecord(RecordKind.NORMAL, 0, 1, -1, 'a', 'node1', outcome)
    source, _ = feeder('a\nb\n', ResumeIndex.from_records([done]))
    source.take_per_engine_tasks()
    first, second = events(source)
    assert isinstance(first, RecordRead) and first.record.task_id == 0
    assert isinstance(second, ItemRead) and isinstance(second.item, Task) and second.item.command == 'b'
