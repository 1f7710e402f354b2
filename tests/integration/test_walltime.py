"""Walltime-aware runs through the real CLI: `--walltime`, the drain, the exit code, and `-r` finishing the rest.

Each task appends a line to `started_<n>` when it starts and to `ended_<n>` when it ends, so the files count runs
and show whether a task was cut short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from disbatch.driver.walltime import EXIT_WALLTIME

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
    [status] = run_files(tmp_path / 'run1', '_status.txt')
    assert len(read_status(status)) == len(ended)
    assert all(record.return_code == 0 for record in read_status(status))

    (tmp_path / 'run2').mkdir()
    second = run_disbatch(procs, tmp_path, '-s', 'localhost:4', '-r', str(status), '-p', 'run2/', 'Tasks', timeout=60)
    assert second.returncode == 0, second.describe()
    assert runs(tmp_path, 'ended') == runs(tmp_path, 'started') == dict.fromkeys(range(TASKS), 1)


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
