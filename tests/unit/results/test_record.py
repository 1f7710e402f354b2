"""The result value: `Outcome` and `StatusRecord`'s named constructors, predicates and their status lines."""

from __future__ import annotations

from disbatch.results.record import (
    EMPTY_SNIPPET,
    LOST_RETURN_CODE,
    NO_PID,
    Outcome,
    RecordKind,
    ResourceUsage,
    StatusRecord,
    task_kind,
)
from disbatch.results.status_line import format_line, parse_line
from disbatch.taskfile.items import NO_REPEAT, Barrier, PerEngineTask, Phase, Task

TASK = Task(4, 7, 2, 'sleep 9')


def test_an_outcome_that_ran_measures_its_elapsed_time_from_start_to_finish() -> None:
    usage = ResourceUsage(4096, 0.5, 0.25)
    outcome = Outcome.ran(42, 3, 10.0, 12.5, 6, "'hello\\n'", 0, EMPTY_SNIPPET, usage)
    assert outcome == Outcome(42, 3, 10.0, 12.5, 2.5, 6, "'hello\\n'", 0, EMPTY_SNIPPET, usage)
    assert not outcome.is_unreported


def test_a_spawn_failure_has_no_pid_no_usage_and_its_reason_as_error_output() -> None:
    outcome = Outcome.spawn_failure(2, 'No such file or directory', 5.0)
    assert outcome == Outcome(NO_PID, 2, 5.0, 5.0, 0.0, 0, EMPTY_SNIPPET, 25, "'No such file or directory'", None)
    assert not outcome.is_unreported  # a return code of its own: the engine did report it


def test_a_lost_attempt_is_unreported_lost_and_failed_and_its_line_is_the_references() -> None:
    record = StatusRecord.lost(TASK, 'node3', 20.0)
    assert record == StatusRecord(
        RecordKind.NORMAL, 4, 7, 2, 'sleep 9', 'node3', Outcome(NO_PID, LOST_RETURN_CODE, 20.0, 20.0, 0.0)
    )
    assert record.unreported and record.is_lost and record.failed and not record.interrupted
    assert format_line(record) == "R   \t4\t7\t2\tnode3\t-1\t-100\t0.000\t20.000\t20.000\t0\t''\t0\t''\tsleep 9"


def test_an_attempt_stopped_with_its_engine_is_unreported_interrupted_and_not_lost() -> None:
    record = StatusRecord.stopped(TASK, 'node3', 20.0)
    assert record == StatusRecord.lost(TASK, 'node3', 20.0).as_interrupted()
    assert record.unreported and record.interrupted and not record.is_lost and not record.failed
    assert format_line(record) == "R  I\t4\t7\t2\tnode3\t-1\t-100\t0.000\t20.000\t20.000\t0\t''\t0\t''\tsleep 9"


def test_a_barrier_record_is_the_drivers_and_lasts_from_reached_to_passed() -> None:
    wall = Barrier(5, 6, True, None, '#DISBATCH BARRIER CHECK')
    record = StatusRecord.barrier(wall, 'head', 99, 1.0, 3.2)
    assert (record.kind, record.task_id, record.line_number, record.repeat_index) == (
        RecordKind.BARRIER_CHECK,
        5,
        6,
        -1,
    )
    assert (record.host, record.pid, record.return_code, record.command) == ('head', 99, 0, '#DISBATCH BARRIER CHECK')
    assert record.elapsed == 2.2 and record.usage is None
    assert (
        format_line(record)
        == "C    \t5\t6\t-1\thead\t99\t0\t2.200\t1.000\t3.200\t0\t''\t0\t''\t#DISBATCH BARRIER CHECK"
    )
    plain = StatusRecord.barrier(Barrier(5, 6, False, 'key', '#DISBATCH BARRIER key'), 'head', 99, 1.0, 1.0)
    assert plain.kind is RecordKind.BARRIER and plain.elapsed == 0.0


def test_a_per_engine_record_has_no_repeat_index_and_attempt_0() -> None:
    outcome = Outcome(77, 0, 1.0, 2.0, 1.0)
    record = StatusRecord.per_engine(PerEngineTask(Phase.START, 0, 2, 'hostname'), 'node1', outcome)
    assert record == StatusRecord(RecordKind.PER_ENGINE, 0, 2, NO_REPEAT, 'hostname', 'node1', outcome, attempt=0)


def test_a_task_record_carries_the_tasks_identity_and_reads_its_outcome_through() -> None:
    usage = ResourceUsage(1 << 20, 1.0, 0.5)
    outcome = Outcome(42, -15, 10.0, 13.0, 3.0, 1, "'x'", 2, "'e'", usage)
    record = StatusRecord.of_task(TASK, 'node2', outcome, RecordKind.TIMED_OUT, attempt=2)
    assert (record.task_id, record.line_number, record.repeat_index, record.command) == (4, 7, 2, 'sleep 9')
    assert (record.pid, record.return_code, record.start, record.finish, record.elapsed) == (42, -15, 10.0, 13.0, 3.0)
    assert (record.out_bytes, record.out_snippet, record.err_bytes, record.err_snippet) == (1, "'x'", 2, "'e'")
    assert record.usage == usage and record.attempt == 2 and record.failed and not record.unreported


def test_the_engines_flags_say_the_kind_of_a_tasks_record() -> None:
    assert task_kind(timed_out=False, interrupted=False) is RecordKind.NORMAL
    assert task_kind(timed_out=True, interrupted=False) is RecordKind.TIMED_OUT
    assert task_kind(timed_out=False, interrupted=True) is RecordKind.INTERRUPTED
    assert task_kind(timed_out=True, interrupted=True) is RecordKind.TIMED_OUT  # --timeout stopped it first


def test_a_line_read_back_keeps_its_elapsed_column_to_the_digit() -> None:
    # 10.0004 → 10.000 and 10.0016 → 10.002, but the elapsed time was 0.0012 → 0.001: kept, not recomputed.
    record = StatusRecord.of_task(TASK, 'n', Outcome(1, 0, 10.0004, 10.0016, 0.0012))
    line = format_line(record)
    assert '\t0.001\t10.000\t10.002\t' in line
    assert format_line(parse_line(line)) == line
