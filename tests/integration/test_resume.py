"""Resume through the real CLI: `-r` (repeatable), `-R`, `--force-resume` (reference §4 "Resume", §8; SPEC §3).

Every task appends one line to `count_<name>`, so the number of lines is the number of times it ran.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind, StatusRecord

from ..conftest import Processes, disbatch_cmd
from .helpers import (
    by_task_id,
    counts,
    messages,
    no_traceback,
    read_status,
    run_disbatch,
    run_files,
    status_path,
    wait_for,
    write_task_file,
)

TASKS = 'echo A >> count_A\necho B >> count_B; exit 1\necho C >> count_C\n'


def first_run(procs: Processes, tmp_path: Path, text: str = TASKS) -> tuple[Path, list[StatusRecord]]:
    """Run `text` once in `tmp_path/run1/`; returns that run's status file and records."""
    write_task_file(tmp_path / 'Tasks', text)
    (tmp_path / 'run1').mkdir()
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', 'run1/', 'Tasks')
    assert result.returncode == 0, result.describe()
    path = status_path(tmp_path / 'run1')
    return path, read_status(path)


def resume(procs: Processes, tmp_path: Path, name: str, *args: str) -> tuple[int, str, list[StatusRecord]]:
    """Run `Tasks` again in `tmp_path/<name>/` with `args`; returns (rc, stderr, records or [])."""
    (tmp_path / name).mkdir()
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', f'{name}/', *args, 'Tasks')
    found = run_files(tmp_path / name, 'status.txt')
    return result.returncode, result.stderr, read_status(found[0]) if found else []


def same_except_kind(new: StatusRecord, old: StatusRecord) -> bool:
    return dataclasses.replace(new, kind=old.kind) == old


@pytest.mark.timeout(30)
def test_done_tasks_are_skipped_with_their_old_lines(procs: Processes, tmp_path: Path) -> None:
    status1, records1 = first_run(procs, tmp_path)
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 1, 'count_C': 1}
    rc, stderr, records2 = resume(procs, tmp_path, 'run2', '-r', str(status1))
    assert rc == 0, stderr  # everything done: exits 0 (the reference exited 1 here, a race)
    assert no_traceback(stderr)
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 1, 'count_C': 1}  # without -R, failed ones count too
    old, new = by_task_id(records1), by_task_id(records2, RecordKind.SKIPPED)
    assert set(new) == {0, 1, 2}
    assert all(r.kind is RecordKind.SKIPPED for r in records2)
    for task_id, record in new.items():
        assert same_except_kind(record, old[task_id]), (record, old[task_id])
    skipped_flags = sorted(line.split('\t', 1)[0] for line in status_path(tmp_path / 'run2').read_text().splitlines())
    assert skipped_flags == ['   S', '   S', 'R  S']


@pytest.mark.timeout(30)
def test_retry_reruns_failed_tasks_only(procs: Processes, tmp_path: Path) -> None:
    status1, records1 = first_run(procs, tmp_path)
    rc, stderr, records2 = resume(procs, tmp_path, 'run2', '-r', str(status1), '-R')
    assert rc == 0, stderr
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 2, 'count_C': 1}
    assert set(by_task_id(records2, RecordKind.SKIPPED)) == {0, 2}
    rerun = by_task_id(records2)
    assert set(rerun) == {1}
    assert rerun[1].return_code == 1 and rerun[1].start > by_task_id(records1)[1].finish - 0.001


@pytest.mark.timeout(30)
def test_chained_resume_reruns_nothing_that_finished(procs: Processes, tmp_path: Path) -> None:
    status1, _ = first_run(procs, tmp_path, 'echo A >> count_A\necho B >> count_B; exit 1\n')
    with (tmp_path / 'Tasks').open('a') as handle:
        handle.write('echo C >> count_C\n')
    rc, stderr, _ = resume(procs, tmp_path, 'run2', '-r', str(status1), '-R')
    assert rc == 0, stderr
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 2, 'count_C': 1}
    # the resumed run's file alone: S lines count as done (the reference re-ran them)
    rc, stderr, records3 = resume(procs, tmp_path, 'run3', '-r', str(status_path(tmp_path / 'run2')))
    assert rc == 0, stderr
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 2, 'count_C': 1}
    assert set(by_task_id(records3, RecordKind.SKIPPED)) == {0, 1, 2}
    assert by_task_id(records3) == {}


@pytest.mark.timeout(30)
def test_best_record_across_files_wins(procs: Processes, tmp_path: Path) -> None:
    status1, _ = first_run(procs, tmp_path, 'echo A >> count_A; test -e fixed\n')
    (tmp_path / 'fixed').touch()
    rc, stderr, _ = resume(procs, tmp_path, 'run2', '-r', str(status1), '-R')
    assert rc == 0, stderr
    assert counts(tmp_path) == {'count_A': 2}
    status2 = status_path(tmp_path / 'run2')
    # success in the second file beats the failure in the first, in either order, with -R
    for order in ((status1, status2), (status2, status1)):
        name = f'run3_{order[0].parent.name}'
        rc, stderr, records = resume(procs, tmp_path, name, '-R', '-r', str(order[0]), '-r', str(order[1]))
        assert rc == 0, stderr
        assert counts(tmp_path) == {'count_A': 2}
        assert [(r.kind, r.return_code) for r in records] == [(RecordKind.SKIPPED, 0)]


@pytest.mark.timeout(30)
def test_appended_tasks_run(procs: Processes, tmp_path: Path) -> None:
    # the reference's CI case: A-C done, D appended, only D runs
    status1, _ = first_run(procs, tmp_path, 'touch A.txt\ntouch B.txt\ntouch C.txt\n')
    for name in ('A.txt', 'B.txt', 'C.txt'):
        (tmp_path / name).unlink()
    with (tmp_path / 'Tasks').open('a') as handle:
        handle.write('touch D.txt\n')
    rc, stderr, records = resume(procs, tmp_path, 'run2', '-r', str(status1))
    assert rc == 0, stderr
    assert sorted(p.name for p in tmp_path.glob('*.txt')) == ['D.txt']
    assert set(by_task_id(records)) == {3}
    assert set(by_task_id(records, RecordKind.SKIPPED)) == {0, 1, 2}


@pytest.mark.timeout(30)
def test_changed_command_is_a_clear_error(procs: Processes, tmp_path: Path) -> None:
    status1, _ = first_run(procs, tmp_path)
    write_task_file(tmp_path / 'Tasks', 'echo A2 >> count_A\n' + TASKS.split('\n', 1)[1])
    rc, stderr, records = resume(procs, tmp_path, 'run2', '-r', str(status1))
    assert rc != 0, stderr
    assert no_traceback(stderr)
    assert 'task 0' in stderr and 'line 1' in stderr, stderr
    assert 'echo A2 >> count_A' in stderr and 'echo A >> count_A' in stderr, stderr
    assert 'force-resume' in stderr
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 1, 'count_C': 1}
    assert by_task_id(records) == {}


@pytest.mark.timeout(30)
def test_force_resume_proceeds(procs: Processes, tmp_path: Path) -> None:
    status1, _ = first_run(procs, tmp_path)
    write_task_file(tmp_path / 'Tasks', 'echo A2 >> count_A\n' + TASKS.split('\n', 1)[1])
    rc, stderr, records = resume(procs, tmp_path, 'run2', '-r', str(status1), '--force-resume')
    assert rc == 0, stderr
    assert 'task 0' in stderr  # warned
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 1, 'count_C': 1}
    skipped = by_task_id(records, RecordKind.SKIPPED)
    assert set(skipped) == {0, 1, 2}
    assert skipped[0].command == 'echo A >> count_A'  # the old text, as the reference keeps it


@pytest.mark.timeout(30)
def test_resume_from_a_file_that_is_not_a_status_file(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo A >> count_A\n')
    write_task_file(tmp_path / 'notes.txt', 'not\ta status line\n')
    for bad in ('Tasks', 'notes.txt', 'missing_status.txt'):
        result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-r', bad, 'Tasks')
        assert result.returncode != 0, result.describe()
        lines = messages(result.stderr)
        assert len(lines) == 1, result.stderr
        assert f'{bad}:' in lines[0], lines[0]
        if bad != 'missing_status.txt':
            assert f'{bad}:1: ' in lines[0], lines[0]
        assert no_traceback(result.stderr)
        assert counts(tmp_path) == {}
        assert run_files(tmp_path, 'status.txt') == []


@pytest.mark.timeout(30)
def test_resume_with_barriers_and_repeats(procs: Processes, tmp_path: Path) -> None:
    text = '#DISBATCH REPEAT 3 start 1 echo $DISBATCH_REPEAT_INDEX >> count_R\n#DISBATCH BARRIER\necho B >> count_B\n'
    status1, _ = first_run(procs, tmp_path, text)
    rc, stderr, records = resume(procs, tmp_path, 'run2', '-r', str(status1))
    assert rc == 0, stderr
    assert counts(tmp_path) == {'count_B': 1, 'count_R': 3}
    assert set(by_task_id(records, RecordKind.SKIPPED)) == {0, 1, 2, 4}
    assert [r.task_id for r in records if r.kind is RecordKind.BARRIER] == [3]  # barriers are re-recorded


@pytest.mark.timeout(30)
def test_resume_after_the_driver_was_killed(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo A >> count_A\necho B >> count_B; sleep 100\n')
    (tmp_path / 'run1').mkdir()
    driver = procs.spawn(disbatch_cmd('-s', 'localhost:2', '-p', 'run1/', 'Tasks'), cwd=tmp_path)
    assert wait_for(lambda: counts(tmp_path) == {'count_A': 1, 'count_B': 1}, timeout=15)
    status1 = status_path(tmp_path / 'run1')
    assert wait_for(lambda: len(status1.read_text().splitlines()) == 1, timeout=5)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=5)
    write_task_file(tmp_path / 'Tasks', 'echo A >> count_A\necho B >> count_B\n')
    rc, stderr, records = resume(procs, tmp_path, 'run2', '-r', str(status1))
    assert rc == 0, stderr
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 2}
    assert set(by_task_id(records, RecordKind.SKIPPED)) == {0}
    assert set(by_task_id(records)) == {1}


@pytest.mark.timeout(30)
def test_resume_from_a_file_with_a_header(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', TASKS)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', 'first', '--status-header', 'Tasks')
    assert result.returncode == 0, result.describe()
    rc, stderr, records = resume(procs, tmp_path, 'run2', '-r', 'first_status.txt')
    assert rc == 0, stderr
    assert counts(tmp_path) == {'count_A': 1, 'count_B': 1, 'count_C': 1}
    assert set(by_task_id(records, RecordKind.SKIPPED)) == {0, 1, 2}
