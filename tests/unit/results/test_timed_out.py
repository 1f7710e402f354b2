"""Timed-out records (--timeout, flag `T`): their status line, and how resume treats them (done, but failed)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.resume import ResumeIndex
from disbatch.results.status_line import flags, format_line, parse_line
from disbatch.taskfile.items import Task

from .strategies import records
from .test_status_line import make

TASK = Task(task_id=3, line_number=5, repeat_index=-1, command='sleep 100')
START, FINISH = '1795502033.848', '1795502034.861'


def timed_out(**changes: object) -> StatusRecord:
    fields: dict[str, object] = dict(
        kind=RecordKind.TIMED_OUT,
        task_id=3,
        line_number=5,
        repeat_index=-1,
        command='sleep 100',
        host='vm',
        pid=4242,
        return_code=-15,
        elapsed=1.013,
        start=float(START),
        finish=float(FINISH),
    )
    fields.update(changes)
    return make(**fields)


def test_a_timed_out_record_formats_with_flags_r_then_t() -> None:
    record = timed_out()
    assert flags(record) == 'R  T'
    assert format_line(record) == (f"R  T\t3\t5\t-1\tvm\t4242\t-15\t1.013\t{START}\t{FINISH}\t0\t''\t0\t''\tsleep 100")
    assert record.failed


def test_a_timed_out_record_keeps_its_output_flags() -> None:
    record = timed_out(return_code=-9, out_bytes=6, out_snippet="'hello\\n'", err_bytes=3, err_snippet="'x\\n'")
    assert flags(record) == 'ROET'


def test_a_timed_out_line_parses_back() -> None:
    line = f"R  T\t3\t5\t-1\tvm\t4242\t-9\t2.001\t{START}\t{FINISH}\t0\t''\t0\t''\ttrap '' TERM; sleep 100"
    record = parse_line(line)
    assert record.kind is RecordKind.TIMED_OUT
    assert record.return_code == -9
    assert record.command == "trap '' TERM; sleep 100"
    assert format_line(record) == line


@given(records.map(lambda record: replace(record, kind=RecordKind.TIMED_OUT)))
def test_every_timed_out_record_round_trips(record: StatusRecord) -> None:
    assert parse_line(format_line(record)) == record
    assert record.failed


@given(st.integers())
def test_a_timed_out_record_is_a_failure_whatever_its_return_code(return_code: int) -> None:
    assert timed_out(return_code=return_code).failed
    assert make(return_code=return_code).failed == (return_code != 0)


# ---------------------------------------------------------------- resume


def test_resume_counts_a_timed_out_task_as_done_and_skips_it_without_dash_r() -> None:
    record = timed_out()
    index = ResumeIndex.from_records([record])
    assert 3 in index and len(index) == 1
    skipped = index.decide(TASK, retry_failed=False, force=False)
    assert skipped == record.as_skipped()
    assert format_line(skipped).startswith('R  S\t3\t5\t-1\tvm\t4242\t-15\t')
    assert index.skipped == 1


def test_resume_with_dash_r_runs_a_timed_out_task_again() -> None:
    index = ResumeIndex.from_records([timed_out()])
    assert index.decide(TASK, retry_failed=True, force=False) is None
    assert index.skipped == 0


def test_a_later_success_beats_a_timed_out_attempt_and_a_timed_out_attempt_never_beats_a_success() -> None:
    success = timed_out(kind=RecordKind.NORMAL, return_code=0, finish=10.0)
    late_timeout = timed_out(finish=20.0)
    for order in ([success, late_timeout], [late_timeout, success]):
        index = ResumeIndex.from_records(order)
        assert index.record(3) == success
        assert index.decide(TASK, retry_failed=True, force=False) == success.as_skipped()


def test_between_failures_the_later_one_wins_timed_out_or_not() -> None:
    failure = timed_out(kind=RecordKind.NORMAL, return_code=1, finish=10.0)
    timeout = timed_out(finish=20.0)
    assert ResumeIndex.from_records([timeout, failure]).record(3) == timeout
    assert ResumeIndex.from_records([failure, timeout]).record(3) == timeout


def test_a_timed_out_record_read_back_from_a_status_file_line_counts_as_done() -> None:
    line = f"R  T\t3\t5\t-1\tvm\t4242\t-15\t1.013\t{START}\t{FINISH}\t0\t''\t0\t''\tsleep 100"
    index = ResumeIndex.from_records([parse_line(line)])
    assert index.decide(TASK, retry_failed=False, force=False) is not None
    assert index.decide(TASK, retry_failed=True, force=False) is None
