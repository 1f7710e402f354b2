"""The summary's list of failed tasks, the command that runs them again, and the note on the exit code."""

from __future__ import annotations

from dataclasses import replace

import pytest

from disbatch.results.failures import FailedTasks, describe_end, first_error_line, rerun_command
from disbatch.results.progress_text import Stats, format_summary
from disbatch.results.record import EMPTY_SNIPPET, LOST_RETURN_CODE, NO_PID, RecordKind

from .test_progress import record, view


def test_a_failed_task_is_listed_with_its_line_its_end_and_the_first_line_of_its_stderr() -> None:
    stats = Stats()
    base = record(5, 3)
    snippet = "'\\nTraceback (most recent call last):\\n  File'"
    failed = replace(base, outcome=replace(base.outcome, err_bytes=30, err_snippet=snippet))
    stats.add(failed)
    stats.observe(view(finished=1, failed=1))
    lines = format_summary(stats, 'run_status.txt', rerun='disbatch -r run_status.txt -R Tasks', exit_code_flag=False)
    text = lines.splitlines()
    assert '    task 5 (line 6): exit 3: Traceback (most recent call last):' in text
    assert '  to run the failed tasks again: disbatch -r run_status.txt -R Tasks' in text
    assert text[-1] == '  the exit code stays 0 although tasks failed (as in disBatch 3.0); -e makes it 1'
    with_e = format_summary(stats, 'run_status.txt', rerun='disbatch -r run_status.txt -R Tasks', exit_code_flag=True)
    assert '-e makes it 1' not in with_e


def test_only_the_first_ten_failures_are_listed_then_how_many_more() -> None:
    stats = Stats()
    for task_id in range(25):
        stats.add(record(task_id, 1))
    stats.observe(view(finished=25, failed=25))
    text = format_summary(stats, 's').splitlines()
    assert '  failed tasks (first 10):' in text
    assert sum(line.startswith('    task ') for line in text) == 10
    assert '    ... and 15 more (see the status file)' in text


def test_no_failure_no_list_no_advice() -> None:
    stats = Stats()
    stats.add(record(1))
    stats.observe(view(finished=1, failed=0))
    text = format_summary(stats, 's', rerun='disbatch -r s -R Tasks', exit_code_flag=False)
    assert 'failed tasks' not in text and 'again' not in text and 'exit code' not in text


def test_interrupted_tasks_get_the_plain_dash_r_command() -> None:
    stats = Stats()
    stats.add(record(1, -15, kind=RecordKind.INTERRUPTED))
    stats.observe(view(finished=0, failed=0, interrupted=1))
    text = format_summary(stats, 's', rerun='disbatch -r s Tasks', exit_code_flag=False)
    assert '1 interrupted (a plain -r runs them again)' in text
    assert '  to run the interrupted tasks again: disbatch -r s Tasks' in text
    assert 'failed tasks' not in text and 'exit code' not in text


@pytest.mark.parametrize(
    ('argv', 'expected'),
    [
        (['-s', 'localhost:4', 'Tasks'], 'disbatch -s localhost:4 -r new_status.txt -R Tasks'),
        (['-r', 'old.txt', '-R', '-e', 'Tasks'], 'disbatch -e -r new_status.txt -R Tasks'),
        (['--resume-from=old.txt', '--retry', '--force-resume', 'Tasks'], 'disbatch -r new_status.txt -R Tasks'),
        (['-rold.txt', '-p', 'out dir/', 'Tasks'], "disbatch -p 'out dir/' -r new_status.txt -R Tasks"),
        (['Tasks', '-s', 'n1:4'], 'disbatch -r new_status.txt -R Tasks -s n1:4'),
    ],
)
def test_the_rerun_command_replaces_the_resume_flags_and_goes_before_the_task_file(
    argv: list[str], expected: str
) -> None:
    assert rerun_command(argv, 'Tasks', 'new_status.txt') == expected


@pytest.mark.parametrize(
    'argv',
    [
        ['-s', 'localhost:8', '-r', 'a_status.txt', 'b_status.txt', 'c_status.txt', 'Tasks'],
        ['-s', 'localhost:8', '-r', 'a_status.txt', '-R', '-r', 'b_status.txt', 'c_status.txt', 'Tasks'],
        ['-s', 'localhost:8', 'Tasks', '-r', 'a_status.txt', 'b_status.txt', '--resume-from=c_status.txt'],
    ],
)
def test_the_rerun_command_drops_every_earlier_status_file_of_one_or_several_dash_r(argv: list[str]) -> None:
    paths = ('a_status.txt', 'b_status.txt', 'c_status.txt')
    command = rerun_command(argv, 'Tasks', 'new_status.txt', retry_failed=False, resume_paths=paths)
    assert command == 'disbatch -s localhost:8 -r new_status.txt Tasks'


def test_the_rerun_command_of_a_task_stream_puts_the_resume_flags_last() -> None:
    command = rerun_command(['--taskcommand', 'make-tasks', '-r', 'old'], None, 'new', False, ('old',))
    assert command == 'disbatch --taskcommand make-tasks -r new'


def test_the_rerun_command_of_interrupted_tasks_only_has_no_dash_capital_r() -> None:
    assert rerun_command(['Tasks'], 'Tasks', 's', retry_failed=False) == 'disbatch -r s Tasks'


def test_how_a_task_ended() -> None:
    assert describe_end(record(1, 2)) == 'exit 2'
    assert describe_end(record(1, -9)) == 'signal 9 (SIGKILL)'
    assert describe_end(record(1, -15, kind=RecordKind.TIMED_OUT)) == 'timed out (signal 15)'
    assert describe_end(record(1, LOST_RETURN_CODE, pid=NO_PID)) == 'lost with its engine'


def test_first_error_line_reads_a_snippet_and_survives_a_bad_one() -> None:
    assert first_error_line("'  \\n oops: no\\nmore'") == 'oops: no'
    assert first_error_line(EMPTY_SNIPPET) == ''
    assert first_error_line('not a repr') == ''


def test_only_failures_are_kept_and_only_the_first_ones() -> None:
    failed = FailedTasks(listed=2)
    for task_id in range(5):
        failed.add(record(task_id, task_id % 2))
    failed.add(record(9, -15, kind=RecordKind.INTERRUPTED))
    assert [r.task_id for r in failed.records] == [1, 3]


@pytest.mark.parametrize(
    ('exit_code', 'stopped', 'exit_code_flag', 'last'),
    [
        (1, 'task 1 (line 2) failed with return code 3; --fail-fast stops the run', False,
         '  exit code 1: the run stopped early'),
        (0, 'BARRIER CHECK at line 3: a task since the previous barrier failed; the rest of the run is skipped', False,
         '  the exit code stays 0 although the run stopped early (as in disBatch 3.0); -e makes it 1'),
        (1, 'BARRIER CHECK at line 3: ...', True, '  exit code 1: tasks failed (-e)'),
        (0, '', False, '  the exit code stays 0 although tasks failed (as in disBatch 3.0); -e makes it 1'),
    ],
)  # fmt: skip
def test_the_last_lines_say_why_the_run_stopped_and_what_its_exit_code_is(
    exit_code: int, stopped: str, exit_code_flag: bool, last: str
) -> None:
    stats = Stats()
    stats.add(record(1, 3))
    stats.observe(replace(view(finished=1, failed=1), exit_code=exit_code, stopped=stopped))
    text = format_summary(stats, 's', rerun='disbatch -r s -R Tasks', exit_code_flag=exit_code_flag).splitlines()
    assert text[-1] == last
    if stopped:
        assert f'  stopped early: {stopped}' in text


def test_a_long_error_line_is_cut_after_a_whole_word() -> None:
    stats = Stats()
    base = record(5, 3)
    snippet = repr('word ' * 30)
    stats.add(replace(base, outcome=replace(base.outcome, err_bytes=30, err_snippet=snippet)))
    stats.observe(view(finished=1, failed=1))
    line = next(line for line in format_summary(stats, 's', width=60).splitlines() if line.startswith('    task 5'))
    assert line.endswith('word ...') and len(line) <= 60
