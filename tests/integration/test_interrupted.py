"""Interrupted is not failed, through the real CLI: a task the run stops itself (Ctrl-C, SIGTERM) gets an `I` record,
is counted apart, and a plain `-r` runs it again, while the tasks that ended by themselves (succeeded or failed) are
carried over. Every task appends one line to `count_<id>`, so the number of lines is the number of times it ran.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import Processes, disbatch_cmd
from .helpers import by_task_id, counts, read_status, run_disbatch, status_path, wait_for, write_task_file

QUICK = 6  # tasks 0..5 end by themselves (task 5 fails): neither is run again by a plain -r
SLOW = 8  # tasks 6..13 sleep until the run is stopped; in the resumed run (`resumed` exists) they end at once
TASKS = (
    ''.join(f'echo x >> count_{task}{"; exit 3" if task == QUICK - 1 else ""}\n' for task in range(QUICK))
    + 'echo x >> count_$DISBATCH_TASKID; [ -e resumed ] || sleep 100\n' * SLOW
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_tasks_stopped_by_a_signal_run_again_with_a_plain_dash_r(
    procs: Processes, tmp_path: Path, signum: signal.Signals
) -> None:
    write_task_file(tmp_path / 'Tasks', TASKS)
    (tmp_path / 'run1').mkdir()
    driver = procs.spawn(
        disbatch_cmd('-s', f'localhost:{SLOW}', '-p', 'run1/', 'Tasks'),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    all_started = wait_for(lambda: len(counts(tmp_path)) == QUICK + SLOW or driver.poll() is not None, timeout=20)
    assert all_started and driver.poll() is None, driver.communicate(timeout=5)
    driver.send_signal(signum)  # Ctrl-C (or SIGTERM) while the 8 slow tasks run
    _, stderr = driver.communicate(timeout=15)
    assert driver.returncode == 128 + signum, stderr
    assert f'{SLOW} interrupted' in stderr, stderr  # counted apart in the summary
    first = read_status(status_path(tmp_path / 'run1'))
    interrupted = by_task_id(first, RecordKind.INTERRUPTED)
    assert set(interrupted) == set(range(QUICK, QUICK + SLOW)), first
    assert all(record.return_code < 0 and not record.failed for record in interrupted.values())
    assert set(by_task_id(first)) == set(range(QUICK))  # the quick ones ended by themselves, task 5 failed

    status1 = str(status_path(tmp_path / 'run1'))
    rerun = (
        f'  to run the failed and interrupted tasks again: disbatch -s localhost:{SLOW} -p run1/ -r {status1} -R Tasks'
    )
    assert rerun in stderr.splitlines(), stderr  # task 5 failed: -R runs it again too; a plain -r runs only the 8

    (tmp_path / 'resumed').touch()
    (tmp_path / 'run2').mkdir()
    result = run_disbatch(procs, tmp_path, '-s', f'localhost:{SLOW}', '-p', 'run2/', '-r', status1, 'Tasks')
    assert result.returncode == 0, result.describe()
    runs = counts(tmp_path)
    assert runs == {f'count_{task}': 1 if task < QUICK else 2 for task in range(QUICK + SLOW)}, runs
    second = read_status(status_path(tmp_path / 'run2'))
    assert set(by_task_id(second)) == set(range(QUICK, QUICK + SLOW))  # run again, and succeeded
    assert set(by_task_id(second, RecordKind.SKIPPED)) == set(range(QUICK))  # carried over, the failure too
    assert not by_task_id(second, RecordKind.INTERRUPTED)
