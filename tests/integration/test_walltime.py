"""Walltime-aware runs through the real CLI: `--walltime`, the drain, the exit code, and `-r` finishing the rest.

Each task appends a line to `started_<n>` when it starts and to `ended_<n>` when it ends, so the files count runs
and show whether a task was cut short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from disbatch.driver.core.walltime import EXIT_WALLTIME
from disbatch.results.record import RecordKind

from ..conftest import Processes
from .helpers import counts, no_traceback, read_status, run_disbatch, run_files, write_task_file

TASKS = 30
SECONDS = 3


def runs(directory: Path, what: str) -> dict[int, int]:
    """Task number -> how many times it `started` or `ended`."""
    return {int(name.split('_')[1]): count for name, count in counts(directory, f'{what}_*').items()}


def sleepers(path: Path, count: int = TASKS, seconds: float = SECONDS) -> None:
    lines = [f'echo >> started_{n}; sleep {seconds}; echo >> ended_{n}' for n in range(count)]
    write_task_file(path, '\n'.join(lines) + '\n')


@pytest.mark.timeout(90)
def test_a_run_drains_before_its_walltime_and_a_resumed_run_does_the_rest(procs: Processes, tmp_path: Path) -> None:
    sleepers(tmp_path / 'Tasks')
    (tmp_path / 'run1').mkdir()
    first = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--walltime', '20s', '-p', 'run1/', 'Tasks')
    assert first.returncode == EXIT_WALLTIME, first.describe()
    assert first.seconds < 20, first.describe()
    started, ended = runs(tmp_path, 'started'), runs(tmp_path, 'ended')
    assert started == ended  # nothing was killed mid-task: the margin held back what could not finish
    assert 8 <= len(ended) < TASKS and set(ended.values()) == {1}
    assert f'{TASKS - len(ended)} task(s) left' in first.stderr and no_traceback(first.stderr), first.describe()
    [status] = run_files(tmp_path / 'run1', 'status.txt')
    assert len(read_status(status)) == len(ended)
    assert all(record.return_code == 0 for record in read_status(status))

    (tmp_path / 'run2').mkdir()
    second = run_disbatch(procs, tmp_path, '-s', 'localhost:4', '-r', str(status), '-p', 'run2/', 'Tasks', timeout=60)
    assert second.returncode == 0, second.describe()
    assert runs(tmp_path, 'ended') == runs(tmp_path, 'started') == dict.fromkeys(range(TASKS), 1)


@pytest.mark.timeout(60)
def test_what_runs_past_the_margin_is_stopped_recorded_interrupted_and_run_again(
    procs: Processes, tmp_path: Path
) -> None:
    sleepers(tmp_path / 'Tasks', count=2, seconds=30)  # nothing known of them: they start, then outlast the end
    (tmp_path / 'run1').mkdir()
    first = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--walltime', '8s', '-p', 'run1/', 'Tasks')
    assert first.returncode == EXIT_WALLTIME, first.describe()
    assert first.seconds < 8, first.describe()
    assert runs(tmp_path, 'started') == {0: 1, 1: 1} and runs(tmp_path, 'ended') == {}
    [status] = run_files(tmp_path / 'run1', 'status.txt')
    assert {record.kind for record in read_status(status)} == {RecordKind.INTERRUPTED}
    assert '2 task(s) left' in first.stderr, first.describe()
    write_task_file(tmp_path / 'Tasks', (tmp_path / 'Tasks').read_text().replace('sleep 30', 'sleep 0'))
    (tmp_path / 'run2').mkdir()
    args = ('-s', 'localhost:2', '-r', str(status), '--force-resume', '-p', 'run2/', 'Tasks')
    second = run_disbatch(procs, tmp_path, *args)
    assert second.returncode == 0, second.describe()
    assert runs(tmp_path, 'started') == {0: 2, 1: 2} and runs(tmp_path, 'ended') == {0: 1, 1: 1}


@pytest.mark.timeout(60)
def test_a_walltime_too_short_for_anything_runs_nothing(procs: Processes, tmp_path: Path) -> None:
    sleepers(tmp_path / 'Tasks', count=3)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--walltime', '3s', 'Tasks')
    assert result.returncode == EXIT_WALLTIME, result.describe()
    assert runs(tmp_path, 'started') == {}
    assert '3 task(s) left' in result.stderr, result.describe()


@pytest.mark.parametrize(
    ('flags', 'message'),
    [
        (['--walltime', 'soon'], '--walltime'),
        (['--walltime', '20s', '--drain-margin', '-1'], '--drain-margin'),
        (['--resubmit', '-2'], '--resubmit'),
    ],
)
@pytest.mark.timeout(30)
def test_bad_walltime_flags_are_usage_errors(procs: Processes, tmp_path: Path, flags: list[str], message: str) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:1', *flags, 'Tasks')
    assert result.returncode == 2 and message in result.stderr, result.describe()
