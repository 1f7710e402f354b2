"""Interrupted records (flag `I`: stopped by the run itself): their status line, and how resume treats them (not
done: a plain `-r` runs them again, unlike a failure or a timeout)."""

from __future__ import annotations

from hypothesis import given

from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.resume import ResumeIndex
from disbatch.results.status_line import flags, format_line, parse_line
from disbatch.taskfile.items import Task

from .strategies import records
from .test_status_line import make

TASK = Task(task_id=3, line_number=5, repeat_index=-1, command='sleep 100')


def interrupted(**changes: object) -> StatusRecord:
    fields: dict[str, object] = dict(
        kind=RecordKind.INTERRUPTED, task_id=3, line_number=5, repeat_index=-1, command='sleep 100', host='vm',
        pid=4242, return_code=-15, elapsed=1.013, start=1795502033.848, finish=1795502034.861,
    )  # fmt: skip
    fields.update(changes)
    return make(**fields)


def test_an_interrupted_record_formats_with_flags_r_then_i_and_parses_back() -> None:
    record = interrupted()
    assert flags(record) == 'R  I'
    assert parse_line(format_line(record)) == record


@given(records)
def test_every_record_made_interrupted_round_trips_and_is_neither_failed_nor_done(record: StatusRecord) -> None:
    stopped = record.as_interrupted()
    assert stopped.interrupted and not stopped.failed
    assert parse_line(format_line(stopped)) == stopped


def test_a_plain_dash_r_runs_an_interrupted_task_again() -> None:
    index = ResumeIndex.from_records([interrupted()])
    assert TASK.task_id not in index
    assert index.decide(TASK, retry_failed=False, force=False) is None


def test_an_interrupted_attempt_never_hides_an_earlier_success_or_failure() -> None:
    for earlier in (
        interrupted(kind=RecordKind.NORMAL, return_code=0),
        interrupted(kind=RecordKind.NORMAL, return_code=1),
    ):
        index = ResumeIndex.from_records([earlier, interrupted(finish=1795502099.0)])
        assert index.decide(TASK, retry_failed=False, force=False) == earlier.as_skipped()
