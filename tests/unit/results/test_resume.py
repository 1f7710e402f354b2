"""Resume decisions: S lines count, the best record wins, -R, mismatches and --force-resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from disbatch.errors import ResumeMismatchError, StatusFileError
from disbatch.results.record import LOST_RETURN_CODE, RecordKind, StatusRecord
from disbatch.results.resume import ResumeIndex
from disbatch.results.status_file import StatusFileWriter
from disbatch.results.status_line import format_line
from disbatch.taskfile.items import Task

from .test_status_line import make

TASK = Task(task_id=3, line_number=5, repeat_index=-1, command='echo a')


def old(**changes: object) -> StatusRecord:
    fields: dict[str, object] = dict(task_id=3, line_number=5, repeat_index=-1, command='echo a', host='old', pid=7)
    fields.update(changes)
    return make(**fields)


def test_unknown_task_runs() -> None:
    index = ResumeIndex.from_records([old(task_id=4)])
    assert index.decide(TASK, retry_failed=False, force=False) is None
    assert len(index) == 1 and 4 in index and 3 not in index


def test_done_task_is_skipped_with_its_old_record() -> None:
    record = old(out_bytes=6, out_snippet="'hello\\n'")
    index = ResumeIndex.from_records([record])
    skipped = index.decide(TASK, retry_failed=False, force=False)
    assert skipped == record.as_skipped()
    assert format_line(skipped).startswith(' O S\t3\t5\t-1\told\t7\t')
    assert index.skipped == 1


def test_failed_task_is_skipped_without_retry_and_run_with_it() -> None:
    index = ResumeIndex.from_records([old(return_code=2)])
    skipped = index.decide(TASK, retry_failed=False, force=False)
    assert skipped is not None and format_line(skipped).startswith('R  S\t')
    assert index.decide(TASK, retry_failed=True, force=False) is None


def test_retry_failed_runs_a_fixed_command_without_mismatch() -> None:
    index = ResumeIndex.from_records([old(return_code=1, command='echo typo')])
    assert index.decide(TASK, retry_failed=True, force=False) is None


def test_skipped_lines_count_and_other_kinds_do_not() -> None:
    index = ResumeIndex.from_records(
        [
            old(task_id=1, kind=RecordKind.SKIPPED),
            old(task_id=2, kind=RecordKind.PER_ENGINE),
            old(task_id=3, kind=RecordKind.ZOMBIE),
            old(task_id=4, kind=RecordKind.BARRIER),
            old(task_id=5, kind=RecordKind.BARRIER_CHECK),
        ]
    )
    assert len(index) == 1 and 1 in index
    assert index.decide(Task(1, 5, -1, 'echo a'), retry_failed=False, force=False) is not None


def test_a_lost_attempt_is_not_done_so_a_plain_resume_runs_it_again() -> None:
    # lost with its engine (PID -1, -100), the run killed before the task ran again: also when carried over as S
    lost = old(return_code=LOST_RETURN_CODE, pid=-1)
    for record in (lost, lost.as_skipped()):
        index = ResumeIndex.from_records([record])
        assert 3 not in index
        assert index.decide(TASK, retry_failed=False, force=False) is None
    # an earlier success still counts
    index = ResumeIndex.from_records([old(return_code=0, finish=1.0), old(return_code=LOST_RETURN_CODE, pid=-1)])
    assert index.decide(TASK, retry_failed=False, force=False) is not None


def test_success_beats_failure_whatever_the_order() -> None:
    success = old(return_code=0, finish=10.0)
    failure = old(return_code=LOST_RETURN_CODE, finish=20.0)
    for order in ([success, failure], [failure, success]):
        index = ResumeIndex.from_records(order)
        assert index.record(3) == success
        assert index.decide(TASK, retry_failed=True, force=False) == success.as_skipped()


def test_later_finish_wins_between_equals() -> None:
    early, late = old(return_code=1, finish=10.0, pid=1), old(return_code=2, finish=20.0, pid=2)
    assert ResumeIndex.from_records([early, late]).record(3) == late
    assert ResumeIndex.from_records([late, early]).record(3) == late
    first, second = old(finish=5.0, pid=1), old(finish=5.0, pid=2)
    assert ResumeIndex.from_records([first, second]).record(3) == second  # a tie: the one read last


def test_mismatch_names_task_line_and_both_commands() -> None:
    index = ResumeIndex.from_records([old()])
    with pytest.raises(ResumeMismatchError) as caught:
        index.decide(Task(3, 5, -1, 'echo b'), retry_failed=False, force=False)
    assert str(caught.value) == (
        "task 3 (line 5) does not match the status file: now 'echo b', was 'echo a' (line 5, repeat -1); "
        'use --force-resume to skip by task id alone'
    )
    with pytest.raises(ResumeMismatchError, match=r"task 3 \(line 6\) .* now 'echo a', was 'echo a' \(line 5,"):
        index.decide(Task(3, 6, -1, 'echo a'), retry_failed=False, force=False)
    with pytest.raises(ResumeMismatchError, match=r'task 3 \(line 5, repeat 0\) .*\(line 5, repeat -1\)'):
        index.decide(Task(3, 5, 0, 'echo a'), retry_failed=False, force=False)
    assert index.skipped == 0


def test_force_skips_by_id_keeps_old_command_and_warns() -> None:
    record = old()
    index = ResumeIndex.from_records([record])
    skipped = index.decide(Task(3, 9, -1, 'echo b'), retry_failed=False, force=True)
    assert skipped == record.as_skipped()
    assert skipped is not None and skipped.command == 'echo a'
    assert index.warnings == [
        "task 3 (line 9) does not match the status file: now 'echo b', was 'echo a' (line 5, repeat -1); "
        'skipped by task id (--force-resume)'
    ]
    assert index.decide(TASK, retry_failed=False, force=True) is not None
    assert len(index.warnings) == 1  # a match adds no warning


def test_load_many_files(tmp_path: Path) -> None:
    first, second = tmp_path / 'first.txt', tmp_path / 'second.txt'
    with StatusFileWriter.open(str(first), header=True) as writer:
        writer.write(old(task_id=0, return_code=1, finish=1.0))
        writer.write(old(task_id=1, finish=1.0, command='echo \udcff'))
        writer.write(old(task_id=2, kind=RecordKind.BARRIER))
    with StatusFileWriter.open(str(second)) as writer:
        writer.write(old(task_id=0, finish=2.0).as_skipped())  # an S line from a resumed run
        writer.write(old(task_id=4, return_code=1, finish=2.0))
    index = ResumeIndex.load([str(first), str(second)])
    assert len(index) == 3 and 2 not in index
    assert index.decide(Task(0, 5, -1, 'echo a'), retry_failed=True, force=False) is not None
    assert index.decide(Task(1, 5, -1, 'echo \udcff'), retry_failed=True, force=False) is not None
    assert index.decide(Task(4, 5, -1, 'echo a'), retry_failed=True, force=False) is None


def test_load_refuses_a_file_that_is_not_a_status_file(tmp_path: Path) -> None:
    tasks = tmp_path / 'Tasks'
    tasks.write_text('echo a\necho b\n')
    with pytest.raises(StatusFileError, match=r'Tasks:1: not a disbatch status line'):
        ResumeIndex.load([str(tasks)])


def test_carried_records_are_every_done_task_as_skipped_in_task_id_order() -> None:
    records = [old(task_id=5), old(task_id=1, return_code=2), old(task_id=3, kind=RecordKind.INTERRUPTED),
               old(task_id=2, kind=RecordKind.TIMED_OUT, return_code=-15), old(task_id=5, return_code=1)]  # fmt: skip
    index = ResumeIndex.from_records(records)
    carried = list(index.carried(retry_failed=False))
    assert [(r.task_id, r.kind, r.return_code) for r in carried] == [
        (1, RecordKind.SKIPPED, 2),
        (2, RecordKind.SKIPPED, -15),
        (5, RecordKind.SKIPPED, 0),  # success beats the later failure
    ]
    # with -R the failed ones run again: only the successes are carried
    assert [r.task_id for r in index.carried(retry_failed=True)] == [5]


def test_a_status_file_of_carried_records_alone_resumes_like_the_files_it_came_from(tmp_path: Path) -> None:
    first = [old(task_id=task, return_code=task % 2) for task in range(6)]
    index = ResumeIndex.from_records(first)
    path = tmp_path / 'second_status.txt'
    with StatusFileWriter.open(str(path)) as writer:
        assert writer.write_all(index.carried(retry_failed=False)) == 6
    again = ResumeIndex.load([str(path)])
    assert [again.record(task) for task in range(6)] == [record.as_skipped() for record in first]
